"""Payloads that must stay inert: crafted skops files (SEC-06/07), YAML tags and control
characters in the spec, template text in rendered HTML (SEC-11).

Already proven elsewhere, not repeated here: a raw pickle, a joblib file and a skops file
of an untrusted class (tests/registry/test_serialization.py); ``!!python/object/apply``,
``/name`` and ``/object/new`` on ``train.seed`` naming file, line and key
(tests/test_spec.py, tests/cli/test_cli_spec_errors.py); template text kept literal in the
parsed spec (tests/test_spec.py).
"""

from __future__ import annotations

import functools
import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import SYNTHETIC_SPEC, add_batch, synthetic_batch
from retrainer.cli.app import app
from retrainer.errors import ArtifactIntegrityError, SpecError, UntrustedArtifactError
from retrainer.orchestrate import run_cycle
from retrainer.registry.serialization import dump_model, load_model
from retrainer.spec import parse_spec
from retrainer.workspace import Workspace

TEMPLATE = "{{ 7*7 }}"
BLOCK = "{% for i in range(3) %}loop{% endfor %}"
SCRIPT = "<script>alert(1)</script>"


class Canary:
    """Creates ``path`` (a folder) if anything ever unpickles it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


def rewrite(data: bytes, edit: Callable[[dict[str, Any], dict[str, bytes]], None]) -> bytes:
    """A skops file with its schema (and members) edited by ``edit``."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(members.pop("schema.json"))
    edit(schema, members)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
        for name, blob in members.items():
            archive.writestr(name, blob)
    return out.getvalue()


# --- crafted skops files -----------------------------------------------------------------


@pytest.mark.parametrize(
    "trusted",
    [[], ["posix.*"], ["posix.mkdir", "os.*"]],
    ids=["default", "spec-trusts-posix", "spec-trusts-the-name"],
)
def test_a_skops_file_calling_a_dangerous_function_is_refused(
    tmp_path: Path, trusted: list[str]
) -> None:
    """A functools.partial (trusted: HistGradientBoosting uses one) whose function is
    posix.mkdir(canary); the spec's trusted_types cannot allow it, nor can the file."""
    canary = tmp_path / "canary"

    def edit(schema: dict[str, Any], members: dict[str, bytes]) -> None:
        schema["content"]["func"].update({"__module__": "posix", "__class__": "mkdir"})
        schema["content"]["args"]["content"][0]["content"] = json.dumps(str(canary))
        schema["trusted"] = ["posix.mkdir"]  # trust declared by the file: ignored
        members["trusted_types.json"] = b'["posix.mkdir"]'

    payload = rewrite(dump_model(functools.partial(len, "abc")), edit)
    with pytest.raises(UntrustedArtifactError, match=r"posix\.mkdir.*never trusted"):
        load_model(payload, extra_trusted=trusted)
    assert not canary.exists()


def test_a_pickled_object_array_inside_a_skops_file_is_refused(tmp_path: Path) -> None:
    """The node says numpy.ndarray (trusted), its .npy holds a pickled Canary."""
    canary = tmp_path / "canary"
    model = dump_model({"coef": np.zeros(3)})
    smuggled = io.BytesIO()
    np.save(smuggled, np.array([Canary(canary)], dtype=object), allow_pickle=True)

    def edit(schema: dict[str, Any], members: dict[str, bytes]) -> None:
        [name] = [n for n in members if n.endswith(".npy")]
        members[name] = smuggled.getvalue()

    with pytest.raises(ArtifactIntegrityError, match="allow_pickle=False"):
        load_model(rewrite(model, edit))
    assert not canary.exists()


# --- YAML --------------------------------------------------------------------------------

SPEC = SYNTHETIC_SPEC.format(approval="auto", store="sqlite:///.retrainer/retrainer.db")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("  target: y\n", "  target: y\n  owner: !!python/object/apply:os.system ['touch P']\n"),
        ("  - manual: {}\n", "  - !!python/name:os.system\n"),
        ("  seed: 3\n", "  seed: !!python/module:os\n"),
        ("approval:\n", "!!python/object:os.system x: 1\napproval:\n"),
        ("  target: y\n", "  target: !!python/tuple [y]\n"),
    ],
    ids=["apply-in-owner", "name-in-list", "module", "object-as-key", "tuple"],
)
def test_python_tags_anywhere_are_parse_errors_naming_the_line(
    old: str, new: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert old in SPEC
    text = SPEC.replace(old, new, 1)
    line = 1 + next(i for i, row in enumerate(text.splitlines()) if "!!python" in row)
    with pytest.raises(SpecError, match=rf"not valid YAML at line {line}\b.*python"):
        parse_spec(text, source="s.yaml")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b"])
def test_a_control_character_in_the_spec_is_a_spec_error_naming_the_line(char: str) -> None:
    text = SPEC.replace("  name: toy\n", f"  name: to{char}y\n")
    with pytest.raises(SpecError, match=r"^s\.yaml: not valid YAML at line 2: character 0x"):
        parse_spec(text, source="s.yaml")


# --- template text in rendered HTML -------------------------------------------------------


def test_template_text_stays_literal_in_the_drift_html(tmp_path: Path) -> None:
    """Column names are the text the page shows (category values are drawn in the PNGs)."""
    rng = np.random.default_rng(0)
    frames = [
        pd.DataFrame(
            {
                TEMPLATE: rng.normal(shift, 1.0, 400),
                SCRIPT: rng.normal(0.0, 1.0, 400),
                BLOCK: rng.choice(["a", "b", "c"], 400),
            }
        )
        for shift in (0.0, 2.0)
    ]
    ref, cur, page = tmp_path / "ref.csv", tmp_path / "cur.csv", tmp_path / "drift.html"
    frames[0].to_csv(ref, index=False)
    frames[1].to_csv(cur, index=False)
    result = CliRunner().invoke(app, ["drift", str(ref), str(cur), "--html", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert TEMPLATE in html and BLOCK in html  # rendered, they would read 49 and looploop...
    assert "looplooploop" not in html
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_template_text_stays_literal_in_the_explain_html(tmp_path: Path) -> None:
    """A feature named ``{{ 7*7 }}`` and a categorical value holding a Jinja block and a
    script: the decision record names them, the page shows them as text."""
    root = tmp_path / "ws"
    (root / "data" / "batches").mkdir(parents=True)
    spec = SPEC.replace("numeric: [x1, x2]", f"numeric: ['{TEMPLATE}', x2]")
    spec = spec.replace(
        "  bootstrap_resamples: 200\n", "  bootstrap_resamples: 200\n  slices: [color]\n"
    )
    (root / "retrainer.yaml").write_text(spec)
    frame = synthetic_batch(1, 600, start_day=0).rename(columns={"x1": TEMPLATE})
    frame["color"] = frame["color"].replace({"red": BLOCK, "green": SCRIPT})
    add_batch(root, "b1", frame)
    with Workspace.open(root) as ws:
        assert run_cycle(ws, actor="t").version == 1
    page = tmp_path / "explain.html"
    result = CliRunner().invoke(app, ["explain", "toy", "1", "-w", str(root), "--html", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert TEMPLATE in html and BLOCK in html  # the feature, and a slice in the details
    assert "looplooploop" not in html
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
