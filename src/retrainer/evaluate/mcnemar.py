"""McNemar's test of paired accuracy: exact (binomial) and mid-p, from scipy.

Of the rows where exactly one model is right, ``b`` are rows only the champion gets
right and ``c`` rows only the candidate gets right. Under "equally accurate" each such
row is a fair coin, so ``min(b, c)`` is binomial(``b + c``, 1/2). The exact p-value is
the two-sided binomial test; the mid-p value subtracts half the probability of the
observed count from each tail, which keeps the level closer to nominal (Fagerland,
Lydersen & Laake 2013, "The McNemar test for binary matched-pairs data").

Example (their table with b = 1, c = 7):

>>> r = mcnemar(1, 7)
>>> round(r["p_exact"], 4), round(r["p_mid"], 4)
(0.0703, 0.0391)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import binom, binomtest

__all__ = ["mcnemar", "mcnemar_from_predictions"]


def mcnemar(b: int, c: int) -> dict[str, Any]:
    """Exact and mid-p two-sided McNemar p-values from the discordant counts."""
    n = b + c
    if n == 0:
        return {"b": b, "c": c, "p_exact": 1.0, "p_mid": 1.0}
    k = min(b, c)
    p_exact = float(binomtest(k, n, 0.5).pvalue)
    p_mid = float(min(1.0, 2.0 * (binom.cdf(k, n, 0.5) - 0.5 * binom.pmf(k, n, 0.5))))
    return {"b": b, "c": c, "p_exact": p_exact, "p_mid": p_mid}


def mcnemar_from_predictions(
    y: np.ndarray[Any, Any], champion: np.ndarray[Any, Any], candidate: np.ndarray[Any, Any]
) -> dict[str, Any]:
    """McNemar on predicted labels, with both accuracies and the 2x2 table's counts."""
    right_champ, right_cand = champion == y, candidate == y
    b = int((right_champ & ~right_cand).sum())
    c = int((~right_champ & right_cand).sum())
    return {
        **mcnemar(b, c),
        "both_right": int((right_champ & right_cand).sum()),
        "both_wrong": int((~right_champ & ~right_cand).sum()),
        "accuracy_champion": float(right_champ.mean()) if len(y) else None,
        "accuracy_candidate": float(right_cand.mean()) if len(y) else None,
    }
