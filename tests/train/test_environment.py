"""Environment capture: Python, platform, package versions, lock hash, code commit."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import sklearn

from retrainer.train import capture_environment


def git(cwd: Path, *args: str) -> str:
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]
    done = subprocess.run(
        ["git", *identity, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_it_records_python_platform_and_key_package_versions(tmp_path: Path) -> None:
    env = capture_environment(tmp_path)
    assert env["python"] == platform.python_version() == sys.version.split()[0]
    assert env["platform"] == platform.platform()
    assert env["packages"]["numpy"] == np.__version__
    assert env["packages"]["scikit-learn"] == sklearn.__version__
    assert env["packages"]["retrainer"] == metadata.version("retrainer")
    assert set(env["packages"]) <= {
        "retrainer",
        "scikit-learn",
        "numpy",
        "pandas",
        "scipy",
        "skops",
    }
    json.dumps(env)  # stored with the model version as JSON


def test_the_lock_hash_is_a_stable_sha256_of_the_installed_packages(tmp_path: Path) -> None:
    first, second = capture_environment(tmp_path), capture_environment(tmp_path / "..")
    digest = first["env_lock_sha256"]
    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")
    assert second["env_lock_sha256"] == digest  # depends on the packages, not the folder


def test_a_folder_that_is_not_a_repository_has_no_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # look no higher
    assert capture_environment(tmp_path)["code_commit"] is None


def test_a_repository_without_commits_has_no_commit(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    assert capture_environment(tmp_path)["code_commit"] is None


def test_the_commit_of_a_repository_is_recorded(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "retrainer.yaml").write_text("model: {}\n")
    git(tmp_path, "add", "retrainer.yaml")
    git(tmp_path, "commit", "-q", "-m", "spec")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert len(head) == 40
    assert capture_environment(tmp_path)["code_commit"] == head
    (tmp_path / "sub").mkdir()
    assert capture_environment(tmp_path / "sub")["code_commit"] == head


def test_no_git_on_the_path_means_no_commit_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git(tmp_path, "init", "-q")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert capture_environment(tmp_path)["code_commit"] is None
