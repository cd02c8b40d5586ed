"""CBPE: label-free performance estimation, checked where the truth is known.

Simulation: a well-specified logistic model (the label is drawn from a logistic function
of three normal features), fitted on 5,000 rows; CBPE calibrated on a separate
5,000-row reference. Current samples of 2,000 rows move only ``P(x)`` (covariate shift:
27 samples, mean shifted by 0, 0.75 or 1.5 in random directions, scale 0.5, 1 or 1.6),
so the model's probabilities stay right and CBPE should be unbiased. Its error is
compared with two yardsticks measured on the same samples: the naive guess that the
reference metric persists, and an *oracle* CBPE that uses the true probabilities (what
sampling alone costs: a 2,000-row realised accuracy has a standard deviation of about
0.009, so no estimator can average much below ~0.007 absolute error).

Measured with these seeds (mean absolute error over the 27 samples; coverage of the
95 % sampling-error band):

=================  ======  ======  ======  ========
metric             CBPE    oracle  naive   coverage
=================  ======  ======  ======  ========
accuracy           0.0096  0.0065  0.0696  0.78
balanced_accuracy  0.0101  0.0066  0.0825  0.81
f1                 0.0120  0.0077  0.1387  0.81
precision          0.0137  0.0074  0.0773  0.92
recall             0.0127  0.0097  0.1706  0.85
roc_auc            0.0108  0.0079  0.0640  0.85
=================  ======  ======  ======  ========

(precision: 26 samples; one has no predicted positive, where both are undefined.)
The bounds asserted are about twice CBPE's error, and within 0.01 of the oracle, so
the test catches a broken estimator, not sampling noise; CBPE must also be at least
three times better than the naive guess. The band is sampling error only: it leaves
out calibration error (finite reference, the fitted model's own error in shifted
regions), hence coverage below nominal under shift. Under concept shift (the sign of
the strongest coefficient flips) CBPE stays near the reference value (accuracy 0.76
estimated, 0.44 realised; ROC AUC 0.85 and 0.40): asserted large, so the limit is
documented.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from retrainer.monitor import CBPE, CBPE_METRICS, Estimate

BETA = np.array([1.5, -1.0, 0.5])
INTERCEPT = -0.3

Realised = Callable[[np.ndarray[Any, Any], np.ndarray[Any, Any]], float]
REALISED: dict[str, Realised] = {
    "accuracy": lambda y, p: float(accuracy_score(y, p >= 0.5)),
    "balanced_accuracy": lambda y, p: float(balanced_accuracy_score(y, p >= 0.5)),
    "f1": lambda y, p: float(f1_score(y, p >= 0.5, zero_division=np.nan)),
    "precision": lambda y, p: float(precision_score(y, p >= 0.5, zero_division=np.nan)),
    "recall": lambda y, p: float(recall_score(y, p >= 0.5, zero_division=np.nan)),
    "roc_auc": lambda y, p: float(roc_auc_score(y, p)),
}
# mean absolute error CBPE must stay under on the covariate-shift samples
BOUND = {
    "accuracy": 0.02,
    "balanced_accuracy": 0.02,
    "f1": 0.025,
    "precision": 0.03,
    "recall": 0.025,
    "roc_auc": 0.02,
}


def true_proba(x: np.ndarray[Any, Any], beta: np.ndarray[Any, Any] = BETA) -> Any:
    return 1 / (1 + np.exp(-(x @ beta + INTERCEPT)))


def draw(
    rng: np.random.Generator,
    n: int,
    *,
    mean: Any = 0.0,
    scale: float = 1.0,
    beta: np.ndarray[Any, Any] = BETA,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Features, labels and the labels' true probabilities."""
    x = rng.normal(size=(n, 3)) * scale + mean
    p = true_proba(x, beta)
    return x, (rng.uniform(size=n) < p).astype(int), p


class World:
    """A fitted model, its reference rows and one CBPE per metric."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(42)
        x_train, y_train, _ = draw(self.rng, 5000)
        self.model = LogisticRegression().fit(x_train, y_train)
        x_ref, self.y_ref, _ = draw(self.rng, 5000)
        self.p_ref = self.proba(x_ref)
        self.cbpe = {m: CBPE.fit(self.y_ref, self.p_ref, m) for m in CBPE_METRICS}

    def proba(self, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.asarray(self.model.predict_proba(x)[:, 1])


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def oracle(metric: str, p_true: np.ndarray[Any, Any], p_model: np.ndarray[Any, Any]) -> float:
    """CBPE's expected metric computed with the *true* probabilities (no calibration error)."""
    # the model's scores (what is evaluated) mapped row by row to the true probabilities
    order = np.argsort(p_model, kind="mergesort")
    ideal = CBPE(
        metric=metric,
        threshold=0.5,
        calibration_x=p_model[order],
        calibration_y=p_true[order],
        reference_rows=0,
        reference_value=None,
    )
    value = ideal.estimate(p_model).value
    assert value is not None
    return value


@pytest.fixture(scope="module")
def covariate_shift(world: World) -> dict[str, dict[str, Any]]:
    """Per metric: absolute errors of CBPE, oracle and naive, and band coverage."""
    rng = np.random.default_rng(7)
    out: dict[str, dict[str, Any]] = {
        m: {"cbpe": [], "oracle": [], "naive": [], "covered": [], "realised": []}
        for m in CBPE_METRICS
    }
    for shift in (0.0, 0.75, 1.5):
        for scale in (0.5, 1.0, 1.6):
            for _ in range(3):
                direction = rng.normal(size=3)
                direction /= np.linalg.norm(direction)
                x, y, p_true = draw(rng, 2000, mean=shift * direction, scale=scale)
                p = world.proba(x)
                for m in CBPE_METRICS:
                    est = world.cbpe[m].estimate(p)
                    realised = REALISED[m](y, p)
                    if est.value is None or est.lower is None or est.upper is None:
                        # undefined (precision with no predicted positive): so is realised
                        assert np.isnan(realised), (m, realised)
                        continue
                    reference = world.cbpe[m].reference_value
                    assert reference is not None
                    rec = out[m]
                    rec["realised"].append(realised)
                    rec["cbpe"].append(abs(est.value - realised))
                    rec["oracle"].append(abs(oracle(m, p_true, p) - realised))
                    rec["naive"].append(abs(reference - realised))
                    rec["covered"].append(est.lower <= realised <= est.upper)
    return out


@pytest.mark.parametrize("metric", CBPE_METRICS)
def test_cbpe_is_close_to_the_realised_metric_under_covariate_shift(
    covariate_shift: dict[str, dict[str, Any]], metric: str
) -> None:
    rec = covariate_shift[metric]
    cbpe, oracle_err, naive = (float(np.mean(rec[k])) for k in ("cbpe", "oracle", "naive"))
    spread = float(np.ptp(rec["realised"]))
    summary = f"{metric}: CBPE {cbpe:.4f}, oracle {oracle_err:.4f}, naive {naive:.4f}"
    assert spread > 0.1, f"the shifts should move the realised metric ({summary})"
    assert cbpe < BOUND[metric], summary
    assert cbpe < oracle_err + 0.01, summary
    assert cbpe < naive / 3, summary


@pytest.mark.parametrize("metric", CBPE_METRICS)
def test_the_band_is_sampling_error_and_covers_most_shifted_samples(
    covariate_shift: dict[str, dict[str, Any]], metric: str
) -> None:
    """Nominal 95 %, measured 0.78 to 0.92 under shift: calibration error is not in it."""
    coverage = float(np.mean(covariate_shift[metric]["covered"]))
    assert coverage >= 0.7, coverage


def test_cbpe_cannot_see_concept_shift(world: World) -> None:
    """P(y | x) changes: the model's probabilities are wrong and so is the estimate.

    Flipping the sign of the strongest coefficient takes realised accuracy from about
    0.77 to 0.44 while CBPE still says about 0.77: only labels can reveal this.
    """
    rng = np.random.default_rng(11)
    x, y, _ = draw(rng, 2000, beta=np.array([-1.5, -1.0, 0.5]))
    p = world.proba(x)
    for metric in CBPE_METRICS:
        est = world.cbpe[metric].estimate(p)
        reference = world.cbpe[metric].reference_value
        assert est.value is not None and reference is not None
        realised = REALISED[metric](y, p)
        assert abs(est.value - realised) > 0.2, (metric, est.value, realised)
        assert abs(est.value - reference) < 0.05, (metric, est.value, reference)
        assert est.lower is not None and est.upper is not None
        assert not est.lower <= realised <= est.upper


# --- the algorithm, piece by piece --------------------------------------------------------


def identity_cbpe(metric: str) -> CBPE:
    return CBPE(
        metric=metric,
        threshold=0.5,
        calibration_x=np.array([0.0, 1.0]),
        calibration_y=np.array([0.0, 1.0]),
        reference_rows=0,
        reference_value=None,
    )


def test_expected_confusion_matrix_metrics_by_hand() -> None:
    # predicted positive: 0.9 and 0.6 -> TP = 1.5, FP = 0.5; negative: 0.2 -> FN 0.2, TN 0.8
    p = np.array([0.9, 0.2, 0.6])
    tp, fp, fn, tn = 1.5, 0.5, 0.2, 0.8
    expected = {
        "accuracy": (tp + tn) / 3,
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
        "balanced_accuracy": (tp / (tp + fn) + tn / (tn + fp)) / 2,
    }
    for metric, value in expected.items():
        assert identity_cbpe(metric).estimate(p).value == pytest.approx(value)


def test_expected_roc_auc_is_the_mean_auc_over_labels_drawn_from_the_probabilities() -> None:
    rng = np.random.default_rng(3)
    p = rng.beta(2, 3, size=3000)
    draws = [roc_auc_score(rng.uniform(size=p.size) < p, p) for _ in range(400)]
    est = identity_cbpe("roc_auc").estimate(p, rng=np.random.default_rng(5))
    assert est.value == pytest.approx(float(np.mean(draws)), abs=0.003)
    assert est.sampling_error == pytest.approx(float(np.std(draws)), rel=0.2)


def test_expected_roc_auc_ranks_by_the_raw_score_not_the_calibrated_steps() -> None:
    """Isotonic calibration maps many scores to one value; the model's ranking is kept."""
    rng = np.random.default_rng(4)
    p = rng.uniform(size=4000)
    coarse = CBPE(
        metric="roc_auc",
        threshold=0.5,
        calibration_x=np.array([0.0, 0.5, 0.5, 1.0]),
        calibration_y=np.array([0.3, 0.3, 0.7, 0.7]),
        reference_rows=0,
        reference_value=None,
    )
    # scores below 0.5 are 30 % positive, above 0.5 70 %: within each half the model's
    # order is kept (thresholds at raw scores), so the estimate is the mean realised AUC
    y = rng.uniform(size=(300, p.size)) < np.where(p >= 0.5, 0.7, 0.3)
    mean_auc = float(np.mean([roc_auc_score(row, p) for row in y]))
    value = coarse.estimate(p).value
    assert value == pytest.approx(mean_auc, abs=0.005)


def test_sampling_error_matches_label_draws_for_accuracy() -> None:
    rng = np.random.default_rng(8)
    p = rng.uniform(size=1000)
    est = identity_cbpe("accuracy").estimate(p)
    correct = np.maximum(p, 1 - p)  # probability each prediction is right
    analytic = float(np.sqrt(np.sum(correct * (1 - correct))) / p.size)
    assert est.sampling_error == pytest.approx(analytic, rel=0.15)
    assert est.lower == pytest.approx(est.value - 1.96 * est.sampling_error, abs=1e-3)
    assert est.rows == 1000 and est.confidence == 0.95


def test_calibration_is_isotonic_regression_on_the_reference() -> None:
    rng = np.random.default_rng(9)
    raw = rng.uniform(0.1, 0.9, size=1000)
    y = (rng.uniform(size=1000) < raw**2).astype(int)  # over-confident scores
    cbpe = CBPE.fit(y, raw, "accuracy")
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(raw, y)
    probe = np.linspace(0, 1, 501)  # also outside the reference range: clipped
    np.testing.assert_allclose(cbpe.calibrate(probe), iso.predict(probe), atol=1e-12)
    # after calibration the reference's expected positives equal its actual ones
    assert cbpe.calibrate(raw).sum() == pytest.approx(y.sum())


def test_estimate_is_deterministic_and_takes_predict_proba_output(world: World) -> None:
    cbpe = world.cbpe["f1"]
    p = world.p_ref[:500]
    two_columns = np.column_stack([1 - p, p])
    assert cbpe.estimate(p) == cbpe.estimate(two_columns)
    other = cbpe.estimate(p, rng=np.random.default_rng(1))
    assert other.value == cbpe.estimate(p).value


def test_undefined_estimates_are_none() -> None:
    empty = identity_cbpe("accuracy").estimate(np.array([]))
    assert (empty.value, empty.lower, empty.upper, empty.rows) == (None, None, None, 0)
    no_positive_predictions = identity_cbpe("precision").estimate(np.array([0.1, 0.2]))
    assert no_positive_predictions.value is None
    certain = identity_cbpe("roc_auc").estimate(np.array([0.0, 0.0]))
    assert certain.value is None


# --- fitting and persistence --------------------------------------------------------------


def test_fit_accepts_text_labels_with_the_greater_one_positive() -> None:
    rng = np.random.default_rng(12)
    p = rng.uniform(size=600)
    y = np.where(rng.uniform(size=600) < p, "yes", "no")
    cbpe = CBPE.fit(y, p, "recall")
    assert cbpe.positive == "yes"
    assert cbpe.reference_value == pytest.approx(
        recall_score(y, np.where(p >= 0.5, "yes", "no"), pos_label="yes")
    )


@pytest.mark.parametrize(
    ("y", "proba", "metric", "message"),
    [
        (np.zeros(300), np.full(300, 0.5), "accuracy", "at least 200 rows with 20 of each"),
        (np.r_[np.zeros(150), np.ones(40)], np.full(190, 0.5), "accuracy", "got 190 rows"),
        (np.arange(300) % 3, np.full(300, 0.5), "accuracy", "binary classifiers"),
        (np.arange(300) % 2, np.full(300, 0.5), "log_loss", "got 'log_loss' instead"),
        (np.arange(300) % 2, np.full(299, 0.5), "accuracy", "one label per probability"),
        (np.arange(300) % 2, np.r_[1.5, np.full(299, 0.5)], "accuracy", "row 0 is 1.5"),
        (np.arange(300) % 2, np.r_[np.nan, np.full(299, 0.5)], "roc_auc", "row 0 is nan"),
    ],
)
def test_fit_refuses_bad_references(y: Any, proba: Any, metric: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CBPE.fit(y, proba, metric)


def test_round_trip_through_json_bytes(world: World) -> None:
    rng = np.random.default_rng(13)
    x, _, _ = draw(rng, 1500, mean=0.5)
    p = world.proba(x)
    for metric in CBPE_METRICS:
        cbpe = world.cbpe[metric]
        blob = cbpe.to_bytes()
        data = json.loads(blob)  # plain JSON, nothing executable
        assert data["format"] == "retrainer.cbpe" and data["metric"] == metric
        again = CBPE.from_bytes(blob)
        assert again.estimate(p) == cbpe.estimate(p)
        assert again.reference_value == cbpe.reference_value
        assert again.to_bytes() == blob


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x80\x04K\x01.", "not JSON"),  # a pickle
        (b"[1, 2]", "expected a JSON object"),
        (b'{"format": "other"}', "not a CBPE estimator"),
    ],
)
def test_from_bytes_refuses_what_it_did_not_write(blob: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CBPE.from_bytes(blob)


def test_from_bytes_names_a_missing_or_bad_field(world: World) -> None:
    data = json.loads(world.cbpe["accuracy"].to_bytes())
    del data["calibration"]
    with pytest.raises(ValueError, match="missing field 'calibration'"):
        CBPE.from_bytes(json.dumps(data).encode())
    data = json.loads(world.cbpe["accuracy"].to_bytes())
    data["calibration"]["y"][0] = 3.0
    with pytest.raises(ValueError, match="calibration_y must hold probabilities"):
        CBPE.from_bytes(json.dumps(data).encode())


def test_estimate_serialises_to_a_plain_dict(world: World) -> None:
    est = world.cbpe["accuracy"].estimate(world.p_ref[:300])
    assert isinstance(est, Estimate)
    assert json.loads(json.dumps(est.to_dict()))["rows"] == 300


# --- the NOAA rainfall data: a real concept change at row 12,000 --------------------------


def test_rainfall_estimates_are_close_before_the_change_and_far_after() -> None:
    """Model on rows 0-8,000, CBPE on the next 2,000 (its holdout), then 1,000-row chunks.

    Measured: before the change (rows 10,000-12,000) accuracy is off by 0.036 on
    average and ROC AUC by 0.007; after it (rows 12,000-18,000) by 0.27 and 0.63: the
    relation between weather and rain changed, which probabilities cannot show.
    """
    from retrainer.quickstart.rainfall import CHANGE_ROW, load_rainfall

    frame = load_rainfall()
    features = [c for c in frame.columns if c not in ("date", "rain")]
    train, reference = frame.iloc[:8000], frame.iloc[8000:10000]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(train[features], train["rain"])
    p_ref = model.predict_proba(reference[features])[:, 1]
    errors: dict[tuple[str, bool], list[float]] = {}
    for metric in ("accuracy", "roc_auc"):
        cbpe = CBPE.fit(reference["rain"], p_ref, metric)
        for start in range(10_000, 18_000, 1000):
            chunk = frame.iloc[start : start + 1000]
            p = model.predict_proba(chunk[features])[:, 1]
            value = cbpe.estimate(p).value
            assert value is not None
            err = abs(value - REALISED[metric](chunk["rain"].to_numpy(), p))
            errors.setdefault((metric, start >= CHANGE_ROW), []).append(err)
    mean = {k: float(np.mean(v)) for k, v in errors.items()}
    assert mean[("accuracy", False)] < 0.06, mean
    assert mean[("roc_auc", False)] < 0.04, mean
    assert mean[("accuracy", True)] > 0.2, mean
    assert mean[("roc_auc", True)] > 0.5, mean
