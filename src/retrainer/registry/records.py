"""What the registry hands out: version references, version info and alias moves."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from retrainer.errors import SpecError
from retrainer.registry.db import as_utc
from retrainer.registry.tables import ModelVersion

__all__ = ["AliasMove", "VersionInfo", "VersionRef", "info_of", "parse_ref"]

_REF = re.compile(
    r"^(?P<model>[a-z0-9][a-z0-9_.-]{0,62})(?:@(?P<alias>[a-z][a-z0-9_-]*)|:(?P<v>\d+))?$"
)


@dataclass(frozen=True)
class VersionRef:
    """``NAME``, ``NAME@ALIAS`` or ``NAME:VERSION`` parsed."""

    model: str
    alias: str | None = None
    version: int | None = None


def parse_ref(ref: str) -> VersionRef:
    """Parse ``rain``, ``rain@champion`` or ``rain:3``. Raises SpecError otherwise."""
    match = _REF.match(ref.strip())
    if match is None:
        raise SpecError(
            f"expected NAME, NAME@ALIAS or NAME:VERSION (e.g. rain@champion), got {ref!r}"
        )
    v = match.group("v")
    return VersionRef(match.group("model"), match.group("alias"), int(v) if v else None)


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version, as read from the store."""

    model: str
    version: int
    status: str
    artifact_sha256: str | None
    run_id: str | None
    created_by: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    decision: dict[str, Any]
    created_at: datetime
    aliases: tuple[str, ...] = ()

    @property
    def gates_passed(self) -> bool:
        """True when a decision record exists and every gate in it passed."""
        return bool(self.decision) and bool(self.decision.get("passed"))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = dict(self.__dict__)
        out["created_at"] = self.created_at.isoformat()
        out["aliases"] = list(self.aliases)
        return out


@dataclass(frozen=True)
class AliasMove:
    """One entry of alias history."""

    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**self.__dict__, "at": self.at.isoformat()}


def info_of(row: ModelVersion, aliases: tuple[str, ...] = ()) -> VersionInfo:
    return VersionInfo(
        model=row.model,
        version=row.version,
        status=row.status,
        artifact_sha256=row.artifact_sha256,
        run_id=row.run_id,
        created_by=row.created_by,
        params=row.params,
        metrics=row.metrics,
        lineage=row.lineage,
        decision=row.decision,
        created_at=as_utc(row.created_at),
        aliases=aliases,
    )
