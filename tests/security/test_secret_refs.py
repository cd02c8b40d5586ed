"""Secrets by reference (``${env:NAME}``): kept as text in the spec, resolved where used,
scrubbed from every error that would echo them. The end-to-end leak hunt is
test_secret_leaks.py; this file checks each piece where it can fail."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from conftest import PG_URL, pg_unavailable
from retrainer.deploy.alerts import WebhookAlerter
from retrainer.errors import DataSourceError, RetrainerError, SpecError, StoreError
from retrainer.secrets import Secrets, check_references
from retrainer.spec import AlertSpec, parse_spec, spec_hash
from retrainer.workspace import Workspace

SECRET = "s3cr3t-Zq9/x@y"  # '/' and '@' make the percent-encoded forms differ from it

NewWorkspace = Callable[..., Path]


def set_key(root: Path, old: str, new: str) -> None:
    spec = root / "retrainer.yaml"
    text = spec.read_text()
    assert old in text, old
    spec.write_text(text.replace(old, new))


# --- resolving ---------------------------------------------------------------------------


def test_references_resolve_from_the_given_environment() -> None:
    s = Secrets({"PG_USER": "app", "PG_PASSWORD": SECRET})
    text = "postgresql://${env:PG_USER}:${env:PG_PASSWORD}@db/x?u=${env:PG_USER}"
    assert s.resolve(text, key="store") == f"postgresql://app:{SECRET}@db/x?u=app"
    assert s.resolve("no reference here", key="store") == "no reference here"


def test_a_missing_variable_names_the_key_and_the_variable() -> None:
    s = Secrets({"OTHER": SECRET})
    with pytest.raises(SpecError) as caught:
        s.resolve("postgresql://app:${env:PG_PASSWORD}@db/x", key="store")
    message = str(caught.value)
    assert message.startswith("store: ")
    assert "${env:PG_PASSWORD}" in message and "set PG_PASSWORD" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    "bad", ["${env:pg_password}", "${env:}", "${env:PG-PASSWORD}", "x ${env:PG_PASSWORD"]
)
def test_a_malformed_reference_is_a_spec_error_naming_the_key(bad: str) -> None:
    with pytest.raises(SpecError, match=r"s\.yaml: deploy\.alert\.headers\.X-Token: malformed"):
        check_references({"deploy": {"alert": {"headers": {"X-Token": bad}}}}, "s.yaml")


def test_the_parsed_spec_and_its_hash_keep_the_reference(
    make_workspace: NewWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_workspace()
    set_key(root, "  source: data/batches", "  source: data/${env:RT_DIR}")
    text = (root / "retrainer.yaml").read_text()
    monkeypatch.setenv("RT_DIR", "one")
    first = parse_spec(text)
    monkeypatch.setenv("RT_DIR", "two")
    second = parse_spec(text)
    assert first.data.source == "data/${env:RT_DIR}"
    assert spec_hash(first) == spec_hash(second)  # rotating a secret is not a new spec


# --- redacting ---------------------------------------------------------------------------


def test_redact_masks_every_form_a_library_may_print() -> None:
    s = Secrets({"PW": SECRET})
    s.resolve("${env:PW}", key="k")
    encoded = "s3cr3t-Zq9%2Fx%40y"
    assert s.redact(f"a {SECRET} b {encoded} c") == "a *** b *** c"
    assert Secrets({"PW": SECRET}).redact(SECRET) == SECRET  # only what it resolved


def test_scrubbed_keeps_the_error_class_and_drops_a_leaking_chain() -> None:
    s = Secrets({"PW": SECRET})
    s.resolve("${env:PW}", key="k")

    with pytest.raises(DataSourceError) as caught, s.scrubbed("data.source"):
        try:
            raise OSError(f"no such file: /data/{SECRET}/x.csv")
        except OSError as exc:
            raise DataSourceError(f"cannot read /data/{SECRET}/x.csv") from exc
    assert str(caught.value) == "cannot read /data/***/x.csv"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

    leaking = _OperationalError(f'database "{SECRET}" does not exist')
    expected = r'^store: _OperationalError: database "\*\*\*"'
    with pytest.raises(StoreError, match=expected), s.scrubbed("store", StoreError):
        raise leaking

    with pytest.raises(ValueError, match="nothing secret") as plain, s.scrubbed("k"):
        raise ValueError("nothing secret")
    assert type(plain.value) is ValueError  # errors that show no value pass unchanged


class _OperationalError(Exception):
    pass


def test_scrubbed_looks_at_the_causes_too() -> None:
    s = Secrets({"PW": SECRET})
    s.resolve("${env:PW}", key="k")
    with pytest.raises(RetrainerError) as caught, s.scrubbed("k"):
        try:
            raise KeyError(SECRET)
        except KeyError as exc:
            raise RetrainerError("lookup failed") from exc
    assert str(caught.value) == "lookup failed"
    assert caught.value.__cause__ is None


# --- points of use: the workspace --------------------------------------------------------


def test_a_missing_store_variable_fails_open_before_anything_is_created(
    make_workspace: NewWorkspace,
) -> None:
    root = make_workspace(store="sqlite:///.retrainer/${env:RT_DB_NAME}.db")
    with pytest.raises(SpecError, match=r"^store: .*\$\{env:RT_DB_NAME\}.*set RT_DB_NAME"):
        Workspace.open(root, env={})
    assert not (root / ".retrainer").exists()


def test_the_store_and_artifact_root_are_resolved_when_opened(
    make_workspace: NewWorkspace,
) -> None:
    root = make_workspace(store="sqlite:///.retrainer/${env:RT_DB_NAME}.db")
    with (root / "retrainer.yaml").open("a") as f:
        f.write("artifacts: file://.retrainer/${env:RT_ART}\n")
    with Workspace.open(root, env={"RT_DB_NAME": "meta", "RT_ART": "blobs"}) as ws:
        assert ws.spec.store.endswith("${env:RT_DB_NAME}.db")
        assert ws.artifacts.root == str((root / ".retrainer" / "blobs").resolve())
    assert (root / ".retrainer" / "meta.db").is_file()


def test_a_failing_store_connection_is_scrubbed(make_workspace: NewWorkspace) -> None:
    """psycopg echoes the database name; here the name is the secret."""
    if reason := pg_unavailable():
        pytest.skip(reason)
    server = PG_URL.split("?")[0].rsplit("/", 1)[0]  # postgresql+psycopg://user@host:port
    root = make_workspace(store=f"{server}/${{env:RT_CANARY_DB}}")
    with pytest.raises(StoreError) as caught:
        Workspace.open(root, env={"RT_CANARY_DB": "rtcanary7f3k2"})
    message = str(caught.value)
    assert message.startswith("store: ")
    assert "does not exist" in message and '"***"' in message
    assert "rtcanary" not in message


def test_a_failing_source_is_scrubbed_and_its_batch_uri_masked(
    make_workspace: NewWorkspace,
) -> None:
    root = make_workspace()
    set_key(root, "  source: data/batches", "  source: data/${env:RT_DIR}")
    with Workspace.open(root, env={"RT_DIR": "hidden-" + "folder"}) as ws:
        source = ws.source()
        assert source.uri == "data/***"
        with pytest.raises(DataSourceError) as caught:
            source.discover(None)
    assert "hidden-folder" not in str(caught.value)
    assert "data/***" in str(caught.value)

    (root / "data" / "hidden-folder").mkdir()
    (root / "data" / "hidden-folder" / "b1.csv").write_text("ts,x1,x2,color,y\n")
    with Workspace.open(root, env={"RT_DIR": "hidden-" + "folder"}) as ws:
        refs = ws.source().discover(None)
    assert [(r.source_uri, r.key) for r in refs] == [("data/***", "b1.csv")]


# --- points of use: the alert webhook ----------------------------------------------------


class Hook:
    """A loopback webhook that records each request's path and headers."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                seen.append((self.path, dict(self.headers.items())))
                self.send_response(500 if "fail" in self.path else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.httpd.shutdown()
    h.httpd.server_close()


def test_the_webhook_url_and_headers_are_resolved_when_sent_and_never_logged(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    spec = AlertSpec(
        webhook=f"{hook.base}/hook/${{env:HOOK_TOKEN}}",
        headers={"Authorization": "Bearer ${env:HOOK_TOKEN}"},
    )
    secrets = Secrets({"HOOK_TOKEN": "tok-123456"})
    alerter = WebhookAlerter(spec, secrets)
    with caplog.at_level(logging.DEBUG):
        alerter.send({"message": "rolled back"})
        failing = AlertSpec(webhook=f"{hook.base}/fail/${{env:HOOK_TOKEN}}")
        WebhookAlerter(failing, secrets).send({"message": "again"})

    assert hook.seen[0][0] == "/hook/tok-123456"
    assert hook.seen[0][1]["Authorization"] == "Bearer tok-123456"
    assert "webhook" in caplog.text and "/fail/${env:HOOK_TOKEN} failed" in caplog.text
    assert "tok-123456" not in caplog.text


def test_a_whole_url_reference_is_checked_once_resolved(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    spec = AlertSpec(webhook="${env:HOOK_URL}")
    with caplog.at_level(logging.ERROR):
        WebhookAlerter(spec, Secrets({"HOOK_URL": "http://10.0.0.1/hook-abcdef"})).send({})
        WebhookAlerter(spec, Secrets({})).send({})
        WebhookAlerter(spec, Secrets({"HOOK_URL": f"{hook.base}/ok"})).send({})
    assert "not sent: expected an https:// URL" in caplog.text
    assert "deploy.alert.webhook: the secret reference ${env:HOOK_URL}" in caplog.text
    assert "hook-abcdef" not in caplog.text
    assert [path for path, _ in hook.seen] == ["/ok"]


@pytest.mark.parametrize(
    "headers",
    [{"Bad Name": "x"}, {"X-Token": "a\r\nInjected: yes"}],
)
def test_header_names_and_values_are_checked(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="header"):
        AlertSpec(webhook="https://hooks.example.com/x", headers=headers)


def test_a_resolved_header_with_a_line_break_is_not_sent(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    spec = AlertSpec(webhook=f"{hook.base}/x", headers={"X-Token": "${env:T}"})
    with caplog.at_level(logging.ERROR):
        WebhookAlerter(spec, Secrets({"T": "abc\r\nInjected: yes"})).send({})
    assert hook.seen == []
    assert "line break" in caplog.text and "Injected" not in caplog.text
