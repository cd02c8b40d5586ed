"""The alert webhook: a JSON POST to a real loopback server; redirects are not followed;
failures are logged, never raised."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from retrainer.deploy.alerts import WebhookAlerter
from retrainer.spec import AlertSpec


class Server:
    """Loopback server: ``/redirect`` answers 302 to ``/target``; every path is recorded."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, str, dict[str, object]]] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hits.append(("POST", self.path, body))
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/target")
                else:
                    self.send_response(200)
                self.end_headers()

            def do_GET(self) -> None:
                hits.append(("GET", self.path, {}))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def test_the_alert_is_posted_as_json(server: Server) -> None:
    WebhookAlerter(AlertSpec(webhook=f"{server.base}/hook")).send({"event": "x", "n": 1})
    assert server.hits == [("POST", "/hook", {"event": "x", "n": 1})]


def test_a_redirect_is_not_followed_and_is_logged(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    WebhookAlerter(AlertSpec(webhook=f"{server.base}/redirect")).send({"event": "x"})
    assert [path for _, path, _ in server.hits] == ["/redirect"]
    assert "webhook" in caplog.text and "failed" in caplog.text


def test_without_a_webhook_the_alert_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    WebhookAlerter(AlertSpec()).send({"event": "x", "message": "toy: rollback"})
    assert "rollout alert: toy: rollback" in caplog.text
