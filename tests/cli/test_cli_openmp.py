"""The CLI's process makes OpenMP's waiting threads sleep (unless the user says
otherwise), set before scikit-learn loads OpenMP; a library import changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys


def _probe(module: str, env: dict[str, str]) -> str:
    code = f"import os, retrainer{module}; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_the_cli_sets_a_passive_wait_policy_and_respects_the_users() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _probe(".cli", env) == "PASSIVE"
    assert _probe(".cli", env | {"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
    assert _probe("", env) == "None"  # import retrainer: untouched


def test_the_policy_is_set_before_scikit_learn_is_imported() -> None:
    code = (
        "import builtins, os\n"
        "real = builtins.__import__\n"
        "def spy(name, *a, **k):\n"
        "    if name.startswith('sklearn') and 'seen' not in os.environ:\n"
        "        os.environ['seen'] = os.environ.get('OMP_WAIT_POLICY', 'unset')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = spy\n"
        "import retrainer.cli\n"
        "print(os.environ['seen'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "PASSIVE"
