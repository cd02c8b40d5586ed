"""Alerts about rollouts: always a log record, and a webhook POST when configured.

Sending never raises: a webhook that is down, slow (past ``timeout_s``) or answers an
error status is logged and the rollout goes on; the audit trail is the record.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, Protocol

from retrainer.spec import AlertSpec

__all__ = ["Alerter", "WebhookAlerter"]

log = logging.getLogger(__name__)


class Alerter(Protocol):
    """Announces a rollout event. Must not raise; may block up to its own timeout."""

    def send(self, event: Mapping[str, Any]) -> None: ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: the validated URL is the only one ever contacted."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class WebhookAlerter:
    """Logs every alert (WARNING) and POSTs it as JSON to ``spec.webhook`` when set."""

    def __init__(self, spec: AlertSpec) -> None:
        self.spec = spec

    def send(self, event: Mapping[str, Any]) -> None:
        log.warning("rollout alert: %s", event.get("message", event))
        if not self.spec.webhook:
            return
        body = json.dumps(dict(event), default=str).encode()
        request = urllib.request.Request(
            self.spec.webhook,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "retrainer"},
        )
        try:
            with _OPENER.open(request, timeout=self.spec.timeout_s) as response:
                response.read(1024)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.error("rollout alert webhook %s failed: %s", self.spec.webhook, exc)
