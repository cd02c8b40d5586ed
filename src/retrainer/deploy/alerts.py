"""Alerts about rollouts: always a log record, and a webhook POST when configured.

Sending never raises: a webhook that is down, slow (past ``timeout_s``) or answers an
error status is logged and the rollout goes on; the audit trail is the record.
``${env:NAME}`` references in the webhook URL and headers are resolved at each send,
and logs name the URL as the spec writes it, never the resolved value.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, Protocol

from retrainer.errors import SpecError
from retrainer.secrets import Secrets
from retrainer.spec import AlertSpec
from retrainer.spec_deploy import check_webhook_url

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
    """Logs every alert (WARNING) and POSTs it as JSON to ``spec.webhook`` when set.

    ``secrets`` resolves references in the URL and headers (default: this process's
    environment); a missing variable or a resolved URL that is not https (or http to
    loopback) is logged and nothing is sent.
    """

    def __init__(self, spec: AlertSpec, secrets: Secrets | None = None) -> None:
        self.spec = spec
        self.secrets = secrets or Secrets.from_environ()

    def send(self, event: Mapping[str, Any]) -> None:
        log.warning("rollout alert: %s", event.get("message", event))
        if not self.spec.webhook:
            return
        body = json.dumps(dict(event), default=str).encode()
        try:
            url = self.secrets.resolve(self.spec.webhook, key="deploy.alert.webhook")
            check_webhook_url(url)
            extra = {
                name: self.secrets.resolve(value, key=f"deploy.alert.headers.{name}")
                for name, value in self.spec.headers.items()
            }
        except (SpecError, ValueError) as exc:
            log.error("rollout alert webhook %s not sent: %s", self.spec.webhook, exc)
            return
        if any("\r" in v or "\n" in v for v in extra.values()):
            log.error(
                "rollout alert webhook %s not sent: a resolved header holds a line break",
                self.spec.webhook,
            )
            return
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={**extra, "Content-Type": "application/json", "User-Agent": "retrainer"},
        )
        try:
            with _OPENER.open(request, timeout=self.spec.timeout_s) as response:
                response.read(1024)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            detail = self.secrets.redact(f"{exc}")
            log.error("rollout alert webhook %s failed: %s", self.spec.webhook, detail)
