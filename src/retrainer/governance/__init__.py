"""Governance: the audit trail (hash chain kept by the store), verified and anchored here.

The chain itself is appended inside the store's transactions (``registry.audit``), so a
state change and its audit event commit together. :mod:`.anchor` copies the chain's head
outside the store and verifies the chain against those copies (``retrainer audit
verify``). Access control, approvals, lineage export and model cards build on this.
"""

from retrainer.governance.anchor import (
    Anchor,
    AuditVerdict,
    export_anchor,
    read_anchors,
    verify_audit,
)
from retrainer.registry.audit import ChainReport, list_events, verify_chain

__all__ = [
    "Anchor",
    "AuditVerdict",
    "ChainReport",
    "export_anchor",
    "list_events",
    "read_anchors",
    "verify_audit",
    "verify_chain",
]
