"""Governance: the audit trail (hash chain kept by the store), verified here.

The chain itself is appended inside the store's transactions (``registry.audit``), so a
state change and its audit event commit together. Access control, approvals, anchors,
lineage export and model cards build on this.
"""

from retrainer.registry.audit import ChainReport, list_events, verify_chain

__all__ = ["ChainReport", "list_events", "verify_chain"]
