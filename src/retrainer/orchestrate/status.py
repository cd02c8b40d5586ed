"""A workspace at a glance: champion, recent runs, quarantined batches, versions waiting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retrainer.governance.approvals import pending
from retrainer.registry.registry import CHAMPION

if TYPE_CHECKING:
    from retrainer.workspace import Workspace

__all__ = ["workspace_status"]


def workspace_status(ws: Workspace, *, runs: int = 5) -> dict[str, Any]:
    """Everything ``retrainer status`` shows, as a JSON-ready dict."""
    model = ws.spec.model.name
    reg = ws.registry
    versions = reg.versions(model)
    champion = reg.get_alias(model, CHAMPION)
    champ = next((v for v in versions if v.version == champion), None)
    batches = ws.ledger.batches(model)
    return {
        "workspace": str(ws.root),
        "model": model,
        "task": ws.spec.model.task,
        "metric": ws.spec.evaluate.metric,
        "champion": None
        if champ is None
        else {
            "version": champ.version,
            "metric": champ.metrics.get(ws.spec.evaluate.metric),
            "trained_on": champ.lineage.get("time_range"),
            "created_at": champ.created_at.isoformat(),
        },
        "versions": len(versions),
        "awaiting_approval": [st.version for st in pending(ws, model) if st.state == "pending"],
        "batches": {
            s: sum(1 for b in batches if b.status == s)
            for s in ("accepted", "quarantined", "pending", "released", "discarded")
        },
        "quarantined": [
            {
                "id": b.id,
                "key": b.batch_key,
                "received_at": b.received_at.isoformat(),
                "reasons": [f["message"] for f in b.reasons.get("failures", [])],
            }
            for b in batches
            if b.status == "quarantined"
        ],
        "runs": [r.to_dict() for r in ws.journal.runs(model, limit=runs)],
    }
