"""McNemar's test against a published table and against the binomial distribution."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from retrainer.evaluate.mcnemar import mcnemar, mcnemar_from_predictions


def test_the_published_example_of_fagerland_et_al() -> None:
    # Fagerland, Lydersen & Laake (2013), BMC Med Res Methodol 13:91, Table 1 (Bentur et
    # al.): b = 1, c = 7 -> exact conditional p = 0.070, mid-p = 0.039
    result = mcnemar(1, 7)
    assert result["p_exact"] == pytest.approx(18 / 256, abs=1e-12)
    assert round(result["p_exact"], 3) == 0.070
    assert result["p_mid"] == pytest.approx(10 / 256, abs=1e-12)
    assert round(result["p_mid"], 3) == 0.039


@pytest.mark.parametrize(("b", "c"), [(0, 0), (5, 5), (3, 12), (40, 21), (0, 9)])
def test_exact_p_is_the_two_sided_binomial_test_and_mid_p_is_smaller(b: int, c: int) -> None:
    result = mcnemar(b, c)
    want = 1.0 if b + c == 0 else binomtest(min(b, c), b + c, 0.5).pvalue
    assert result["p_exact"] == pytest.approx(want, abs=1e-12)
    assert result["p_mid"] <= result["p_exact"]
    assert mcnemar(c, b) == {**result, "b": c, "c": b}  # symmetric in the two models


def test_counts_from_predictions() -> None:
    y = np.array([1, 1, 0, 0, 1, 0])
    champion = np.array([1, 0, 0, 1, 1, 0])  # right on rows 0, 2, 4, 5
    candidate = np.array([1, 1, 1, 0, 0, 0])  # right on rows 0, 1, 3, 5
    result = mcnemar_from_predictions(y, champion, candidate)
    assert (result["b"], result["c"], result["both_right"], result["both_wrong"]) == (2, 2, 2, 0)
    assert result["accuracy_champion"] == result["accuracy_candidate"] == 4 / 6
