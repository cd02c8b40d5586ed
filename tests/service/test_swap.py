"""Load-then-swap under continuous load; a corrupt version is never swapped in; log drops."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from servekit import MODEL, ROW, build_workspace, copy_workspace, running

from retrainer.registry import list_events, promote
from retrainer.service import ServiceConfig, create_app
from retrainer.workspace import Workspace

FAST = ServiceConfig(poll_seconds=0.05, log_flush_seconds=0.05, retry_seconds=3600)


@pytest.fixture(scope="session")
def base_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_workspace(tmp_path_factory.mktemp("swap-base") / "ws")


@pytest.fixture
def ws(base_ws: Path, tmp_path: Path) -> Path:
    return copy_workspace(base_ws, tmp_path / "ws")


class Load:
    """A client thread sending predictions back to back; records (status, version)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.results: list[tuple[int, int | None]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(
                        f"{self.url}/v1/models/{MODEL}/predict", json={"records": [ROW]}
                    )
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                    continue
                version = r.json().get("version") if r.status_code == 200 else None
                self.results.append((r.status_code, version))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def wait_for(self, done: Callable[[], bool]) -> None:
        """Wait (bounded by a count of sleeps, never asserting a time) for ``done()``."""
        for _ in range(6000):
            if done():
                return
            self._stop.wait(0.01)
        raise AssertionError("condition not reached")

    def count(self) -> int:
        return len(self.results)


def test_swapping_the_champion_under_load_fails_zero_requests(ws: Path) -> None:
    with running(create_app(ws, config=FAST)) as url, Load(url) as load:
        load.wait_for(lambda: load.count() >= 20)
        with Workspace.open(ws) as w:
            promote(w.registry, MODEL, 2, actor="approver", reason="swap under load")
        load.wait_for(lambda: any(v == 2 for _, v in load.results[-5:]))
        seen = load.count()
        load.wait_for(lambda: load.count() >= seen + 20)
        health = httpx.get(f"{url}/health").json()
        metrics = httpx.get(f"{url}/metrics").text
    assert load.errors == []
    assert {status for status, _ in load.results} == {200}
    versions = [v for _, v in load.results]
    switch = versions.index(2)
    assert set(versions[:switch]) == {1} and set(versions[switch:]) == {2}  # no flapping
    assert health["status"] == "ok", health
    assert health["models"][MODEL]["serving"]["version"] == 2
    assert 'retrainer_serve_model_swaps_total{model="toy"} 2.0' in metrics  # startup + swap


def test_a_corrupt_version_is_never_swapped_in_and_health_says_degraded(
    ws: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Workspace.open(ws) as w:
        sha = w.registry.get(MODEL, 2).artifact_sha256
        assert sha is not None
        path = Path(w.artifacts.path_of(sha))
    assert path.is_relative_to(ws)  # this test's copy, not the shared base workspace
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.chmod(0o600)
    path.write_bytes(bytes(data))

    with running(create_app(ws, config=FAST)) as url, Load(url) as load:
        load.wait_for(lambda: load.count() >= 10)
        with Workspace.open(ws) as w:
            promote(w.registry, MODEL, 2, actor="approver", reason="corrupt one")

        def degraded() -> bool:
            return httpx.get(f"{url}/health").json()["status"] == "degraded"

        load.wait_for(degraded)
        seen = load.count()
        load.wait_for(lambda: load.count() >= seen + 10)
        health = httpx.get(f"{url}/health").json()
        metrics = httpx.get(f"{url}/metrics").text
        ready = httpx.get(f"{url}/ready")
    assert load.errors == []
    assert set(load.results) == {(200, 1)}  # the old version kept serving, no 5xx
    assert health["models"][MODEL]["serving"]["version"] == 1
    [problem] = health["problems"]
    assert problem.startswith(
        "toy: pending version 2 failed: ArtifactIntegrityError: sha256 mismatch"
    )
    assert 'retrainer_serve_model_load_failures_total{model="toy"} 1.0' in metrics
    assert ready.status_code == 200
    # SEC-05: the corrupt version is quarantined, audited; an alert was logged.
    with Workspace.open(ws) as w:
        assert w.registry.get(MODEL, 2).status == "QUARANTINED"
        events = w.db.transaction(
            lambda s: [(e.action, e.subject, e.payload) for e in list_events(s, limit=1000)]
        )
    [(_, _, payload)] = [e for e in events if e[:2] == ("version.quarantined", f"{MODEL}:2")]
    assert "sha256 mismatch" in payload["reason"]
    assert any("version 2 quarantined" in r.getMessage() for r in caplog.records)


def test_a_failing_log_disk_drops_and_counts_but_predictions_succeed(ws: Path) -> None:
    blocker = ws / "not-a-folder"
    blocker.write_text("a file where the log folder should be")
    config = ServiceConfig(poll_seconds=0.05, log_flush_seconds=0.05, log_dir=blocker / "log")
    with running(create_app(ws, config=config)) as url:
        for _ in range(5):
            r = httpx.post(f"{url}/v1/models/{MODEL}/predict", json={"records": [ROW, ROW]})
            assert r.status_code == 200, r.text
        for _ in range(6000):
            health = httpx.get(f"{url}/health").json()
            if health["log"]["dropped"]["write_error"] == 10:
                break
            threading.Event().wait(0.01)
        metrics = httpx.get(f"{url}/metrics").text
    assert health["status"] == "degraded"
    assert health["log"]["dropped"] == {"queue_full": 0, "write_error": 10}
    assert "NotADirectoryError" in health["log"]["last_error"]
    assert any("prediction log dropped 10 rows" in p for p in health["problems"])
    assert 'retrainer_serve_log_dropped_total{reason="write_error"} 10.0' in metrics
