"""Governance: the audit trail (hash chain kept by the store), verified and anchored here.

The chain itself is appended inside the store's transactions (``registry.audit``), so a
state change and its audit event commit together. :mod:`.anchor` copies the chain's head
outside the store and verifies the chain against those copies (``retrainer audit
verify``). Access control, approvals, lineage export and model cards build on this.

:mod:`.lineage` records what a version was made from (and gates READY on it),
:mod:`.chain` reads a version's chain back (``retrainer lineage``) and :mod:`.reproduce`
retrains a version from its recorded inputs (``retrainer reproduce``; import
``retrainer.governance.reproduce`` itself: it trains models). :mod:`.card` collects a
version's stored evidence for its model card (``retrainer card``; render it with
``retrainer.governance.card_render``, which imports matplotlib).
"""

from retrainer.governance.anchor import (
    Anchor,
    AuditVerdict,
    export_anchor,
    read_anchors,
    verify_audit,
)
from retrainer.governance.card import CardEvidence, collect_card
from retrainer.governance.chain import version_chain
from retrainer.governance.lineage import REQUIRED, missing_lineage, training_lineage
from retrainer.registry.audit import ChainReport, list_events, verify_chain

__all__ = [
    "REQUIRED",
    "Anchor",
    "AuditVerdict",
    "CardEvidence",
    "ChainReport",
    "collect_card",
    "export_anchor",
    "list_events",
    "missing_lineage",
    "read_anchors",
    "training_lineage",
    "verify_audit",
    "verify_chain",
    "version_chain",
]
