"""The vectorised paired bootstrap against scikit-learn and a slow reference loop."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.stats import norm

from retrainer.evaluate import METRICS, batch_metric, paired_bootstrap, score

Array = np.ndarray[Any, Any]


def binary_pair(seed: int, n: int, champ_signal: float, cand_signal: float) -> tuple[Array, ...]:
    """Labels and two scores per row: the higher the signal, the better the ranking."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    champion = rng.normal(size=n) + champ_signal * y
    candidate = rng.normal(size=n) + cand_signal * y
    return y, champion, candidate


def to_proba(scores: Array) -> Array:
    return np.asarray(1 / (1 + np.exp(-scores)))


def outputs_for(name: str, seed: int = 0, n: int = 150) -> tuple[Array, Array, Array]:
    """(y, champion output, candidate output) of the kind metric ``name`` scores."""
    y, champ, cand = binary_pair(seed, n, 0.6, 1.2)
    uses = METRICS[name].uses
    if uses == "proba":
        return y, to_proba(champ), to_proba(cand)
    if uses == "label":
        return y, (champ > 0.3).astype(int), (cand > 0.6).astype(int)
    rng = np.random.default_rng(seed)
    target = rng.normal(size=n)
    return (
        target,
        target + rng.normal(scale=1.0, size=n),
        target + rng.normal(scale=0.7, size=n),
    )


def reference_bootstrap(
    name: str,
    y: Array,
    champion: Array,
    candidate: Array,
    *,
    resamples: int,
    confidence: float,
    seed: int,
) -> tuple[float, float, float]:
    """The textbook paired bootstrap: one resample at a time, each scored by scikit-learn.

    Draws the row indices the way the implementation does (one ``integers`` call for a
    resamples x rows matrix), so the same seed means the same resampled rows.
    """
    sign = 1.0 if METRICS[name].higher_is_better else -1.0
    observed = sign * (score(name, y, candidate) - score(name, y, champion))
    idx = np.random.default_rng(seed).integers(0, len(y), size=(resamples, len(y)))
    diffs = []
    for rows in idx:
        try:
            diffs.append(
                sign
                * (score(name, y[rows], candidate[rows]) - score(name, y[rows], champion[rows]))
            )
        except ValueError:
            diffs.append(np.nan)
    alpha = 1 - confidence
    lo, hi = np.nanquantile(np.array(diffs), [alpha / 2, 1 - alpha / 2])
    return observed, float(lo), float(hi)


# -- batch_metric: one metric value per row of a (resamples x rows) matrix --------------


@pytest.mark.parametrize("name", sorted(METRICS))
def test_batch_metric_equals_scikit_learn_row_by_row(name: str) -> None:
    y, _, out = outputs_for(name, seed=3)
    idx = np.random.default_rng(4).integers(0, len(y), size=(40, len(y)))
    values = batch_metric(name, y[idx], out[idx])
    expected = [score(name, y[rows], out[rows]) for rows in idx]
    assert values.shape == (40,)
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12)


def test_batch_roc_auc_handles_tied_scores_as_scikit_learn_does() -> None:
    y, _, cand = binary_pair(5, 200, 0.0, 1.0)
    tied = np.round(to_proba(cand), 1)  # only ~10 distinct values: many ties
    idx = np.random.default_rng(6).integers(0, len(y), size=(30, len(y)))
    expected = [score("roc_auc", y[rows], tied[rows]) for rows in idx]
    np.testing.assert_allclose(batch_metric("roc_auc", y[idx], tied[idx]), expected, atol=1e-12)


def test_batch_metric_gives_nan_where_a_resample_has_one_class() -> None:
    y = np.array([[1, 1, 1, 1], [0, 1, 0, 1]])
    p = np.array([[0.2, 0.4, 0.6, 0.8], [0.1, 0.9, 0.2, 0.7]])
    auc = batch_metric("roc_auc", y, p)
    assert np.isnan(auc[0]) and auc[1] == 1.0
    loss = batch_metric("log_loss", y, p)  # scikit-learn raises here: caught, NaN
    assert np.isnan(loss[0]) and np.isfinite(loss[1])


# -- paired_bootstrap -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["roc_auc", "accuracy", "rmse", "mae", "log_loss", "r2"])
def test_paired_bootstrap_equals_a_slow_reference_loop_on_the_same_seed(name: str) -> None:
    y, champ, cand = outputs_for(name, seed=7)
    got = paired_bootstrap(
        name, y, champ, cand, resamples=100, confidence=0.9, rng=np.random.default_rng(11)
    )
    want = reference_bootstrap(name, y, champ, cand, resamples=100, confidence=0.9, seed=11)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_paired_bootstrap_on_multiclass_probabilities_equals_the_reference() -> None:
    rng = np.random.default_rng(8)
    y = rng.integers(0, 3, size=120)

    def proba(strength: float) -> Array:
        logits = rng.normal(size=(120, 3)) + strength * np.eye(3)[y]
        return np.asarray(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True))

    champ, cand = proba(0.5), proba(1.5)
    got = paired_bootstrap(
        "roc_auc", y, champ, cand, resamples=60, confidence=0.95, rng=np.random.default_rng(2)
    )
    want = reference_bootstrap("roc_auc", y, champ, cand, resamples=60, confidence=0.95, seed=2)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_same_seed_same_interval_other_seed_other_interval() -> None:
    y, champ, cand = binary_pair(9, 300, 0.8, 1.0)

    def run(seed: int) -> tuple[float, float, float]:
        return paired_bootstrap(
            "roc_auc",
            y,
            champ,
            cand,
            resamples=300,
            confidence=0.95,
            rng=np.random.default_rng(seed),
        )

    assert run(42) == run(42)
    other = run(43)
    assert other[0] == run(42)[0]  # the observed difference does not depend on the rng
    assert other[1:] != run(42)[1:]


def test_observed_is_the_oriented_full_sample_difference() -> None:
    y, champ, cand = outputs_for("rmse", seed=10)
    observed, lo, hi = paired_bootstrap(
        "rmse", y, champ, cand, resamples=200, confidence=0.95, rng=np.random.default_rng(0)
    )
    # lower is better: improvement is champion - candidate, positive for the better candidate
    assert observed == pytest.approx(score("rmse", y, champ) - score("rmse", y, cand), abs=1e-12)
    assert observed > 0 and lo < observed < hi


def test_lower_bound_is_above_zero_when_the_candidate_is_clearly_better() -> None:
    y, champ, cand = binary_pair(12, 500, 0.3, 1.5)
    observed, lo, hi = paired_bootstrap(
        "roc_auc", y, champ, cand, resamples=500, confidence=0.95, rng=np.random.default_rng(1)
    )
    assert 0 < lo < observed < hi


def test_a_clearly_worse_candidate_has_an_interval_below_zero() -> None:
    y, champ, cand = outputs_for("mae", seed=13, n=400)
    observed, lo, hi = paired_bootstrap(
        "mae", y, cand, champ, resamples=300, confidence=0.95, rng=np.random.default_rng(1)
    )  # roles swapped: the noisier model is the candidate
    assert lo < observed < hi < 0


def test_identical_models_give_a_zero_width_interval_at_zero() -> None:
    y, champ, _ = outputs_for("roc_auc", seed=14)
    result = paired_bootstrap(
        "roc_auc",
        y,
        champ,
        champ.copy(),
        resamples=100,
        confidence=0.95,
        rng=np.random.default_rng(0),
    )
    assert result == (0.0, 0.0, 0.0)


def test_a_higher_confidence_gives_a_wider_interval_on_the_same_draws() -> None:
    y, champ, cand = binary_pair(15, 300, 0.8, 1.0)

    def interval(confidence: float) -> tuple[float, float]:
        _, lo, hi = paired_bootstrap(
            "roc_auc",
            y,
            champ,
            cand,
            resamples=400,
            confidence=confidence,
            rng=np.random.default_rng(5),
        )
        return lo, hi

    lo90, hi90 = interval(0.90)
    lo99, hi99 = interval(0.99)
    assert lo99 < lo90 < hi90 < hi99


def test_coverage_of_a_known_accuracy_difference_is_close_to_nominal() -> None:
    # champion right with probability 0.7, candidate 0.8, independently: true difference 0.1
    rng = np.random.default_rng(2024)
    reps, n, hits = 300, 300, 0
    for _ in range(reps):
        y = rng.integers(0, 2, size=n)
        champ = np.where(rng.random(n) < 0.7, y, 1 - y)
        cand = np.where(rng.random(n) < 0.8, y, 1 - y)
        _, lo, hi = paired_bootstrap(
            "accuracy", y, champ, cand, resamples=400, confidence=0.9, rng=rng
        )
        hits += lo <= 0.1 <= hi
    # nominal 0.90; the binomial standard error over 300 replications is about 0.017
    assert 0.85 <= hits / reps <= 0.95


def test_coverage_of_a_known_auc_difference_is_close_to_nominal() -> None:
    # scores N(signal * y, 1): AUC = Phi(signal / sqrt 2), so the true difference is known
    true = norm.cdf(1.0 / np.sqrt(2)) - norm.cdf(0.5 / np.sqrt(2))
    rng = np.random.default_rng(77)
    reps, hits = 150, 0
    for _ in range(reps):
        y = rng.integers(0, 2, size=200)
        champ = rng.normal(size=200) + 0.5 * y
        cand = rng.normal(size=200) + 1.0 * y
        _, lo, hi = paired_bootstrap(
            "roc_auc", y, champ, cand, resamples=200, confidence=0.9, rng=rng
        )
        hits += lo <= true <= hi
    # nominal 0.90; standard error over 150 replications is about 0.025
    assert 0.82 <= hits / reps <= 0.97


def test_resamples_in_chunks_equal_one_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large holdouts are resampled in chunks (bounded memory) with the same indices."""
    import retrainer.evaluate.bootstrap as bootstrap

    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=301)
    champ, cand = rng.random(301), rng.random(301)

    def run() -> tuple[float, float, float]:
        return paired_bootstrap(
            "roc_auc", y, champ, cand, resamples=250, confidence=0.95, rng=np.random.default_rng(8)
        )

    whole = run()
    monkeypatch.setattr(bootstrap, "CHUNK_CELLS", 301 * 7)  # 7 resamples per chunk
    assert run() == whole
