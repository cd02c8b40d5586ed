"""The fairness gate: group metrics of the candidate with fairlearn's MetricFrame.

For each sensitive column (any holdout column, whether or not the model uses it) the
rows are grouped by value; groups with fewer than ``min_group_size`` rows are listed but
not judged. On the judged groups, for a binary classifier:

- **demographic parity difference**: the largest gap in selection rate (share predicted
  positive) between two groups, fairlearn's ``demographic_parity_difference``;
- **equalized odds difference**: the larger of the gaps in true-positive rate and in
  false-positive rate, fairlearn's ``equalized_odds_difference``;

and for any model, optionally, the largest gap of ``evaluate.metric`` between groups
(``MetricFrame.difference()``). A gap above its threshold fails the gate, naming the
column and the two groups. A group without positive or without negative labels makes
the true- or false-positive rate undefined there (fairlearn would report 0): the gate is
then ``not_evaluable`` with the group named. fairlearn is imported only when the gate runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrainer.evaluate.decision import GateResult
from retrainer.evaluate.outputs import positive_label, safe_score

if TYPE_CHECKING:
    from retrainer.spec import FairnessSpec

__all__ = ["fairness_gate", "group_numbers"]

Array = np.ndarray[Any, Any]
MISSING = "(missing)"


def group_numbers(
    metric: str,
    y: Array,
    labels: Array | None,
    scored: Array,
    groups: pd.Series,
    *,
    binary: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """fairlearn's numbers for one sensitive column: the differences, and a row per group.

    ``labels`` are predicted labels (None for a regressor), ``scored`` what ``metric``
    scores. Returns ``(differences, rows)``.
    """
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    def count(yt: Array, yp: Array) -> int:
        return len(yt)

    def primary(yt: Array, yp: Array) -> float:
        return safe_score(metric, np.asarray(yt), np.asarray(yp))

    diffs: dict[str, Any] = {}
    by_metric = MetricFrame(
        metrics={"rows": count, "candidate": primary},
        y_true=y,
        y_pred=scored,
        sensitive_features=groups,
    )
    table = by_metric.by_group
    diffs["metric_difference"] = _num(by_metric.difference()["candidate"])
    if binary and labels is not None:
        pos = positive_label(y)
        yb, pb = (y == pos).astype(int), (labels == pos).astype(int)
        rates = MetricFrame(
            metrics={
                "selection_rate": selection_rate,
                "true_positive_rate": true_positive_rate,
                "false_positive_rate": false_positive_rate,
                "positives": lambda yt, yp: int(np.sum(yt)),
            },
            y_true=yb,
            y_pred=pb,
            sensitive_features=groups,
        ).by_group
        table = table.join(rates)
        diffs["demographic_parity_difference"] = _num(
            demographic_parity_difference(yb, pb, sensitive_features=groups)
        )
        diffs["equalized_odds_difference"] = _num(
            equalized_odds_difference(yb, pb, sensitive_features=groups)
        )
    rows = [
        {"group": str(group), **{k: _plain(v) for k, v in values.items()}}
        for group, values in table.iterrows()
    ]
    for r in rows:
        r["rows"] = int(r["rows"])
    return diffs, rows


def fairness_gate(
    spec: FairnessSpec,
    metric: str,
    holdout: pd.DataFrame,
    y: Array,
    labels: Array | None,
    scored: Array,
    *,
    champion: tuple[Array | None, Array] | None = None,
) -> GateResult:
    """Judge the candidate's group gaps; ``champion`` = its (labels, scored), for context."""
    missing = [c for c in spec.sensitive if c not in holdout.columns]
    if missing:
        return GateResult(
            "fairness",
            "not_evaluable",
            f"sensitive column(s) not in the holdout: {', '.join(missing)}",
        )
    binary = labels is not None and len(np.unique(y[pd.notna(y)])) == 2
    problems: list[str] = []
    unknown: list[str] = []
    numbers: dict[str, Any] = {
        "demographic_parity_max": spec.demographic_parity_max,
        "equalized_odds_max": spec.equalized_odds_max,
        "metric_difference_max": spec.metric_difference_max,
        "min_group_size": spec.min_group_size,
        "features": {},
    }
    details: list[dict[str, Any]] = []
    for column in spec.sensitive:
        g = holdout[column].astype(object).map(str).where(holdout[column].notna(), MISSING)
        g = g.reset_index(drop=True).rename(column)
        sizes = g.value_counts()
        big = sizes[sizes >= spec.min_group_size].index
        keep = g.isin(big).to_numpy()
        small = sorted(str(v) for v in sizes.index if v not in big)
        details += [
            {"feature": column, "group": s, "rows": int(sizes[s]), "judged": False} for s in small
        ]
        if len(big) < 2:
            unknown.append(
                f"{column} has fewer than two groups of at least {spec.min_group_size} rows"
            )
            continue
        args = (y[keep], None if labels is None else labels[keep], scored[keep], g[keep])
        diffs, rows = group_numbers(metric, *args, binary=binary)
        entry: dict[str, Any] = {
            "candidate": diffs,
            "judged_groups": len(big),
            "small_groups": small,
        }
        if champion is not None:
            cl, cs = champion
            cdiffs, crows = group_numbers(
                metric, y[keep], None if cl is None else cl[keep], cs[keep], g[keep], binary=binary
            )
            entry["champion"] = cdiffs
            by_group = {r["group"]: r for r in crows}
            for r in rows:
                r["champion"] = by_group[r["group"]].get("candidate")
                if "selection_rate" in by_group[r["group"]]:
                    r["champion_selection_rate"] = by_group[r["group"]]["selection_rate"]
        numbers["features"][column] = entry
        details += [{"feature": column, **r, "judged": True} for r in rows]
        _judge(spec, column, metric, diffs, rows, binary, problems, unknown)
    if problems:
        return GateResult(
            "fairness",
            "fail",
            "; ".join(problems + unknown),
            numbers=numbers,
            details=tuple(details),
        )
    if unknown:
        return GateResult(
            "fairness", "not_evaluable", "; ".join(unknown), numbers=numbers, details=tuple(details)
        )
    limits = {
        "demographic_parity_difference": spec.demographic_parity_max,
        "equalized_odds_difference": spec.equalized_odds_max,
        "metric_difference": spec.metric_difference_max,
    }
    shown = [
        f"{key.replace('_difference', '').replace('_', ' ')} on {column} "
        f"{entry['candidate'][key]:.4f} <= {limit}"
        for column, entry in numbers["features"].items()
        for key, limit in limits.items()
        if limit is not None and entry["candidate"].get(key) is not None
    ]
    return GateResult(
        "fairness",
        "pass",
        "group gaps within their thresholds: " + ", ".join(shown),
        numbers=numbers,
        details=tuple(details),
    )


def _judge(
    spec: FairnessSpec,
    column: str,
    metric: str,
    diffs: dict[str, Any],
    rows: list[dict[str, Any]],
    binary: bool,
    problems: list[str],
    unknown: list[str],
) -> None:
    """Compare each configured gap with its threshold; append plain-language findings."""
    checks: list[tuple[str, float | None, str, str]] = [
        ("metric_difference", spec.metric_difference_max, "candidate", f"{metric}"),
    ]
    if spec.demographic_parity_max is not None or spec.equalized_odds_max is not None:
        if not binary:
            unknown.append(
                f"{column}: demographic parity and equalized odds are defined for binary "
                "classifiers only (set them to null for this model)"
            )
        else:
            one_class = [r["group"] for r in rows if r["positives"] in (0, r["rows"])]
            if spec.equalized_odds_max is not None and one_class:
                unknown.append(
                    f"{column}: equalized odds is undefined for group(s) "
                    f"{', '.join(map(repr, one_class))} (only one label class there)"
                )
            else:
                tpr = _gap(rows, "true_positive_rate")
                fpr = _gap(rows, "false_positive_rate")
                worst = "true_positive_rate" if tpr >= fpr else "false_positive_rate"
                checks.append(
                    (
                        "equalized_odds_difference",
                        spec.equalized_odds_max,
                        worst,
                        worst.replace("_", " "),
                    )
                )
            checks.append(
                (
                    "demographic_parity_difference",
                    spec.demographic_parity_max,
                    "selection_rate",
                    "selection rate",
                )
            )
    for key, limit, column_of_rows, words in checks:
        if limit is None:
            continue
        value = diffs.get(key)
        if value is None:
            unknown.append(f"{column}: {key.replace('_', ' ')} could not be computed")
            continue
        if value > limit:
            judged = [r for r in rows if r.get(column_of_rows) is not None]
            hi = max(judged, key=lambda r: r[column_of_rows])
            lo = min(judged, key=lambda r: r[column_of_rows])
            problems.append(
                f"{key.replace('_', ' ')} on {column} is {value:.4f} > {limit}: {words} "
                f"{hi[column_of_rows]:.4f} for {hi['group']!r} vs {lo[column_of_rows]:.4f} "
                f"for {lo['group']!r}"
            )


def _gap(rows: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in rows if r.get(key) is not None]
    return max(values) - min(values) if values else 0.0


def _num(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v
