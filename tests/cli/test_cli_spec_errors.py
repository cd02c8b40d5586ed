"""A malformed or missing spec: ``retrainer run`` exits 2 before any side effect (BI-09).

Each case is a workspace whose spec is the ``retrainer init`` template, broken. All cases
run as real processes at once (module fixture; every process pays ~2-6 s of imports, so
the unknown key, the wrong type and the missing field share one spec: all its problems
are reported at once). Each test checks exit 2, stderr naming the file and the key,
nothing on stdout, no ``.retrainer/`` folder anywhere and no file written by a payload.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from retrainer.quickstart.templates import GENERIC_SPEC

RETRAINER = [sys.executable, "-m", "retrainer"]


def broken(old: str, new: str) -> str:
    assert GENERIC_SPEC.count(old) == 1, old
    return GENERIC_SPEC.replace(old, new)


# case -> spec text (None: no spec file at all)
SPECS: dict[str, str | None] = {
    "three-problems": broken("  metric: roc_auc\n", "  metirc: roc_auc\n")
    .replace("  min_rows: 100 ", "  min_rows: lots ")
    .replace("  target: label\n", ""),
    "python-tag": broken(
        "  seed: 7\n", '  seed: !!python/object/apply:os.system ["touch PWNED"]\n'
    ),
    "missing-spec": None,
    "markup-in-value": broken("  name: my-model ", '  name: "[/bold]My[red]Model" '),
}


@dataclass
class Outcome:
    root: Path
    cwd: Path
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Run ``retrainer run -w CASE`` for every case at once; the env mirrors conftest's."""
    base = tmp_path_factory.mktemp("spec-errors")
    env = os.environ.copy()
    env.pop("RETRAINER_WORKSPACE", None)
    env.update(HOME=str(tmp_path_factory.mktemp("home")), RETRAINER_ACTOR="tester")
    procs = {}
    for case, text in SPECS.items():
        cwd = base / case
        root = cwd / "ws"
        (root / "data" / "batches").mkdir(parents=True)
        if text is not None:
            (root / "retrainer.yaml").write_text(text, encoding="utf-8")
        procs[case] = (
            root,
            subprocess.Popen(
                [*RETRAINER, "run", "-w", "ws"],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
    done = {}
    for case, (root, proc) in procs.items():
        out, err = proc.communicate(timeout=300)
        done[case] = Outcome(root, root.parent, proc.returncode, out, err)
    return done


def check_failed_before_side_effects(o: Outcome) -> str:
    """Common checks; returns stderr with line breaks folded (rich may wrap)."""
    assert o.code == 2, f"exit {o.code}\nstdout:\n{o.out}\nstderr:\n{o.err}"
    assert o.out == ""
    assert "Traceback" not in o.err
    assert "[SPEC_INVALID]" in o.err
    assert not (o.root / ".retrainer").exists()
    assert not (o.cwd / ".retrainer").exists()
    assert sorted(p.name for p in o.root.iterdir()) == sorted(
        ["data"] + (["retrainer.yaml"] if (o.root / "retrainer.yaml").exists() else [])
    )
    return " ".join(o.err.split())


def test_unknown_key(outcomes: dict[str, Outcome]) -> None:
    err = check_failed_before_side_effects(outcomes["three-problems"])
    assert re.search(r"\b3 problems? in the spec", err), err
    assert "retrainer.yaml" in err
    assert "evaluate.metirc" in err
    assert "unknown key; did you mean 'metric'?" in err


def test_python_tag_is_refused_and_not_executed(outcomes: dict[str, Outcome]) -> None:
    o = outcomes["python-tag"]
    err = check_failed_before_side_effects(o)
    line = 1 + GENERIC_SPEC.splitlines().index("  seed: 7")
    assert "retrainer.yaml" in err
    assert f"not valid YAML at line {line}" in err
    assert "python/object/apply:os.system" in err
    assert not (o.root / "PWNED").exists()
    assert not (o.cwd / "PWNED").exists()


def test_wrong_type(outcomes: dict[str, Outcome]) -> None:
    err = check_failed_before_side_effects(outcomes["three-problems"])
    text = SPECS["three-problems"] or ""
    line = 1 + next(i for i, s in enumerate(text.splitlines()) if "min_rows: lots" in s)
    assert f"contract.min_rows (line {line})" in err
    assert "valid integer" in err
    assert "given: 'lots'" in err


def test_missing_field(outcomes: dict[str, Outcome]) -> None:
    err = check_failed_before_side_effects(outcomes["three-problems"])
    assert "model.target" in err
    assert "required key is missing" in err


def test_missing_spec_suggests_init(outcomes: dict[str, Outcome]) -> None:
    o = outcomes["missing-spec"]
    err = check_failed_before_side_effects(o)
    assert "retrainer.yaml" in err
    assert "no spec file" in err
    assert "retrainer init" in err


def test_user_text_in_an_error_is_printed_verbatim(outcomes: dict[str, Outcome]) -> None:
    """Values and regex patterns in a message are text, not rich markup: '[/bold]' must not
    crash the CLI (exit 1 with a MarkupError traceback) and '[a-z0-9]' must not vanish."""
    err = check_failed_before_side_effects(outcomes["markup-in-value"])
    assert "model.name" in err
    assert "'[/bold]My[red]Model'" in err
    assert "[a-z0-9]" in err
