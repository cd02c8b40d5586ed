"""What ``retrainer quickstart`` promises a newcomer, checked on one real run.

The run (the session fixture ``quickstart_run``) streams the NOAA rainfall years through
the real loop. Its ``--json`` output is checked against the workspace it leaves behind,
opened with :class:`~retrainer.workspace.Workspace` and read through the registry, the
ledger and the audit chain: a first champion, a quarantined delivery that is kept and
never trained on, the champion failing after the 1981 change, a retrain triggered by
performance that beats the old champion on the same holdout rows and is promoted,
exactly one champion, an audit chain that verifies, and a self-contained HTML report.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import shutil
import struct
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from retrainer.governance import list_events, verify_chain
from retrainer.monitor.performance import realised_metric
from retrainer.registry import CHAMPION, VersionInfo, load_model
from retrainer.workspace import Workspace

from .conftest import QuickstartRun, cli_env, run_cli

pytestmark = pytest.mark.slow

MODEL = "rain"
QUARANTINED_YEAR = 1960
QUARANTINED_KEY = f"rain-{QUARANTINED_YEAR}.parquet"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMG_DATA = re.compile(r'<img\b[^>]*\bsrc="data:image/png;base64,([A-Za-z0-9+/=\s]+)"')


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ws(quickstart_run: QuickstartRun) -> Iterator[Workspace]:
    """The run's workspace, opened once for this module (read only)."""
    workspace = Workspace.open(quickstart_run.workspace)
    try:
        yield workspace
    finally:
        workspace.close()


@pytest.fixture(scope="module")
def data(quickstart_run: QuickstartRun) -> dict[str, Any]:
    """The run's ``--json`` document."""
    return quickstart_run.data


def change_year(data: dict[str, Any]) -> int:
    return int(data["change_date"][:4])


def performance_threshold(ws: Workspace) -> float:
    (trigger,) = [t.performance for t in ws.spec.triggers if t.performance is not None]
    assert trigger.below is not None
    return trigger.below


def promotions(ws: Workspace) -> dict[int, int | None]:
    """Promoted version -> the champion it replaced, from the alias history."""
    return {m.to_version: m.from_version for m in ws.registry.history(MODEL, CHAMPION)}


def retrains_after_change(ws: Workspace, data: dict[str, Any]) -> list[VersionInfo]:
    """Versions triggered by performance on rows newer than the change."""
    change = pd.Timestamp(data["change_date"])
    return [
        v
        for v in ws.registry.versions(MODEL)
        if v.lineage["trigger"]["kind"] == "performance"
        and pd.Timestamp(v.lineage["time_range"][1]) > change
    ]


def model_of(ws: Workspace, version: int) -> Any:
    info = ws.registry.get(MODEL, version)
    assert info.artifact_sha256 is not None, f"v{version} has no artifact"
    return load_model(ws.artifacts.get(info.artifact_sha256, what=f"model v{version}"))


def snapshot_frame(ws: Workspace, snapshot_id: int) -> pd.DataFrame:
    return ws.ledger.load_frame(ws.ledger.get_snapshot(snapshot_id))


# -- the JSON a script gets -------------------------------------------------------------


def test_json_names_the_workspace_the_change_and_the_report(
    quickstart_run: QuickstartRun, data: dict[str, Any]
) -> None:
    assert Path(data["workspace"]) == quickstart_run.workspace
    assert Path(data["report"]) == quickstart_run.workspace / "report.html"
    assert data["metric"] == "roc_auc"
    assert change_year(data) == 1981
    years = [p["year"] for p in data["points"]]
    assert years == sorted(years)
    assert len(years) == len(set(years))
    assert years[0] == 1949
    assert {QUARANTINED_YEAR, 1981, 1982} <= set(years)
    assert [v["version"] for v in data["versions"]] == list(range(1, len(data["versions"]) + 1))


def test_the_first_version_is_trained_first_and_becomes_champion(
    ws: Workspace, data: dict[str, Any]
) -> None:
    first = data["versions"][0]
    assert first["version"] == 1
    assert first["trigger_kind"] == "bootstrap"
    assert first["promoted"] is True
    history = ws.registry.history(MODEL, CHAMPION)
    assert (history[0].from_version, history[0].to_version) == (None, 1)
    assert data["points"][0]["event"].startswith("version 1 promoted")
    # every later batch is served by some champion
    assert all(p["champion"] for p in data["points"][1:])


# -- the change, the drop, the retrain ----------------------------------------------------


def test_champion_falls_below_the_performance_trigger_after_the_change(
    ws: Workspace, data: dict[str, Any]
) -> None:
    threshold = performance_threshold(ws)
    assert threshold == 0.75
    before = [
        p["with_retraining"]
        for p in data["points"]
        if p["year"] < change_year(data) and p["with_retraining"] is not None
    ]
    assert before, "no batch was scored before the change"
    first_after = next(p for p in data["points"] if p["year"] > change_year(data))
    assert first_after["status"] == "accepted"
    assert first_after["with_retraining"] < threshold < sum(before) / len(before)
    # version 1, never retrained, stays bad after the change: the report's grey line
    without = [
        p["without_retraining"]
        for p in data["points"]
        if p["year"] > change_year(data) and p["without_retraining"] is not None
    ]
    assert without
    assert max(without) < threshold


def test_a_performance_retrain_after_the_change_is_promoted(
    ws: Workspace, data: dict[str, Any]
) -> None:
    threshold = performance_threshold(ws)
    retrains = retrains_after_change(ws, data)
    promoted = promotions(ws)
    winners = [v for v in retrains if v.version in promoted]
    assert winners, f"no performance-triggered version was promoted after the change: {retrains}"
    rows = {r["version"]: r for r in data["versions"]}
    for v in winners:
        numbers = v.lineage["trigger"]["numbers"]
        assert numbers["metric"] == "roc_auc"
        assert numbers["threshold"] == threshold
        assert numbers["value"] < threshold
        # the trigger fired on a batch whose realised metric the JSON reports
        point = next(p for p in data["points"] if p["event"].startswith(f"version {v.version} "))
        assert point["year"] > change_year(data)
        assert point["with_retraining"] == pytest.approx(numbers["value"])
        assert point["event"].startswith(f"version {v.version} promoted (champion was ")
        assert rows[v.version]["trigger_kind"] == "performance"
        assert rows[v.version]["promoted"] is True
        assert ws.registry.get(MODEL, v.version).status == "READY"


def test_the_retrain_beats_the_old_champion_on_the_same_holdout_rows(
    ws: Workspace, data: dict[str, Any]
) -> None:
    promoted = promotions(ws)
    winners = [v for v in retrains_after_change(ws, data) if v.version in promoted]
    assert winners
    spec = ws.spec
    rows = {r["version"]: r for r in data["versions"]}
    for v in winners:
        decision = v.decision
        old = promoted[v.version]
        assert old is not None
        assert decision["passed"] is True
        assert decision["champion_version"] == old
        assert decision["candidate_metric"] > decision["champion_metric"]
        gate = next(g for g in decision["gates"] if g["name"] == "vs_champion")
        assert gate["passed"] is True
        assert rows[v.version]["holdout_metric"] == pytest.approx(decision["candidate_metric"])
        assert rows[v.version]["champion_metric"] == pytest.approx(decision["champion_metric"])
        # recompute both numbers from the stored holdout rows and the stored models
        holdout = snapshot_frame(ws, v.lineage["holdout_snapshot"])
        assert len(holdout) == decision["holdout_rows"]
        kwargs = {
            "metric": decision["metric"],
            "features": list(spec.model.features.all),
            "target": spec.model.target,
        }
        new_score = realised_metric(model_of(ws, v.version), holdout, **kwargs)
        old_score = realised_metric(model_of(ws, old), holdout, **kwargs)
        assert new_score == pytest.approx(decision["candidate_metric"])
        assert old_score == pytest.approx(decision["champion_metric"])
        assert new_score > old_score


# -- quarantine -------------------------------------------------------------------------


def test_the_renamed_column_batch_is_quarantined_and_kept(
    ws: Workspace, data: dict[str, Any], quickstart_run: QuickstartRun
) -> None:
    (batch,) = ws.ledger.batches(MODEL, status="quarantined")
    assert batch.batch_key == QUARANTINED_KEY
    failures = batch.reasons["failures"]
    assert any(f.get("column") == "dew_point" for f in failures), failures
    assert any("dew_point" in f["message"] for f in failures), failures
    # kept: the delivery is still there, and its rows are stored exactly as received
    assert (quickstart_run.workspace / "data" / "batches" / QUARANTINED_KEY).is_file()
    assert batch.snapshot_id is not None
    kept = snapshot_frame(ws, batch.snapshot_id)
    assert "dewpoint" in kept.columns
    assert "dew_point" not in kept.columns
    assert set(kept["date"].dt.year) == {QUARANTINED_YEAR}
    (point,) = [p for p in data["points"] if p["status"] == "quarantined"]
    assert point["year"] == QUARANTINED_YEAR
    assert point["rows"] == len(kept) == batch.row_count
    assert point["with_retraining"] is None
    assert "dew_point" in point["event"]
    # and it is on the audit trail
    with ws.db.session() as session:
        events = list_events(session, limit=10_000, subject_prefix=f"{MODEL}/batch/{batch.id}")
        quarantines = [e for e in events if e.action == "batch.quarantine"]
    assert [e.payload["key"] for e in quarantines] == [QUARANTINED_KEY]


def test_no_version_was_trained_or_judged_on_the_quarantined_rows(ws: Workspace) -> None:
    window = ws.spec.data.window.last
    assert window is not None
    year_start = pd.Timestamp(f"{QUARANTINED_YEAR}-01-01")
    year_end = pd.Timestamp(f"{QUARANTINED_YEAR}-12-31")
    windows_over_it = []
    for v in ws.registry.versions(MODEL):
        train = snapshot_frame(ws, v.lineage["train_snapshot"])
        holdout = snapshot_frame(ws, v.lineage["holdout_snapshot"])
        for name, frame in (("train", train), ("holdout", holdout)):
            assert "dewpoint" not in frame.columns, f"v{v.version} {name}"
            assert QUARANTINED_YEAR not in set(frame["date"].dt.year), f"v{v.version} {name}"
        newest = max(train["date"].max(), holdout["date"].max())
        if newest - window <= year_end and newest >= year_start:
            windows_over_it.append(v.version)
    # not vacuous: some version's training window spanned the quarantined year
    assert windows_over_it, "no version's window covered the quarantined year"


# -- end state ----------------------------------------------------------------------------


def test_exactly_one_champion_at_the_end(ws: Workspace, data: dict[str, Any]) -> None:
    holders = [v.version for v in ws.registry.versions(MODEL) if CHAMPION in v.aliases]
    last_promoted = max(r["version"] for r in data["versions"] if r["promoted"])
    assert holders == [last_promoted]
    assert ws.registry.get_alias(MODEL, CHAMPION) == last_promoted
    assert ws.registry.history(MODEL, CHAMPION)[-1].to_version == last_promoted
    assert data["points"][-1]["champion"] == last_promoted


def test_the_audit_chain_verifies(ws: Workspace, data: dict[str, Any]) -> None:
    with ws.db.session() as session:
        report = verify_chain(session)
    assert report.ok, f"audit chain broken at event {report.first_broken_id}: {report.problem}"
    # at least one event per version and per promotion
    assert report.events >= len(data["versions"]) + sum(r["promoted"] for r in data["versions"])


# -- the HTML report ----------------------------------------------------------------------


class _Resources(HTMLParser):
    """Every URL the page would load by itself (not links a reader may click)."""

    URL_ATTRS = frozenset({"src", "href", "srcset", "poster", "data", "action", "background"})

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name == "style":
                self._css(tag, value)
            elif name in self.URL_ATTRS and not (tag == "a" and name == "href"):
                self.urls.append((f"<{tag} {name}>", value.strip()))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._css("style", data)

    def _css(self, where: str, css: str) -> None:
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", css):
            self.urls.append((f"{where} url()", url.strip()))
        for url in re.findall(r"@import\s+['\"]([^'\"]+)", css):
            self.urls.append((f"{where} @import", url.strip()))


def report_html(data: dict[str, Any]) -> str:
    path = Path(data["report"])
    assert path.is_file(), f"no report at {path}"
    return path.read_text(encoding="utf-8")


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (which must come first)."""
    assert png[:8] == PNG_SIGNATURE, f"not a PNG: starts with {png[:8]!r}"
    length, kind = struct.unpack(">I4s", png[8:16])
    assert (kind, length) == (b"IHDR", 13), f"first chunk is {kind!r} ({length} bytes)"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_the_report_is_self_contained(data: dict[str, Any]) -> None:
    html = report_html(data)
    parser = _Resources()
    parser.feed(html)
    parser.close()
    assert parser.urls, "the parser found no resource at all (the plot is one)"
    for where, url in parser.urls:
        assert url.startswith(("data:", "#")), f"{where} loads {url[:80]!r}: not self-contained"
    assert not re.search(r"(?:src|href)\s*=\s*['\"]?(?:https?:)?//", html, re.IGNORECASE)
    assert "<script" not in html.lower()


def test_the_report_embeds_a_valid_png_plot(data: dict[str, Any]) -> None:
    found = IMG_DATA.findall(report_html(data))
    assert len(found) == 1, "expected one embedded PNG plot"
    try:
        png = base64.b64decode(re.sub(r"\s", "", found[0]), validate=True)
    except binascii.Error as exc:
        raise AssertionError("the plot's data URL is not valid base64") from exc
    width, height = png_size(png)
    assert width > 100
    assert height > 100
    assert png.endswith(b"IEND\xaeB`\x82"), "the PNG is truncated"
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(io.BytesIO(png)) as image:
        image.verify()
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (width, height)
        image.load()


def test_the_report_tells_the_story(data: dict[str, Any]) -> None:
    html = report_html(data)
    assert data["change_date"] in html
    for row in data["versions"]:
        assert f"<td>v{row['version']}</td>" in html
    for point in data["points"]:
        assert f"<td>{point['year']}</td>" in html
    assert "triggered a retrain" in html


# -- the human output, and running it again ---------------------------------------------


def test_rerun_into_the_same_folder_recreates_it_and_prints_a_table(
    quickstart_run: QuickstartRun, data: dict[str, Any], tmp_path: Path
) -> None:
    """The newcomer runs it a second time, without --json, into the folder of the first run."""
    folder = tmp_path / "ws"
    shutil.copytree(quickstart_run.workspace, folder)
    (folder / "notes.txt").write_text("left over from the first run\n")
    stray = folder / "data" / "batches" / "rain-2099.parquet"
    shutil.copy(folder / "data" / "batches" / "rain-1961.parquet", stray)

    proc = run_cli("quickstart", folder, env=cli_env(tmp_path / "home"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr

    out = proc.stdout
    assert "Versions" in out
    header = next(line for line in out.splitlines() if "version" in line and "promoted" in line)
    assert "why" in header
    for row in data["versions"]:
        # a row: the version, when its rows are from (YYYY-MM..YYYY-MM), ..., promoted
        row_re = re.compile(rf"\W*v{row['version']}\s+\d{{4}}-\d{{2}}\.\.\d{{4}}-\d{{2}}\s")
        lines = [line.strip(" │┃|") for line in out.splitlines() if row_re.match(line)]
        assert len(lines) == 1, f"no single table row for v{row['version']} in:\n{out}"
        assert lines[0].split()[-1] == ("yes" if row["promoted"] else "no"), lines[0]
    assert f"Report: {folder / 'report.html'}" in out
    assert "triggered a retrain" in out

    # recreated: nothing of the old folder is left, and the store starts afresh
    assert not (folder / "notes.txt").exists()
    assert not stray.exists()
    assert (folder / "report.html").is_file()
    assert str(folder) in (folder / "report.html").read_text(encoding="utf-8")
    with Workspace.open(folder) as again:
        assert len(again.ledger.batches(MODEL)) == len(data["points"])
        versions = sorted(again.registry.versions(MODEL), key=lambda v: v.version)
        # the same rows and spec give the same story (training and bootstrap are seeded)
        assert [(v.version, v.lineage["trigger"]["kind"]) for v in versions] == [
            (r["version"], r["trigger_kind"]) for r in data["versions"]
        ]
        promoted = {m.to_version for m in again.registry.history(MODEL, CHAMPION)}
        assert promoted == {r["version"] for r in data["versions"] if r["promoted"]}
        with again.db.session() as session:
            assert verify_chain(session).ok


def test_refuses_a_folder_that_is_not_a_quickstart_workspace(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "home")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me\n")
    proc = run_cli("quickstart", folder, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "not a quickstart workspace" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (folder / "precious.txt").read_text() == "keep me\n"

    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder\n")
    proc = run_cli("quickstart", a_file, "--json", env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "not a folder" in proc.stderr
    assert a_file.read_text() == "not a folder\n"
