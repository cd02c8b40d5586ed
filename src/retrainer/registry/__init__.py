"""Registry: the metadata store, versions, aliases, artifacts and the audit chain."""

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
from retrainer.registry.serialization import DEFAULT_TRUSTED_TYPES, dump_model, load_model

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
