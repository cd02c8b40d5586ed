"""Simulation: the paired bootstrap interval covers the true difference at its stated rate.

400 holdouts are drawn from one population whose true accuracy difference is known
(+0.04), each gets a 95 % interval from 1,000 resamples (vectorised over resamples), and
the share of intervals that contain +0.04 must be 95 % +- 3 %.
"""

from __future__ import annotations

import numpy as np
import pytest

from retrainer.evaluate import paired_bootstrap

# joint distribution of (champion right, candidate right) on one row
BOTH, CHAMP_ONLY, CAND_ONLY = 0.70, 0.08, 0.12
TRUE_DIFFERENCE = CAND_ONLY - CHAMP_ONLY


def holdout(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, size=n)
    u = rng.random(n)
    champ_ok = u < BOTH + CHAMP_ONLY
    cand_ok = (u < BOTH) | ((u >= BOTH + CHAMP_ONLY) & (u < BOTH + CHAMP_ONLY + CAND_ONLY))
    return y, np.where(champ_ok, y, 1 - y), np.where(cand_ok, y, 1 - y)


@pytest.mark.slow
def test_95_percent_intervals_cover_the_true_difference_95_percent_of_the_time() -> None:
    covered = []
    for seed in range(400):
        rng = np.random.default_rng(seed)
        y, champion, candidate = holdout(rng, 400)
        _, lo, hi = paired_bootstrap(
            "accuracy", y, champion, candidate, resamples=1000, confidence=0.95, rng=rng
        )
        covered.append(lo <= TRUE_DIFFERENCE <= hi)
    coverage = float(np.mean(covered))
    print(f"coverage of 95% paired bootstrap intervals over 400 seeds: {coverage:.4f}")
    assert 0.92 <= coverage <= 0.98, coverage
