"""Model cards: what a version is, what it was made from and how it was judged, from the
store only.

:func:`collect_card` gathers a version's stored evidence into one JSON-ready dict
(:class:`CardEvidence`); :mod:`retrainer.governance.card_render` turns that dict, and
nothing else, into HTML or Markdown. No number is typed by hand or computed for the card:
each is a stored value (rounded for display), so every figure on a card can be traced
back to a row of the store or to a content-addressed artifact. The sections and where
they come from:

========================  ================================================================
``spec``                  owner and intended use: the spec recorded with the version
                          (``lineage.spec_artifact_sha256``), else the workspace's spec
``record``                the ``model_versions`` row: status, aliases, params, metrics,
                          lineage (hashes, environment, leakage, trigger), decision record
``snapshots``             the train and holdout ``snapshots`` rows (rows, time range, hashes)
``training_profile``      the reference profile artifact built from the training rows
                          (per-feature count, missing, mean, std, min, max; categories)
``monitoring``            ``batch_scores``: the champion of the day on the batches up to
                          the training data (drift and metric at training time), and this
                          version on the batches after it
``approvals``             ``approvals`` rows of the version, each checked against the
                          version's artifact sha256 and decision-record sha256
``alias_history``         ``alias_history`` moves to or from the version
``rollouts``              ``rollouts`` of the version (as candidate or as baseline)
========================  ================================================================

Reading is all it does: no table or artifact is written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from retrainer.data.ledger import Ledger
from retrainer.deploy.store import RolloutStore
from retrainer.errors import NotFoundError
from retrainer.governance.approvals import decision_sha256
from retrainer.monitor.drift import ReferenceProfile
from retrainer.registry.artifacts import ArtifactStore
from retrainer.registry.db import Database, as_utc
from retrainer.registry.registry import Registry
from retrainer.registry.tables import Approval
from retrainer.spec import PipelineSpec, spec_hash

__all__ = ["MONITORED_AFTER", "MONITORED_BEFORE", "TOP_CATEGORIES", "CardEvidence", "collect_card"]

MONITORED_BEFORE: Final = 10
"""Batch scores of the champion of the day kept, newest first, up to the training data."""
MONITORED_AFTER: Final = 20
"""Batch scores of the version itself kept, newest first, after its training data."""
TOP_CATEGORIES: Final = 5
"""Categories listed per categorical feature in the training-data summary."""


@dataclass(frozen=True)
class CardEvidence:
    """Everything a model card shows, as one JSON-ready dict (``data``).

    ``digest`` is the sha256 of its canonical JSON (sorted keys, no spaces): the card
    prints it, so a card can be matched with ``retrainer card NAME VERSION --json``.
    """

    data: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.data["model"])

    @property
    def version(self) -> int:
        return int(self.data["version"])

    @property
    def digest(self) -> str:
        canonical = json.dumps(self.data, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The evidence (a deep copy, safe to change)."""
        copy: dict[str, Any] = json.loads(json.dumps(self.data, default=str))
        return copy


def collect_card(
    db: Database, artifacts: ArtifactStore, spec: PipelineSpec, model: str, version: int
) -> CardEvidence:
    """Read ``model:version``'s evidence from the store (see the module docstring).

    ``spec`` is the workspace's spec, used for owner and intended use only when the
    version recorded no spec of its own.

    Raises:
        NotFoundError: no such version.
        ArtifactIntegrityError: a stored artifact the card reads (the spec document or
            the reference profile) does not match its sha256.
    """
    registry = Registry(db)
    info = registry.get(model, version)
    record = info.to_dict()
    lineage = info.lineage
    ledger = Ledger(db, artifacts)
    data: dict[str, Any] = {
        "model": model,
        "version": version,
        "spec": _spec(artifacts, spec, lineage, what=f"{model}:{version}"),
        "record": record,
        "snapshots": {
            kind: _snapshot(ledger, lineage.get(f"{kind}_snapshot"))
            for kind in ("train", "holdout")
        },
        "training_profile": _training_profile(artifacts, lineage, what=f"{model}:{version}"),
        "monitoring": _monitoring(ledger, model, version, info.decision, lineage),
        "approvals": db.transaction(
            lambda s: _approvals(s, model, version, info.artifact_sha256, info.decision)
        ),
        "alias_history": [
            m.to_dict()
            for m in registry.history(model)
            if version in (m.from_version, m.to_version)
        ],
        "rollouts": [r.to_dict() for r in RolloutStore(db).of_version(model, version)],
    }
    return CardEvidence(json.loads(json.dumps(data, default=str)))


def _spec(
    artifacts: ArtifactStore, spec: PipelineSpec, lineage: dict[str, Any], *, what: str
) -> dict[str, Any]:
    """Owner, intended use and approval mode: of the spec the version was trained with
    when it stored one, else of the workspace's spec (and whether that one is the same)."""
    stored = lineage.get("spec_artifact_sha256")
    if stored:
        doc = json.loads(artifacts.get(str(stored), what=f"spec document of {what}"))
        section = doc.get("model") or {}
        return {
            "source": "recorded",
            "sha256": lineage.get("spec_sha256"),
            "artifact_sha256": stored,
            "owner": section.get("owner"),
            "intended_use": section.get("intended_use"),
            "approval_mode": (doc.get("approval") or {}).get("mode"),
        }
    current = spec_hash(spec)
    return {
        "source": "workspace",
        "sha256": current,
        "same_as_training": current == lineage.get("spec_sha256"),
        "owner": spec.model.owner,
        "intended_use": spec.model.intended_use,
        "approval_mode": spec.approval.mode,
    }


def _snapshot(ledger: Ledger, snapshot_id: Any) -> dict[str, Any] | None:
    if snapshot_id is None:
        return None
    try:
        return ledger.get_snapshot(int(snapshot_id)).to_dict()
    except NotFoundError:
        return None


def _training_profile(
    artifacts: ArtifactStore, lineage: dict[str, Any], *, what: str
) -> dict[str, Any]:
    """Per-feature summary of the training rows, from the stored reference profile."""
    sha = lineage.get("reference_profile_sha256")
    if not sha:
        return {"missing": "this version stored no reference profile"}
    try:
        blob = artifacts.get(str(sha), what=f"reference profile of {what}")
    except NotFoundError as exc:
        return {"missing": exc.message}
    profile = ReferenceProfile.from_bytes(blob)
    numeric = []
    for name, p in profile.numeric.items():
        values = p.sample.values
        numeric.append(
            {
                "feature": name,
                "count": p.count,
                "missing": p.n_missing + p.n_posinf + p.n_neginf,
                "mean": p.mean,
                "std": p.std,
                "min": float(values[0]) if values.size else None,
                "max": float(values[-1]) if values.size else None,
            }
        )
    categorical = [
        {
            "feature": name,
            "count": c.count,
            "missing": c.n_missing,
            "categories": len(c.categories),
            "top": [
                [str(k), int(n)]
                for k, n in zip(
                    c.categories[:TOP_CATEGORIES], c.counts[:TOP_CATEGORIES], strict=True
                )
            ],
        }
        for name, c in profile.categorical.items()
    ]
    return {"sha256": sha, "rows": profile.n_rows, "numeric": numeric, "categorical": categorical}


def _monitoring(
    ledger: Ledger,
    model: str,
    version: int,
    decision: dict[str, Any],
    lineage: dict[str, Any],
) -> dict[str, Any]:
    """The champion of the day on the batches up to the training data (the drift and
    metric the trigger saw), and this version on later batches; newest first."""
    champion = decision.get("champion_version")
    last = lineage.get("max_batch_id")
    before: list[dict[str, Any]] = []
    if champion is not None:
        before = [
            s.to_dict()
            for s in ledger.scores(model, version=int(champion))
            if last is None or s.batch_id <= int(last)
        ][:MONITORED_BEFORE]
    after = ledger.scores(
        model, version=version, after_id=None if last is None else int(last), limit=MONITORED_AFTER
    )
    return {
        "champion_at_training": champion,
        "last_batch": last,
        "before": before,
        "after": [s.to_dict() for s in after],
    }


def _approvals(
    s: Session, model: str, version: int, artifact: str | None, decision: dict[str, Any]
) -> list[dict[str, Any]]:
    """The version's approval rows, oldest first, each marked with whether it is bound to
    the version's artifact and decision record as they are now."""
    current = decision_sha256(decision)
    rows = s.scalars(
        select(Approval)
        .where(Approval.model == model, Approval.version == version)
        .order_by(Approval.id)
    )
    out = []
    for row in rows:
        item: dict[str, Any] = {}
        for column in Approval.__table__.columns:
            value = getattr(row, column.key)
            item[column.key] = as_utc(value).isoformat() if isinstance(value, datetime) else value
        item["bound_artifact"] = row.artifact_sha256 == artifact
        item["bound_decision"] = row.decision_sha256 == current
        out.append(item)
    return out
