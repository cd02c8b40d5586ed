"""SEC-03, the path payload matrix (payloads.py) on every path input that takes text:

- the spec's locations (``data.source``, ``audit.anchor``, ``artifacts``, a SQLite
  ``store``): a relative location may not climb out of the workspace, however it is
  spelled; an absolute path or URI is the spec author's explicit choice and is used as
  written (the spec can also name a training entrypoint: it is trusted configuration);
- artifact keys: a registry row whose sha256 is a payload is refused before any read;
- CLI file arguments: the user's own paths (no privilege boundary), so ``..`` and
  absolute paths are read as given, but nothing is ever percent-decoded or crashes;

The server's ``{name}`` is in test_serving_payloads.py. Every case checks that the folder
outside the root is untouched.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from payloads import ABSOLUTE, escapes
from typer.testing import CliRunner

from conftest import SYNTHETIC_SPEC
from retrainer.cli.app import app
from retrainer.errors import PathEscapeError, SpecError
from retrainer.governance.anchor import export_anchor
from retrainer.registry.artifacts import ArtifactStore
from retrainer.spec import PipelineSpec
from retrainer.workspace import Workspace

KINDS = list(escapes(Path("/x/outside")))
REFUSED = "path escapes root|control character"


@pytest.fixture
def places(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(workspace root, the folder beside it that nothing may touch)."""
    root, outside = tmp_path / "ws", tmp_path / "outside"
    (root / "data" / "batches").mkdir(parents=True)
    outside.mkdir()
    (outside / "x").write_text("ts,x1,x2,color,y\n2024-01-01,0,0,red,1\n")
    spec = SYNTHETIC_SPEC.format(approval="auto", store="sqlite:///.retrainer/retrainer.db")
    (root / "retrainer.yaml").write_text(spec)
    yield root, outside
    assert sorted(p.name for p in outside.iterdir()) == ["x"], "something was written outside"


@contextmanager
def explicitly_outside(outside: Path) -> Iterator[Path]:
    """``outside/x`` made free for a store or root named there on purpose, then restored."""
    saved = (outside / "x").read_bytes()
    (outside / "x").unlink()
    try:
        yield outside / "x"
    finally:
        for made in outside.iterdir():
            shutil.rmtree(made) if made.is_dir() else made.unlink()
        (outside / "x").write_bytes(saved)


def yaml_quoted(text: str) -> str:
    """``text`` as a double-quoted YAML scalar (NUL written as the escape ``\\0``)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\x00", "\\0") + '"'


def with_location(spec: PipelineSpec, key: str, value: str) -> PipelineSpec:
    if key == "data.source":
        return spec.model_copy(update={"data": spec.data.model_copy(update={"source": value})})
    return spec.model_copy(update={"audit": spec.audit.model_copy(update={"anchor": value})})


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("key", ["data.source", "audit.anchor"])
def test_locations_used_by_the_cycle(places: tuple[Path, Path], key: str, kind: str) -> None:
    root, outside = places
    payload = escapes(outside)[kind]
    with Workspace.open(root) as opened:
        ws = replace(opened, spec=with_location(opened.spec, key, payload))
        if kind in ABSOLUTE:  # explicit: used as written, never rewritten
            if key == "data.source":
                assert "outside" in str(getattr(ws.source(), "path", ""))
            else:
                assert ws.anchor_uri == payload
            return
        with pytest.raises(SpecError, match=REFUSED) as caught:
            if key == "data.source":
                ws.source().discover(None)
            else:  # the hook after every champion move, and 'retrainer audit anchor'
                export_anchor(ws.db, (ws.registry and ws.anchor_uri) or "")
    assert str(caught.value).startswith(f"{key}: ")


@pytest.mark.parametrize("kind", [k for k in KINDS if not k.startswith("file-")])
def test_a_sqlite_store_location(places: tuple[Path, Path], kind: str) -> None:
    root, outside = places
    spec = root / "retrainer.yaml"
    payload = yaml_quoted(escapes(outside)[kind])
    old = "store: sqlite:///.retrainer/retrainer.db"
    spec.write_text(spec.read_text().replace(old, f'store: "sqlite:///{payload[1:-1]}"'))
    if kind in ABSOLUTE:  # explicit: the store is created exactly there
        with explicitly_outside(outside) as target:
            Workspace.open(root).close()
            assert target.is_file()
        return
    with pytest.raises(SpecError, match=f"^store: .*({REFUSED})"):
        Workspace.open(root)
    assert not (root / ".retrainer").exists()  # refused before any side effect


@pytest.mark.parametrize("kind", KINDS)
def test_an_artifact_root_location(places: tuple[Path, Path], kind: str) -> None:
    root, outside = places
    with (root / "retrainer.yaml").open("a") as f:
        f.write(f"artifacts: {yaml_quoted(escapes(outside)[kind])}\n")
    if kind in ABSOLUTE:  # explicit: the artifact root is exactly there
        with explicitly_outside(outside) as target, Workspace.open(root) as ws:
            assert ws.artifacts.root == str(target.resolve())
        return
    with pytest.raises(SpecError, match=f"^artifacts: .*({REFUSED})"):
        Workspace.open(root)
    assert not (root / ".retrainer").exists()


# --- artifact keys -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_an_artifact_sha_from_the_registry_is_checked_before_any_read(
    places: tuple[Path, Path], kind: str
) -> None:
    """A tampered registry row names a path instead of a sha256: refused, nothing read."""
    root, outside = places
    store = ArtifactStore.from_uri("file://.retrainer/artifacts", base_dir=root)
    payload = escapes(outside)[kind]
    for call in (store.get, store.exists, store.path_of):
        with pytest.raises(PathEscapeError, match="64 lowercase hex"):
            call(payload)
    with pytest.raises(PathEscapeError, match="path escapes root"):
        store.resolve(payload)


# --- CLI file arguments ------------------------------------------------------------------

NOT_DECODED = ["encoded", "double-encoded", "backslash"]


def run_cli(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "-w", str(root)] if args[0] != "drift" else args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize("kind", [*NOT_DECODED, "nul"])
def test_cli_file_arguments_are_never_decoded_and_never_crash(
    places: tuple[Path, Path], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """outside/x.csv is a readable CSV: reaching it by decoding would make the call succeed.
    (``..``, absolute paths and URL punctuation are the user's own path syntax here.)"""
    root, outside = places
    monkeypatch.chdir(root)
    payload = escapes(outside)[kind] + ".csv"
    good = str(outside / "x.csv")
    (outside / "x.csv").write_text((outside / "x").read_text())
    try:
        for args in (
            ("drift", payload, good),
            ("drift", good, payload),
            ("contract", "check", "toy", payload),
        ):
            code, out = run_cli(root, *args)
            assert code == 2, out
            expected = "invalid value" if kind == "nul" else "no such file"
            assert expected in out.lower().replace("no such file or directory", "no such file")
        code, out = run_cli(root, "audit", "verify", "--anchor", payload, "--json")
        assert code in (0, 2), out  # an empty store needs no anchor; NUL is a usage error
        if kind == "nul":
            assert "control character or NUL is not allowed" in out
        code, out = run_cli(root, "audit", "anchor", "--to", payload)
        if kind == "nul":
            assert code == 2 and "control character or NUL is not allowed" in out
        else:  # the user's own relative path, written literally under the current folder
            assert code == 0, out
    finally:
        (outside / "x.csv").unlink()
