"""The servability gate: the stored artifact loads in a fresh process and predicts in time.

A new Python process (``sys.executable``) opens the artifact store, reads the blob by its
sha256 (the hash is checked), deserialises it exactly as serving does
(:func:`retrainer.registry.serialization.load_model`, with the spec's trusted types),
and predicts a sample of holdout rows: one warm-up call, then ``REPEATS`` timed calls.
The gate passes when the median call is within ``latency_ms`` and the predictions equal
those of the model that was evaluated. The child's load time is recorded too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrainer.evaluate.decision import GateResult

if TYPE_CHECKING:
    from retrainer.spec import ServabilitySpec

__all__ = ["REPEATS", "StoredArtifact", "judge_child", "servability_gate"]

REPEATS = 5

_CHILD = r"""
import json, sys, time
from pathlib import Path

req = json.loads(sys.stdin.read())
t0 = time.perf_counter()
import pandas as pd
from retrainer.registry.artifacts import ArtifactStore
from retrainer.registry.serialization import load_model

store = ArtifactStore.from_uri(req["uri"], base_dir=Path(req["base_dir"]))
model = load_model(store.get(req["sha256"]), extra_trusted=req["trusted"])
load_s = time.perf_counter() - t0
X = pd.read_parquet(req["sample"])
pred = model.predict(X)  # warm-up
times = []
for _ in range(req["repeats"]):
    t = time.perf_counter()
    pred = model.predict(X)
    times.append((time.perf_counter() - t) * 1000.0)
print(json.dumps({"load_seconds": load_s, "ms": times, "predictions": pred.tolist()}))
"""


@dataclass(frozen=True)
class StoredArtifact:
    """Where the candidate's artifact is stored, as a fresh process can open it."""

    uri: str
    sha256: str
    base_dir: str = "."
    trusted_types: tuple[str, ...] = ()


def servability_gate(
    spec: ServabilitySpec,
    artifact: StoredArtifact | None,
    model: Any,
    sample: pd.DataFrame,
) -> GateResult:
    """Load ``artifact`` in a child process and time its predictions on ``sample``
    (the feature columns of some holdout rows); compare with ``model``'s own."""
    if artifact is None:
        return GateResult("servability", "skipped", "no stored artifact to load")
    if artifact.uri.startswith("memory://"):
        return GateResult(
            "servability",
            "skipped",
            "an in-memory artifact store cannot be opened by another process",
        )
    sample = sample.head(spec.sample_rows).reset_index(drop=True)
    numbers: dict[str, Any] = {"latency_ms": spec.latency_ms, "sample_rows": len(sample)}
    with tempfile.TemporaryDirectory(prefix="retrainer-serve-") as tmp:
        path = Path(tmp, "sample.parquet")
        sample.to_parquet(path)
        request = {
            "uri": artifact.uri,
            "sha256": artifact.sha256,
            "base_dir": artifact.base_dir,
            "trusted": list(artifact.trusted_types),
            "sample": str(path),
            "repeats": REPEATS,
        }
        try:
            done = subprocess.run(
                [sys.executable, "-c", _CHILD],
                input=json.dumps(request),
                env=_child_env(),
                capture_output=True,
                text=True,
                timeout=spec.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return GateResult(
                "servability",
                "fail",
                f"loading and predicting {len(sample)} rows in a fresh process took longer "
                f"than {spec.timeout_s} s",
                numbers=numbers,
            )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return GateResult(
            "servability",
            "fail",
            f"the stored artifact could not be loaded or used in a fresh process: {tail[0]}",
            numbers={**numbers, "stderr": done.stderr[-2000:]},
        )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return judge_child(spec, result, np.asarray(model.predict(sample)).tolist(), numbers)


def judge_child(
    spec: ServabilitySpec, result: dict[str, Any], expected: list[Any], numbers: dict[str, Any]
) -> GateResult:
    """The verdict on the child's report ``{load_seconds, ms: [...], predictions}``."""
    ms = round(float(np.median(result["ms"])), 3)
    numbers = {
        **numbers,
        "load_seconds": round(result["load_seconds"], 4),
        "median_ms": ms,
        "max_ms": round(max(result["ms"]), 3),
        "calls": len(result["ms"]),
    }
    rows = numbers.get("sample_rows", len(expected))
    if not _same(expected, result["predictions"]):
        return GateResult(
            "servability",
            "fail",
            "the artifact loaded in a fresh process predicts differently from the model "
            "that was evaluated",
            value=ms,
            threshold=spec.latency_ms,
            numbers=numbers,
        )
    ok = ms <= spec.latency_ms
    return GateResult(
        "servability",
        "pass" if ok else "fail",
        f"loads in a fresh process in {result['load_seconds']:.2f} s and predicts "
        f"{rows} rows in {ms:.1f} ms (median of {len(result['ms'])}), "
        f"{'within' if ok else 'over'} the budget of {spec.latency_ms:g} ms",
        value=ms,
        threshold=spec.latency_ms,
        numbers=numbers,
    )


def _child_env() -> dict[str, str]:
    """The parent's environment, with its import path: the child imports the same
    retrainer and the same modules the model's classes come from."""
    paths = [p for p in sys.path if p and Path(p).exists()]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _same(a: list[Any], b: list[Any]) -> bool:
    try:
        return bool(
            np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), equal_nan=True)
        )
    except (TypeError, ValueError):
        return a == b
