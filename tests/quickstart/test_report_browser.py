"""The quickstart's HTML report, opened in a real browser.

Debian's Chromium (``/usr/bin/chromium``) driven by Playwright loads the report of the
session's quickstart run from an HTTP server on 127.0.0.1, serving that one file alone
(so any file the report needed beside it would fail to load). Every request the page
makes is recorded; one to anywhere else is recorded and aborted, never sent.

No browser is downloaded: Playwright launches the system Chromium, with its browser
cache pointed at a temporary folder. Without /usr/bin/chromium the tests are skipped.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from .conftest import QuickstartRun

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 900}
LOCAL_HOST = "127.0.0.1"


@dataclass
class LoadedReport:
    """The page after loading, and everything the browser reported while loading it."""

    page: Any
    url: str
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    bad_responses: list[tuple[int, str]] = field(default_factory=list)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def report_url(
    quickstart_run: QuickstartRun, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The report alone, served over HTTP on 127.0.0.1 (an ephemeral port)."""
    site = tmp_path_factory.mktemp("site")
    shutil.copy(Path(quickstart_run.data["report"]), site / "report.html")
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer((LOCAL_HOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOCAL_HOST}:{server.server_address[1]}/report.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless system Chromium, with HOME and Playwright's browser cache in a tmp folder."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} not found: the report's browser test needs Debian's Chromium "
            "(apt-get install chromium)"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is in the dev extra: pip install -e '.[dev]'"
    )
    base = tmp_path_factory.mktemp("browser")
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    with pytest.MonkeyPatch.context() as mp:
        for var, sub in (
            ("PLAYWRIGHT_BROWSERS_PATH", "ms-playwright"),
            ("HOME", "home"),
            ("XDG_CONFIG_HOME", "config"),
            ("XDG_CACHE_HOME", "cache"),
        ):
            (base / sub).mkdir()
            mp.setenv(var, str(base / sub))
        with sync_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                args=["--no-sandbox"] if root else [],
            )
            try:
                yield chromium
            finally:
                chromium.close()


@pytest.fixture(scope="module")
def loaded(browser: Any, report_url: str) -> Iterator[LoadedReport]:
    """The report loaded in a fresh page, with every request and message recorded."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    seen = LoadedReport(page=page, url=report_url)

    def only_local(route: Any) -> None:
        if urlsplit(route.request.url).hostname == LOCAL_HOST:
            route.continue_()
        else:
            seen.blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on("console", lambda message: seen.console.append((message.type, message.text)))
    page.on("pageerror", lambda error: seen.page_errors.append(str(error)))
    page.on("requestfailed", lambda request: seen.failed.append(request.url))
    page.on(
        "response",
        lambda response: (
            seen.bad_responses.append((response.status, response.url))
            if response.status >= 400
            else None
        ),
    )
    response = page.goto(report_url, wait_until="load")
    assert response is not None and response.ok, f"GET {report_url}: {response}"
    page.wait_for_load_state("networkidle")
    try:
        yield seen
    finally:
        context.close()


def test_the_page_has_the_report_title(loaded: LoadedReport, quickstart_run: QuickstartRun) -> None:
    metric = quickstart_run.data["metric"]
    assert loaded.page.title() == f"retrainer quickstart: {metric} over time"
    assert "NOAA rainfall" in loaded.page.locator("h1").inner_text()


def test_the_plot_image_has_loaded(loaded: LoadedReport) -> None:
    image = loaded.page.locator("img")
    assert image.count() == 1
    state = image.evaluate(
        "i => ({complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,"
        " src: i.currentSrc.slice(0, 22)})"
    )
    assert state["src"] == "data:image/png;base64,"
    assert state["complete"] is True
    assert state["width"] > 100
    assert state["height"] > 100
    box = image.bounding_box()
    assert box is not None
    assert box["width"] > 300, "the plot is on the page but drawn tiny"


def test_the_versions_table_has_a_row_per_version(
    loaded: LoadedReport, quickstart_run: QuickstartRun
) -> None:
    versions = quickstart_run.data["versions"]
    table = loaded.page.locator("h2:text-is('Versions') + table")
    header = [t.strip() for t in table.locator("th").all_inner_texts()]
    assert header[0] == "version"
    promoted_col = header.index("promoted")
    rows = table.locator("tr:has(td)")
    assert rows.count() == len(versions)
    for i, version in enumerate(versions):
        cells = [t.strip() for t in rows.nth(i).locator("td").all_inner_texts()]
        assert cells[0] == f"v{version['version']}"
        assert cells[promoted_col] == ("yes" if version["promoted"] else "no")


def test_the_page_loads_without_errors(loaded: LoadedReport) -> None:
    errors = [text for kind, text in loaded.console if kind == "error"]
    assert errors == [], f"console errors: {errors}"
    assert loaded.page_errors == []
    assert loaded.failed == []
    assert loaded.bad_responses == []


def test_no_request_leaves_the_machine(loaded: LoadedReport) -> None:
    assert loaded.url in loaded.requests, "the request recorder saw nothing"
    elsewhere = [
        url
        for url in loaded.requests
        if urlsplit(url).scheme != "data" and urlsplit(url).hostname != LOCAL_HOST
    ]
    assert elsewhere == [], f"the report reached out to: {elsewhere}"
    assert loaded.blocked == []


def test_screenshot_of_the_whole_report(loaded: LoadedReport, tmp_path: Path) -> None:
    """A full-page screenshot (kept in tmp_path) of a page taller than one screen."""
    from PIL import Image

    shot = tmp_path / "report.png"
    loaded.page.screenshot(path=str(shot), full_page=True)
    with Image.open(shot) as image:
        width, height = image.size
        assert width == VIEWPORT["width"]
        assert height > VIEWPORT["height"], "the report should need scrolling (plot + tables)"
        # not a blank page: the plot and the text put many colours on it
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50
