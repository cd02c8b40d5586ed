"""Registry: the metadata store, versions, aliases, artifacts and the audit chain.

``dump_model``, ``load_model`` and ``DEFAULT_TRUSTED_TYPES`` are imported on first use:
skops scans scikit-learn when imported (about 2 s), which commands that never touch a
model (``status``, ``audit log``, ``--help``) should not pay.
"""

from typing import Any

from retrainer.registry.artifacts import ArtifactStore
from retrainer.registry.audit import ChainReport, append_event, list_events, verify_chain
from retrainer.registry.db import Clock, Database, build_engine, utc_now
from retrainer.registry.migrate import current_revision, head_revision, migrate
from retrainer.registry.promotion import previous_champion, promote, rollback
from retrainer.registry.registry import (
    ANY,
    CHAMPION,
    AliasMove,
    Registry,
    VersionInfo,
    VersionRef,
    parse_ref,
)

__all__ = [
    "ANY",
    "CHAMPION",
    "DEFAULT_TRUSTED_TYPES",
    "AliasMove",
    "ArtifactStore",
    "ChainReport",
    "Clock",
    "Database",
    "Registry",
    "VersionInfo",
    "VersionRef",
    "append_event",
    "build_engine",
    "current_revision",
    "dump_model",
    "head_revision",
    "list_events",
    "load_model",
    "migrate",
    "parse_ref",
    "previous_champion",
    "promote",
    "rollback",
    "utc_now",
    "verify_chain",
]


def __getattr__(name: str) -> Any:
    if name in ("DEFAULT_TRUSTED_TYPES", "dump_model", "load_model"):
        from retrainer.registry import serialization

        return getattr(serialization, name)
    raise AttributeError(f"module 'retrainer.registry' has no attribute {name!r}")
