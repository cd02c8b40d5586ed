"""Model card sections on how a version was judged and what became of it: evaluation,
slices, fairness, robustness, the decision record, approvals, deployment and monitoring.

Each function reads the evidence dict (:attr:`CardEvidence.data`) or its decision record
and returns blocks (:mod:`.card_blocks`); none computes a number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from retrainer.governance.card_blocks import (
    MONITORING_PLOT,
    Block,
    ci,
    gate,
    num,
    para,
    plot,
    score_table,
    status,
    table,
    vlabel,
    when,
)

__all__ = [
    "OWN_PLOTS",
    "approvals",
    "decision",
    "deployment",
    "evaluation",
    "fairness",
    "robustness",
    "slices",
]

_SLICES = [
    "slice",
    "rows",
    "candidate",
    "champion",
    "improvement",
    "ci_low",
    "ci_high",
    "p_adjusted",
    "status",
]
_GROUPS = [
    "feature",
    "group",
    "rows",
    "candidate",
    "selection_rate",
    "true_positive_rate",
    "false_positive_rate",
    "champion",
    "champion_selection_rate",
    "judged",
]
_PERTURBATIONS = [
    "perturbation",
    "share",
    "clean",
    "perturbed",
    "drop",
    "champion_drop",
    "status",
    "error",
]
_GAPS = ["feature", "model", "demographic parity diff.", "equalized odds diff.", "metric diff."]
_APPROVALS = ["when", "actor", "role", "decision", "override", "comment", "expires", "bound"]
_ROLLOUTS = [
    "rollout",
    "strategy",
    "state",
    "candidate",
    "baseline",
    "steps",
    "started",
    "finished",
    "reason",
]
_SLICE_PLOT, _GROUP_PLOT = "slices: per slice", "fairness: per slice"
OWN_PLOTS: Final = (_SLICE_PLOT, _GROUP_PLOT)
"""Decision-record plots shown in their own section (the others go under evaluation)."""


def _placed(key: str, plots: Sequence[str]) -> list[Block]:
    return [plot(key)] if key in plots else []


def evaluation(e: Mapping[str, Any], plots: Iterable[str]) -> list[Block]:
    """The metric of candidate and champion, the interval of the improvement, McNemar,
    the champion on both holdouts, the stored metrics, and ``plots`` (decision-record
    plot titles not shown in another section)."""
    d = e["record"].get("decision") or {}
    champ = d.get("champion_version")
    out = [
        para(
            f"{d.get('metric')} on {num(d.get('holdout_rows'))} holdout rows: candidate "
            f"{num(d.get('candidate_metric'))}"
            + (f", champion v{champ} {num(d.get('champion_metric'))}" if champ else "")
            + " (the same rows)."
        )
    ]
    g = gate(d, "vs_champion")
    if g is not None and g.get("ci_low") is not None:
        n = g.get("numbers") or {}
        out.append(
            para(
                f"Improvement over the champion {num(g.get('value'))}, confidence "
                f"{num(n.get('confidence'))} interval {ci(g)} from {num(n.get('resamples'))} "
                f"paired bootstrap resamples ({n.get('mode')}: the lower end must exceed "
                f"{num(g.get('threshold'))})."
            )
        )
        mc = n.get("mcnemar") or {}
        if mc:
            out.append(
                para(
                    f"McNemar: {num(mc.get('b'))} rows only the champion gets right, "
                    f"{num(mc.get('c'))} only the candidate; exact p {num(mc.get('p_exact'))}, "
                    f"mid-p {num(mc.get('p_mid'))}."
                )
            )
    elif g is not None:
        out.append(para(f"Against the champion: {g.get('reason')}."))
    held = (d.get("extra") or {}).get("champion_holdouts") or {}
    if held.get("reason"):
        out.append(para(f"The champion on its own holdout and on this one: {held['reason']}."))
    metrics = e["record"].get("metrics") or {}
    out.append(table(["metric", "value"], list(metrics.items()), title="Stored metrics"))
    out.extend(plot(k) for k in plots)
    return out


def _details(d: Mapping[str, Any], name: str, columns: Sequence[str], absent: str) -> list[Block]:
    g = gate(d, name)
    if g is None:
        return [para(absent)]
    rows = [[r.get(c) for c in columns] for r in g.get("details") or []]
    out = [para(f"{status(g)}: {g.get('reason', '')}")]
    if rows:
        out.append(table(list(columns), rows))
    return out


def slices(d: Mapping[str, Any], plots: Sequence[str]) -> list[Block]:
    """The ``slices`` gate: its verdict and one row per slice, with its plot."""
    absent = "No slices were configured (evaluate.slices) when this version was evaluated."
    return _details(d, "slices", _SLICES, absent) + _placed(_SLICE_PLOT, plots)


def robustness(d: Mapping[str, Any]) -> list[Block]:
    """The ``robustness`` gate: its verdict and one row per perturbation."""
    absent = (
        "No robustness check was configured (evaluate.robustness) when this version was evaluated."
    )
    return _details(d, "robustness", _PERTURBATIONS, absent)


def fairness(d: Mapping[str, Any], plots: Sequence[str]) -> list[Block]:
    """The ``fairness`` gate: its verdict, one row per group, the largest gaps of the
    candidate and of the champion, with the per-group plot."""
    absent = "No fairness check was configured (evaluate.fairness) when this version was evaluated."
    out = _details(d, "fairness", _GROUPS, absent)
    feats = ((gate(d, "fairness") or {}).get("numbers") or {}).get("features") or {}
    gaps = [
        [
            col,
            who,
            v.get("demographic_parity_difference"),
            v.get("equalized_odds_difference"),
            v.get("metric_difference"),
        ]
        for col, f in feats.items()
        for who in ("candidate", "champion")
        for v in [f.get(who)]
        if isinstance(v, Mapping)
    ]
    if gaps:
        out.append(table(_GAPS, gaps, title="Largest gaps between groups"))
    return out + _placed(_GROUP_PLOT, plots)


def decision(d: Mapping[str, Any]) -> list[Block]:
    """Every gate of the decision record: status, value, threshold, interval, reason."""
    rows = [
        [g.get("name"), status(g), g.get("value"), g.get("threshold"), ci(g), g.get("reason", "")]
        for g in d.get("gates") or []
    ]
    return [table(["gate", "status", "value", "threshold", "interval", "reason"], rows)]


def _bound(a: Mapping[str, Any]) -> str:
    if not a["bound_artifact"]:
        return "no: the artifact differs"
    return "yes" if a["bound_decision"] else "no: the decision record differs"


def approvals(e: Mapping[str, Any]) -> list[Block]:
    """The approval rows, each with whether it is bound to this artifact and record."""
    rows = [
        [
            when(a["created_at"]),
            a["actor"],
            a["role"],
            a["decision"],
            a["override"],
            a["comment"],
            when(a["expires_at"]),
            _bound(a),
        ]
        for a in e["approvals"]
    ]
    if rows:
        return [table(_APPROVALS, rows)]
    mode = e["spec"].get("approval_mode") or "-"
    return [para(f"No approval or rejection is recorded for this version (approval mode {mode}).")]


def deployment(e: Mapping[str, Any]) -> list[Block]:
    """Alias moves to or from the version, its rollouts, the batches it was scored on
    after its training data, and the plot of the metric per batch."""
    moves = [
        [
            when(m["at"]),
            m["alias"],
            f"{vlabel(m['from_version'])} to {vlabel(m['to_version'])}",
            m["actor"],
            m["reason"],
        ]
        for m in e["alias_history"]
    ]
    out = [
        table(["when", "alias", "move", "actor", "reason"], moves, title="Alias moves")
        if moves
        else para("No alias ever pointed at this version.")
    ]
    rollouts = [
        [
            r["id"],
            r["strategy"],
            r["state"],
            vlabel(r["candidate"]),
            vlabel(r["baseline"]),
            " / ".join(f"{num(x)}%" for x in r["steps"]),
            when(r["started_at"]),
            when(r["finished_at"]),
            r.get("reason") or "",
        ]
        for r in e["rollouts"]
    ]
    if rollouts:
        out.append(table(_ROLLOUTS, rollouts, title="Rollouts"))
    after = e["monitoring"]["after"]
    metric = str((e["record"].get("decision") or {}).get("metric", ""))
    if after:
        title = "Batches scored for this version after its training data (newest first)"
        out.append(score_table(after, metric, title))
    if after or e["monitoring"]["before"]:
        out.append(plot(MONITORING_PLOT))
    return out
