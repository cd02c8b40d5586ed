"""Monitoring over time: what the monitor measured on each batch, and what was decided.

One row per batch, oldest first: the champion version that was scored on it, its
realised metric (labels in the batch) and its label-free estimate (CBPE), the drift
verdict against the champion's reference profile, and the decision of the run that
received the batch. ``retrainer monitor NAME`` renders it; ``--json`` prints it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retrainer.data.ledger import ScoreRecord
    from retrainer.workspace import Workspace

__all__ = ["monitoring_history"]


def monitoring_history(ws: Workspace, *, limit: int = 30) -> list[dict[str, Any]]:
    """The newest ``limit`` batches of the workspace's model with their monitoring results."""
    model, metric = ws.spec.model.name, ws.spec.evaluate.metric
    batches = ws.ledger.batches(model)[-limit:] if limit > 0 else []
    scores: dict[int, ScoreRecord] = {}
    for record in ws.ledger.scores(model, after_id=batches[0].id - 1 if batches else None):
        scores.setdefault(record.batch_id, record)  # newest champion version first
    decisions: dict[str, dict[str, Any]] = {}
    rows = []
    for b in batches:
        if b.run_id not in decisions:
            decisions[b.run_id] = ws.journal.get(b.run_id).steps.get("decide") or {}
        score = scores.get(b.id)
        drift = (score.drift or {}) if score else {}
        estimated = (score.estimated or {}) if score else {}
        decision = decisions[b.run_id]
        rows.append(
            {
                "batch": b.id,
                "key": b.batch_key,
                "received_at": b.received_at.isoformat(),
                "status": b.status,
                "rows": b.row_count,
                "champion": score.version if score else None,
                "metric": metric,
                "realised": score.metrics.get(metric) if score else None,
                "labelled": score.labelled if score else None,
                "estimated": estimated.get(metric),
                "drift_share": drift.get("share_drifted"),
                "drifted": drift.get("drifted", []),
                "domain_auc": drift.get("domain_auc"),
                "decision": {
                    "run": b.run_id,
                    "fire": decision.get("fire"),
                    "kind": decision.get("kind"),
                    "reason": decision.get("reason"),
                },
            }
        )
    return rows
