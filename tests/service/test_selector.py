"""The version selector hook: extra versions are loaded by the poller and chosen per request."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import httpx
import pytest
from servekit import MODEL, ROW, build_workspace, copy_workspace, running

from retrainer.service import ChampionSelector, ServiceConfig, VersionSelector, create_app

FAST = ServiceConfig(poll_seconds=0.05, log_flush_seconds=0.05, retry_seconds=3600)


class Canary:
    """Keys starting with 'canary' go to ``version``; the rest to the champion."""

    def __init__(self, version: int) -> None:
        self.version = version

    def versions(self, model: str) -> Collection[int]:
        return (self.version,)

    def choose(self, model: str, request_key: str, champion: int) -> int:
        return self.version if request_key.startswith("canary") else champion


@pytest.fixture(scope="session")
def base_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_workspace(tmp_path_factory.mktemp("selector-base") / "ws")


def ask(url: str, key: str | None) -> httpx.Response:
    headers = {"x-request-key": key} if key else {}
    return httpx.post(
        f"{url}/v1/models/{MODEL}/predict", json={"records": [ROW]}, headers=headers, timeout=30
    )


def test_a_selector_routes_requests_to_another_loaded_version(
    base_ws: Path, tmp_path: Path
) -> None:
    ws = copy_workspace(base_ws, tmp_path / "ws")
    with running(create_app(ws, config=FAST, selector=Canary(2))) as url:
        assert ask(url, "canary-7").json()["version"] == 2
        assert ask(url, "user-7").json()["version"] == 1
        assert ask(url, None).json()["version"] == 1
        health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok", health
    assert health["models"][MODEL]["also_loaded"] == [2]


def test_a_version_the_selector_names_that_cannot_load_falls_back_to_the_champion(
    base_ws: Path, tmp_path: Path
) -> None:
    ws = copy_workspace(base_ws, tmp_path / "ws")
    with running(create_app(ws, config=FAST, selector=Canary(99))) as url:
        response = ask(url, "canary-1")
        health = httpx.get(f"{url}/health").json()
        metrics = httpx.get(f"{url}/metrics").text
    assert response.status_code == 200 and response.json()["version"] == 1
    assert health["status"] == "degraded"
    assert "toy: pending version 99 failed: NotFoundError" in health["problems"][0]
    assert 'retrainer_serve_errors_total{kind="selector_fallback",model="toy"} 1.0' in metrics


class Broken(Canary):
    def choose(self, model: str, request_key: str, champion: int) -> int:
        raise RuntimeError("the rollout store is unreachable")


def test_a_selector_that_raises_falls_back_to_the_champion(base_ws: Path, tmp_path: Path) -> None:
    ws = copy_workspace(base_ws, tmp_path / "ws")
    with running(create_app(ws, config=FAST, selector=Broken(2))) as url:
        response = ask(url, "canary-1")
        metrics = httpx.get(f"{url}/metrics").text
    assert response.status_code == 200 and response.json()["version"] == 1
    assert 'retrainer_serve_errors_total{kind="selector_fallback",model="toy"} 1.0' in metrics


def test_the_protocol_is_checkable() -> None:
    assert isinstance(ChampionSelector(), VersionSelector)
    assert isinstance(Canary(2), VersionSelector)

    class OnlyChoose:
        def choose(self, model: str, request_key: str, champion: int) -> int:
            return champion

    assert not isinstance(OnlyChoose(), VersionSelector)
