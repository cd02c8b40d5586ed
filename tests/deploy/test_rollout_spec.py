"""The spec's ``deploy:`` section: defaults keep direct promotion; bad values name the key."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conftest import SYNTHETIC_SPEC
from retrainer.errors import SpecError
from retrainer.spec import parse_spec

BASE = SYNTHETIC_SPEC.format(approval="auto", store="sqlite:///.retrainer/retrainer.db")


def test_without_a_deploy_section_promotion_is_direct() -> None:
    deploy = parse_spec(BASE).deploy
    assert (deploy.strategy, deploy.target, deploy.alert.webhook) == ("direct", "server", None)
    assert deploy.canary.steps == [10.0, 50.0, 100.0]
    assert deploy.rollback.error_rate == 0.02


def test_a_full_canary_section_parses() -> None:
    spec = parse_spec(
        BASE
        + """deploy:
  strategy: canary
  canary: {steps: [5, 25, 100], min_requests: 500, dwell: 30m, sticky_key: user_id}
  rollback: {error_rate: 0.02, latency_p99_ms: 50, prediction_drift: 0.1, metric_drop: 0.03}
  alert: {webhook: "https://hooks.example.com/x", timeout_s: 1}
"""
    )
    assert spec.deploy.canary.dwell == timedelta(minutes=30)
    assert spec.deploy.canary.sticky_key == "user_id"
    assert spec.deploy.rollback.metric_drop == 0.03


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("canary: {steps: [50, 10, 100]}", "increasing percentages ending at 100"),
        ("canary: {steps: [10, 50]}", "increasing percentages ending at 100"),
        ("canary: {steps: [0, 100]}", "percentages in (0, 100]"),
        ("canary: {dwell: soon}", "deploy.canary.dwell"),
        ("strategy: blue_green", "deploy.strategy"),
        ("rollback: {error_rate: 2}", "deploy.rollback.error_rate"),
        ("canary: {min_request: 5}", "min_request"),
        ("alert: {webhook: 'http://example.com/x'}", "loopback"),
        ("strategy: canary | canary: {steps: [100]}", "leaves the champion no traffic"),
        ("alert: {webhook: 'file:///etc/passwd'}", "https://"),
    ],
)
def test_bad_deploy_values_are_refused_naming_the_key(section: str, expected: str) -> None:
    """``section``: lines of the deploy mapping, separated by `` | ``."""
    with pytest.raises(SpecError) as info:
        parse_spec(BASE + "deploy:\n  " + section.replace(" | ", "\n  ") + "\n")
    assert expected in str(info.value)


def test_loopback_http_webhooks_are_allowed() -> None:
    for url in ("http://127.0.0.1:8080/a", "http://localhost/a", "http://[::1]:9/a"):
        spec = parse_spec(BASE + f"deploy:\n  alert: {{webhook: '{url}'}}\n")
        assert spec.deploy.alert.webhook == url
