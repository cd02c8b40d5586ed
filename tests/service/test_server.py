"""The prediction server, live on loopback: predict, validate, health, metrics, feedback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servekit import MODEL, ROW, build_workspace, copy_workspace, running

from retrainer.deploy.predlog import read_prediction_log
from retrainer.service import ServiceConfig, create_app

FAST = ServiceConfig(poll_seconds=0.05, log_flush_seconds=0.05, max_body_bytes=64_000)


@pytest.fixture(scope="session")
def base_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_workspace(tmp_path_factory.mktemp("serve-base") / "ws")


@pytest.fixture
def ws(base_ws: Path, tmp_path: Path) -> Path:
    return copy_workspace(base_ws, tmp_path / "ws")


@pytest.fixture
def url(ws: Path) -> Iterator[str]:
    with running(create_app(ws, config=FAST)) as base:
        yield base


def predict(url: str, payload: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/models/{MODEL}/predict", json=payload, timeout=30)


def test_records_and_columns_give_probabilities_and_ids(url: str) -> None:
    rec = predict(url, {"records": [ROW, {**ROW, "x1": -2.0}]})
    assert rec.status_code == 200, rec.text
    body = rec.json()
    assert (body["model"], body["version"]) == (MODEL, 1)
    first = body["predictions"][0]
    assert set(first) == {"prediction_id", "label", "probabilities", "score"}
    assert set(first["probabilities"]) == {"0", "1"}
    assert first["probabilities"]["1"] == pytest.approx(first["score"])
    assert len({p["prediction_id"] for p in body["predictions"]}) == 2

    cols = predict(url, {"columns": {k: [v] for k, v in ROW.items()}})
    assert cols.status_code == 200, cols.text
    assert cols.json()["predictions"][0]["probabilities"] == first["probabilities"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"records": [{"x1": 1.0, "color": "red"}]}, "x2"),
        ({"records": [{**ROW, "x1": "abc"}]}, "x1"),
        ({"records": [{**ROW, "x2": None}]}, "x2"),
        ({"records": [{**ROW, "x2": True}]}, "x2"),
        ({"records": [{**ROW, "color": ["red"]}]}, "color"),
        ({"columns": {"x1": [1.0], "x2": [1.0, 2.0], "color": ["red"]}}, "columns"),
        ({"rows": []}, "records"),
    ],
)
def test_invalid_input_is_422_naming_the_field(url: str, payload: object, field: str) -> None:
    response = predict(url, payload)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["field"] == field


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_inf_are_422_never_500(url: str, value: str) -> None:
    body = '{"records": [{"x1": VALUE, "x2": 0.0, "color": "red"}]}'.replace("VALUE", value)
    response = httpx.post(
        f"{url}/v1/models/{MODEL}/predict",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == {
        "message": f"row 0: feature 'x1': expected a finite number, got {float(value)!r}",
        "field": "x1",
        "row": 0,
    }


def test_unknown_category_is_served_and_counted(url: str) -> None:
    response = predict(url, {"records": [{**ROW, "color": "purple"}]})
    assert response.status_code == 200, response.text
    metrics = httpx.get(f"{url}/metrics").text
    assert 'retrainer_serve_unknown_categories_total{feature="color",model="toy"} 1.0' in metrics


def test_bad_json_unknown_model_and_body_limit(url: str) -> None:
    bad = httpx.post(f"{url}/v1/models/{MODEL}/predict", content=b"{nope", timeout=30)
    assert bad.status_code == 422
    deep = httpx.post(f"{url}/v1/models/{MODEL}/predict", content=b"[" * 60_000, timeout=30)
    assert deep.status_code == 422
    assert httpx.post(f"{url}/v1/models/other/predict", json={"records": [ROW]}).status_code == 404
    big = b'{"records": [' + b" " * 10_000_000 + b"]}"
    too_large = httpx.post(f"{url}/v1/models/{MODEL}/predict", content=big, timeout=30)
    assert too_large.status_code == 413
    assert "too large" in too_large.json()["detail"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: cut off while streaming
        for _ in range(200):
            yield b" " * 50_000

    streamed = httpx.post(f"{url}/v1/models/{MODEL}/predict", content=chunks(), timeout=30)
    assert streamed.status_code == 413
    assert (
        'retrainer_serve_errors_total{kind="too_large",model=""} 2.0'
        in httpx.get(f"{url}/metrics").text
    )
    assert predict(url, {"records": [ROW]}).status_code == 200  # still serving


def test_health_ready_metrics(url: str) -> None:
    predict(url, {"records": [ROW]})
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok", health
    assert health["models"][MODEL]["serving"]["version"] == 1
    assert httpx.get(f"{url}/ready").json()["ready"] is True
    text = httpx.get(f"{url}/metrics").text
    for line in (
        'retrainer_serve_requests_total{model="toy",status="200",version="1"} 1.0',
        'retrainer_serve_request_seconds_count{model="toy",version="1"} 1.0',
        'retrainer_serve_model_version{model="toy"} 1.0',
    ):
        assert line in text
    assert 'retrainer_serve_predictions_total{label="' in text


def test_predictions_are_logged_to_parquet_and_feedback_stores_labels(ws: Path) -> None:
    with running(create_app(ws, config=FAST)) as url:
        ids = [
            p["prediction_id"] for p in predict(url, {"records": [ROW] * 3}).json()["predictions"]
        ]
        labels = [{"prediction_id": ids[0], "label": 1}, {"prediction_id": ids[1], "label": 0}]
        fb = httpx.post(f"{url}/v1/models/{MODEL}/feedback", json={"labels": labels})
        assert fb.status_code == 200, fb.text
        assert (fb.json()["received"], fb.json()["inserted"]) == (2, 2)
        again = httpx.post(f"{url}/v1/models/{MODEL}/feedback", json={"labels": labels[:1]})
        assert again.json()["unchanged"] == 1
        changed = [{"prediction_id": ids[0], "label": 0}]
        conflict = httpx.post(f"{url}/v1/models/{MODEL}/feedback", json={"labels": changed})
        assert conflict.status_code == 409, conflict.text
        assert ids[0] in conflict.json()["detail"]["message"]
        replaced = httpx.post(
            f"{url}/v1/models/{MODEL}/feedback", json={"labels": changed, "replace": True}
        )
        assert replaced.json()["replaced"] == 1
        bad = httpx.post(f"{url}/v1/models/{MODEL}/feedback", json={"labels": [{"label": 1}]})
        assert bad.status_code == 422
    # Shut down: the log was flushed.
    log = read_prediction_log(ws / ".retrainer" / "predictions", MODEL)
    assert sorted(log["prediction_id"]) == sorted(ids)
    assert set(log["version"]) == {1}
    assert json.loads(log["features"].iloc[0]) == ROW
    assert list(ws.glob(".retrainer/predictions/model=toy/date=*/part-*.parquet"))
