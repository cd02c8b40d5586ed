"""The model registry: versions with a lifecycle, and aliases moved by compare-and-swap.

Version lifecycle: ``PENDING -> READY | FAILED`` and ``READY -> QUARANTINED``. Only a
``READY`` version can hold an alias. Every alias move is one transaction that checks
the alias still points where the caller saw it (``expected``), moves it, appends to
alias history and appends an audit event; so an alias never points at two versions,
a lost race is a :class:`ConflictError` with nothing changed, and every move is audited.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from retrainer.errors import ConflictError, NotFoundError, PolicyError, SpecError
from retrainer.registry.audit import append_event
from retrainer.registry.db import Database, as_utc
from retrainer.registry.records import AliasMove, VersionInfo, VersionRef, info_of, parse_ref
from retrainer.registry.tables import Alias, AliasHistory, ModelVersion

__all__ = [
    "ANY",
    "CHAMPION",
    "AliasMove",
    "LineageCheck",
    "Registry",
    "VersionInfo",
    "VersionRef",
    "parse_ref",
]

CHAMPION: Final = "champion"
LineageCheck = Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]
"""``(lineage, metrics) -> missing field names``: the READY gate ``mark_ready`` applies."""
ANY: Final = object()
"""``expected=ANY`` moves an alias wherever it points now (no compare-and-swap)."""


class Registry:
    """Versions and aliases of every model in one store. Each method is one transaction."""

    def __init__(
        self, db: Database, *, after_champion_move: Callable[[], None] | None = None
    ) -> None:
        self.db = db
        self.after_champion_move = after_champion_move

    # -- versions ---------------------------------------------------------------------

    def create_version(
        self,
        model: str,
        *,
        run_id: str | None,
        actor: str,
        params: dict[str, Any],
        lineage: dict[str, Any],
    ) -> int:
        """Reserve the next version number as ``PENDING`` and return it.

        Numbers are strictly increasing per model; gaps are possible (a failed attempt).
        Concurrent callers never see an IntegrityError: a lost race retries with a new number.
        """
        for _ in range(50):
            try:
                return self.db.transaction(
                    lambda s: self._insert_version(s, model, run_id, actor, params, lineage)
                )
            except IntegrityError:
                continue
        raise ConflictError(f"could not reserve a version number for {model!r}; retry")

    def _insert_version(
        self,
        s: Session,
        model: str,
        run_id: str | None,
        actor: str,
        params: dict[str, Any],
        lineage: dict[str, Any],
    ) -> int:
        now = self.db.clock()
        top = s.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model == model))
        version = (top or 0) + 1
        s.add(
            ModelVersion(
                model=model,
                version=version,
                status="PENDING",
                artifact_sha256=None,
                run_id=run_id,
                created_by=actor,
                params=params,
                metrics={},
                lineage=lineage,
                decision={},
                created_at=now,
                updated_at=now,
            )
        )
        s.flush()
        append_event(
            s,
            at=now,
            actor=actor,
            action="version.create",
            subject=f"{model}:{version}",
            payload={"run_id": run_id},
        )
        return version

    def attach_artifact(
        self,
        model: str,
        version: int,
        sha256: str,
        *,
        actor: str,
        lineage: dict[str, Any] | None = None,
    ) -> None:
        """Record the artifact's sha256 on a ``PENDING`` version.

        ``lineage`` adds keys known only after the fit (the fitted parameters); existing
        keys stay.
        """

        def fn(s: Session) -> None:
            row = self._row(s, model, version)
            if row.status != "PENDING":
                raise ConflictError(f"{model}:{version} is {row.status}, not PENDING")
            row.artifact_sha256 = sha256
            if lineage:
                row.lineage = {**lineage, **row.lineage}
            row.updated_at = self.db.clock()
            append_event(
                s,
                at=row.updated_at,
                actor=actor,
                action="version.artifact",
                subject=f"{model}:{version}",
                payload={"sha256": sha256},
            )

        self.db.transaction(fn)

    def mark_ready(
        self,
        model: str,
        version: int,
        *,
        metrics: dict[str, Any],
        decision: dict[str, Any],
        actor: str,
        lineage: dict[str, Any] | None = None,
        require: LineageCheck | None = None,
    ) -> VersionInfo:
        """``PENDING -> READY`` with metrics and decision record (artifact verified by caller).

        ``lineage`` adds keys to the version's lineage (hashes of what was derived from its
        training data, such as the monitor's reference profile); existing keys stay.
        ``require(lineage, metrics)`` names the mandatory fields the version lacks
        (``governance.lineage.missing_lineage``); when it names any, the version becomes
        ``FAILED`` instead (audited, with the fields) and PolicyError lists them.
        """

        def fn(s: Session) -> VersionInfo | list[str]:
            row = self._row(s, model, version)
            if row.status != "PENDING" or row.artifact_sha256 is None:
                raise ConflictError(
                    f"{model}:{version} is {row.status}"
                    + ("" if row.artifact_sha256 else " without an artifact")
                    + "; only a PENDING version with an artifact can become READY"
                )
            merged = {**(lineage or {}), **row.lineage}
            missing = [] if require is None else require(merged, metrics)
            if missing:
                row.status, row.updated_at = "FAILED", self.db.clock()
                append_event(
                    s,
                    at=row.updated_at,
                    actor=actor,
                    action="version.failed",
                    subject=f"{model}:{version}",
                    payload={"reason": _incomplete(missing), "missing": missing},
                )
                return missing
            row.status, row.metrics, row.decision = "READY", metrics, decision
            row.lineage = merged
            row.updated_at = self.db.clock()
            append_event(
                s,
                at=row.updated_at,
                actor=actor,
                action="version.ready",
                subject=f"{model}:{version}",
                payload={"sha256": row.artifact_sha256, "passed": decision.get("passed")},
            )
            return info_of(row)

        done = self.db.transaction(fn)
        if isinstance(done, list):
            raise PolicyError(f"{model}:{version} cannot become READY: {_incomplete(done)}")
        return done

    def set_status(self, model: str, version: int, status: str, *, actor: str, reason: str) -> None:
        """Mark a version ``FAILED`` (from PENDING) or ``QUARANTINED`` (from READY)."""
        allowed = {"FAILED": {"PENDING"}, "QUARANTINED": {"READY"}}
        if status not in allowed:
            raise SpecError(f"status: expected FAILED or QUARANTINED, got {status!r}")

        def fn(s: Session) -> None:
            row = self._row(s, model, version)
            if row.status == status:
                return
            if row.status not in allowed[status]:
                raise ConflictError(f"{model}:{version} is {row.status}; cannot become {status}")
            row.status, row.updated_at = status, self.db.clock()
            append_event(
                s,
                at=row.updated_at,
                actor=actor,
                action=f"version.{status.lower()}",
                subject=f"{model}:{version}",
                payload={"reason": reason},
            )

        self.db.transaction(fn)

    def get(self, model: str, version: int) -> VersionInfo:
        """One version. Raises NotFoundError."""

        def fn(s: Session) -> VersionInfo:
            return info_of(self._row(s, model, version), self._aliases_of(s, model, version))

        return self.db.transaction(fn)

    def resolve(self, ref: str | VersionRef) -> VersionInfo:
        """``rain`` (the champion), ``rain@alias`` or ``rain:3``. Raises NotFoundError."""
        r = parse_ref(ref) if isinstance(ref, str) else ref
        if r.version is not None:
            return self.get(r.model, r.version)
        alias = r.alias or CHAMPION
        version = self.get_alias(r.model, alias)
        if version is None:
            known = self.models()
            hint = "" if r.model in known else f" (known models: {', '.join(known) or 'none'})"
            raise NotFoundError(f"model {r.model!r} has no {alias!r} version{hint}")
        return self.get(r.model, version)

    def versions(self, model: str) -> list[VersionInfo]:
        """Every version of ``model``, newest first."""

        def fn(s: Session) -> list[VersionInfo]:
            rows = s.scalars(
                select(ModelVersion)
                .where(ModelVersion.model == model)
                .order_by(ModelVersion.version.desc())
            ).all()
            aliases = self._alias_map(s, model)
            return [info_of(r, tuple(aliases.get(r.version, ()))) for r in rows]

        return self.db.transaction(fn)

    def models(self) -> list[str]:
        """Names of every model with at least one version."""
        return self.db.transaction(
            lambda s: list(
                s.scalars(select(ModelVersion.model).distinct().order_by(ModelVersion.model))
            )
        )

    # -- aliases ----------------------------------------------------------------------

    def get_alias(self, model: str, alias: str) -> int | None:
        """The version ``alias`` points at, or None."""
        return self.db.transaction(
            lambda s: s.scalar(
                select(Alias.version).where(Alias.model == model, Alias.alias == alias)
            )
        )

    def aliases(self, model: str) -> dict[str, int]:
        """Every alias of ``model`` and its version."""
        return self.db.transaction(
            lambda s: {
                a.alias: a.version for a in s.scalars(select(Alias).where(Alias.model == model))
            }
        )

    def move_alias(
        self,
        model: str,
        alias: str,
        to_version: int,
        *,
        expected: int | object | None,
        actor: str,
        reason: str,
        action: str = "alias.move",
        require_gates: bool = False,
        check: Callable[[Session, ModelVersion], None] | None = None,
    ) -> AliasMove:
        """Point ``alias`` at ``to_version`` if it still points at ``expected``.

        ``expected=None`` means "the alias must not exist yet"; ``ANY`` skips the check.
        The target must be ``READY`` (and, with ``require_gates``, have a passing decision
        record). ``check`` runs in the same transaction on the target's row and may raise
        to refuse the move (approvals are checked so). Raises ConflictError (nothing
        changed) when the alias moved meanwhile.
        """

        def fn(s: Session) -> AliasMove:
            row = self._row(s, model, to_version)
            if row.status != "READY":
                raise PolicyError(
                    f"{model}:{to_version} is {row.status}; only READY versions can be {alias}"
                )
            if require_gates and not row.decision.get("passed"):
                raise PolicyError(
                    f"{model}:{to_version} has no decision record whose gates all passed; "
                    "it cannot be promoted"
                )
            if check is not None:
                check(s, row)
            now = self.db.clock()
            current = s.get(Alias, (model, alias))
            before = None if current is None else current.version
            if expected is not ANY and before != expected:
                raise ConflictError(
                    f"{model}@{alias} is now {_v(before)}, not {_v(expected)} as expected; "
                    "someone else moved it - nothing was changed, look again and retry"
                )
            if current is None:
                s.add(Alias(model=model, alias=alias, version=to_version, epoch=1, updated_at=now))
            else:
                done = s.execute(
                    update(Alias)
                    .where(Alias.model == model, Alias.alias == alias, Alias.epoch == current.epoch)
                    .values(version=to_version, epoch=current.epoch + 1, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
                if done.rowcount != 1:  # type: ignore[attr-defined]
                    raise ConflictError(f"{model}@{alias} moved during the update; retry")
            s.add(
                AliasHistory(
                    model=model,
                    alias=alias,
                    from_version=before,
                    to_version=to_version,
                    actor=actor,
                    reason=reason,
                    at=now,
                )
            )
            s.flush()
            append_event(
                s,
                at=now,
                actor=actor,
                action=action,
                subject=f"{model}@{alias}",
                payload={
                    "from": before,
                    "to": to_version,
                    "reason": reason,
                    "sha256": row.artifact_sha256,
                },
            )
            return AliasMove(model, alias, before, to_version, actor, reason, now)

        try:
            moved = self.db.transaction(fn)
        except IntegrityError as exc:  # two first promotions raced on the insert
            raise ConflictError(
                f"{model}@{alias} was set by someone else meanwhile; retry"
            ) from exc
        if alias == CHAMPION and self.after_champion_move is not None:
            self.after_champion_move()  # e.g. export the audit anchor (never raises)
        return moved

    def history(self, model: str, alias: str | None = None) -> list[AliasMove]:
        """Alias moves of ``model`` (one alias or all), oldest first."""

        def fn(s: Session) -> list[AliasMove]:
            q = select(AliasHistory).where(AliasHistory.model == model)
            if alias is not None:
                q = q.where(AliasHistory.alias == alias)
            return [
                AliasMove(
                    h.model, h.alias, h.from_version, h.to_version, h.actor, h.reason, as_utc(h.at)
                )
                for h in s.scalars(q.order_by(AliasHistory.id))
            ]

        return self.db.transaction(fn)

    # -- helpers ----------------------------------------------------------------------

    @staticmethod
    def _row(s: Session, model: str, version: int) -> ModelVersion:
        row = s.scalar(
            select(ModelVersion).where(ModelVersion.model == model, ModelVersion.version == version)
        )
        if row is None:
            raise NotFoundError(f"model {model!r} has no version {version}")
        return row

    @staticmethod
    def _alias_map(s: Session, model: str) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for a in s.scalars(select(Alias).where(Alias.model == model).order_by(Alias.alias)):
            out.setdefault(a.version, []).append(a.alias)
        return out

    def _aliases_of(self, s: Session, model: str, version: int) -> tuple[str, ...]:
        return tuple(self._alias_map(s, model).get(version, ()))


def _v(version: object) -> str:
    return "unset" if version is None else f"version {version}"


def _incomplete(missing: list[str]) -> str:
    return f"lineage incomplete, missing {', '.join(missing)}; the version is FAILED"
