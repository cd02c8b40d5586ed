"""``retrainer doctor``: check a workspace's health, and repair what is safe to repair.

Each check gives one :class:`Check` row naming the objects it found wrong. Nothing changes
without ``repair``, and then only what is safe: a schema behind head is migrated, stale
temp files swept, abandoned leases released by compare-and-swap on holder and token, and
PENDING versions no run will register set FAILED; each repair is audited. Missing or
corrupt artifacts, a broken audit chain and a champion on a version that is not READY
need a person and are never repaired (docs/operations.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from alembic.util import CommandError
from sqlalchemy import select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from retrainer.errors import (
    ArtifactIntegrityError,
    ConflictError,
    NotFoundError,
    RetrainerError,
    StoreError,
)
from retrainer.orchestrate.lease import RELEASED, lease_state
from retrainer.registry.audit import append_event
from retrainer.registry.db import as_utc, safe_url
from retrainer.registry.migrate import current_revision, head_revision, migrate
from retrainer.registry.records import VersionInfo
from retrainer.registry.registry import CHAMPION
from retrainer.registry.tables import Alias, Lease, ModelVersion

if TYPE_CHECKING:
    from retrainer.workspace import Workspace

__all__ = ["CHECKS", "ORPHANED", "TEMP_AGE", "Check", "DoctorReport", "diagnose", "open_unmigrated"]

log = logging.getLogger(__name__)

Status = Literal["ok", "warn", "fail", "repaired"]
CHECKS = (
    "store",
    "migrations",
    "artifacts",
    "temp_files",
    "leases",
    "pending",
    "audit",
    "champion",
    "executor",
)
"""The checks, in the order they run (the store's first: the others need it)."""
ORPHANED = "orphaned: its run ended without registering it (retrainer doctor)"
"""The reason a PENDING version set FAILED by ``--repair`` carries."""
TEMP_AGE = timedelta(hours=1)
"""Temp files older than this are a crashed writer's (no write takes an hour)."""
_SERVABLE = ("READY", "PENDING")  # a READY or PENDING version's artifact must be intact
_LEASE_WHY = {
    "held": "held by {holder} until {at}",
    "dead": "held by {holder}, a process of this host that has exited",
    "expired": "expired at {at} unreleased: its holder {holder} stopped renewing (crashed?)",
    "overdue": "expired at {at}, but its holder {holder} still runs (a long step, or hung)",
}


@dataclass(frozen=True)
class Check:
    """One check: ``ok``, ``warn``, ``fail`` or ``repaired``, what it found, what it fixed."""

    name: str
    status: Status
    detail: str
    repaired: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**asdict(self), "repaired": list(self.repaired)}


@dataclass(frozen=True)
class DoctorReport:
    """Every check of one workspace; ``ok`` when none failed (warnings allowed)."""

    workspace: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(c.status != "fail" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"workspace", "checks", "ok"}``."""
        checks = [c.to_dict() for c in self.checks]
        return {"workspace": self.workspace, "checks": checks, "ok": self.ok}


def open_unmigrated(path: Path) -> Workspace:
    """The workspace at ``path`` as ``Workspace.open`` builds it, without contacting or
    migrating the store (doctor reports a schema behind instead). Raises SpecError."""
    from retrainer.workspace import Workspace

    return Workspace.open(path, migrate_store=False)


def diagnose(ws: Workspace, *, authorize: Callable[[], str], repair: bool = False) -> DoctorReport:
    """Run every check of :data:`CHECKS` in order, repairing what is safe when ``repair``.

    ``authorize`` is called once the store answers (tokens are checked against it): it
    returns the name repairs are audited under, or raises to refuse. A check that cannot
    run fails with the error; the others still run (not when the store is unreachable).
    """
    store = _check_store(ws)
    if store.status == "fail":
        skipped = (Check(n, "warn", "not checked: the store is unreachable") for n in CHECKS[1:])
        return DoctorReport(str(ws.root), (store, *skipped))
    doctor = _Doctor(ws, _authorized(ws, authorize), repair)
    checks = [store]
    for name in CHECKS[1:]:
        try:
            checks.append(getattr(doctor, name)())
        except (RetrainerError, SQLAlchemyError, OSError) as exc:
            checks.append(Check(name, "fail", f"could not check: {_why(ws, exc)}"))
    return DoctorReport(str(ws.root), tuple(checks))


def _authorized(ws: Workspace, authorize: Callable[[], str]) -> str:
    """``authorize()``; a store whose schema predates the tokens it checks is a StoreError
    that says how to migrate it, not a database error."""
    try:
        return authorize()
    except SQLAlchemyError as exc:
        current, head = current_revision(ws.db), head_revision()
        if current == head:
            raise
        raise StoreError(
            f"cannot check who you are: the store's schema is at {current or 'nothing'}, "
            f"behind this retrainer's {head} ({_why(ws, exc)}); opening the workspace with "
            f"any other command migrates it (e.g. 'retrainer status -w {ws.root}'), then "
            "run doctor again"
        ) from exc


def _check_store(ws: Workspace) -> Check:
    where = f"{ws.db.dialect} store {ws.secrets.redact(safe_url(ws.db.engine.url))}"
    try:
        with ws.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        return Check("store", "fail", f"{where}: unreachable: {_why(ws, exc)}")
    return Check("store", "ok", f"{where}: reachable")


def _why(ws: Workspace, exc: BaseException) -> str:
    """The first line of an error (the driver's own message for a database error), redacted."""
    message = str(getattr(exc, "orig", None) or exc).strip() or type(exc).__name__
    return ws.secrets.redact(message.splitlines()[0])


def _row(name: str, problems: list[str], fixed: list[str], healthy: str, bad: Status) -> Check:
    """``bad`` while problems remain, ``repaired`` when all found were fixed, else ``ok``."""
    if problems:
        also = f" (repaired: {'; '.join(fixed)})" if fixed else ""
        return Check(name, bad, "; ".join(problems) + also, tuple(fixed))
    if fixed:
        return Check(name, "repaired", "; ".join(fixed), tuple(fixed))
    return Check(name, "ok", healthy)


def _at(when: datetime) -> str:
    return f"{as_utc(when):%Y-%m-%d %H:%M:%S} UTC"


class _Doctor:
    """The checks after the store's, each returning its row; one method per check."""

    def __init__(self, ws: Workspace, actor: str, repair: bool) -> None:
        self.ws, self.db, self.actor, self.repair = ws, ws.db, actor, repair
        self.now = ws.db.clock()

    def _audit(self, s: Session, subject: str, payload: dict[str, Any]) -> None:
        at, actor = self.db.clock(), self.actor
        append_event(
            s, at=at, actor=actor, action="doctor.repair", subject=subject, payload=payload
        )

    def migrations(self) -> Check:
        head, current = head_revision(), current_revision(self.db)
        if current == head:
            return Check("migrations", "ok", f"schema at head {head}")
        at = "empty (no schema)" if current is None else f"at revision {current}"
        found = f"store schema {at}, this retrainer's head is {head}"
        if not self.repair:
            return Check("migrations", "fail", f"{found}; --repair migrates it")
        try:
            migrate(self.db)
        except (SQLAlchemyError, CommandError) as exc:
            return Check("migrations", "fail", f"{found}; migrating failed: {_why(self.ws, exc)}")
        after = current_revision(self.db)
        payload = {"repair": "migrate", "from": current, "to": after}
        self.db.transaction(lambda s: self._audit(s, "store/schema", payload))
        return _row("migrations", [], [f"schema migrated from {current} to {after}"], "", "fail")

    def artifacts(self) -> Check:
        reg = self.ws.registry
        problems: list[str] = []
        checked = 0
        for model in reg.models():
            champion = reg.get_alias(model, CHAMPION)
            for v in reg.versions(model):
                if v.status in _SERVABLE and v.artifact_sha256 is not None:
                    checked += 1
                    problem = self._blob_problem(v, champion)
                    if problem is not None:
                        problems.append(problem)
        healthy = f"{checked} artifact(s) of READY and PENDING versions present, sha256 verified"
        return _row("artifacts", problems, [], healthy, "fail")

    def _blob_problem(self, v: VersionInfo, champion: int | None) -> str | None:
        sha = v.artifact_sha256 or ""
        try:
            self.ws.artifacts.get(sha, what=f"model {v.model} v{v.version}")
        except NotFoundError:
            found = "blob missing"
        except ArtifactIntegrityError:
            found = "blob corrupt (its bytes no longer hash to its sha256)"
        except (RetrainerError, OSError) as exc:
            found = f"blob unreadable ({_why(self.ws, exc)})"
        else:
            return None
        todo = "restore the blob from a backup; it cannot be loaded or promoted until then"
        if v.version == champion:
            todo = f"it is the champion: 'retrainer rollback {v.model}', then {todo}"
        return f"{v.model}:{v.version} ({v.status}) sha256 {sha}: {found}; {todo}"

    def temp_files(self) -> Check:
        store = self.ws.artifacts
        tmp = Path(store.root, "tmp")
        stale = store.stale_temps(TEMP_AGE, now=self.now)
        if not stale:
            return Check("temp_files", "ok", f"no temp file older than 1h in {tmp}")
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        found = f"{len(stale)} temp file(s) older than 1h in {tmp} (crashed writers): {shown}"
        if not self.repair:
            return Check("temp_files", "warn", f"{found}; --repair removes them")
        removed = store.sweep_temp(TEMP_AGE, now=self.now)
        payload = {"repair": "sweep_temp", "removed": removed, "files": stale[:50]}
        self.db.transaction(lambda s: self._audit(s, "artifacts/tmp", payload))
        return _row("temp_files", [], [f"removed {removed} of {found}"], "", "warn")

    def leases(self) -> Check:
        rows = self.db.transaction(
            lambda s: [
                (r.name, r.holder, r.token, as_utc(r.expires_at))
                for r in s.scalars(select(Lease).order_by(Lease.name))
            ]
        )
        problems: list[str] = []
        fixed: list[str] = []
        held: list[str] = []
        for name, holder, token, expires in rows:
            state = lease_state(holder, expires, self.now)
            why = _LEASE_WHY.get(state, "").format(holder=holder, at=_at(expires))
            if state == "held":
                held.append(f"{name} {why}")
            elif state == "overdue":
                problems.append(f"{name}: {why}; not released")
            elif state != "released" and not self.repair:
                problems.append(f"{name}: {why}; --repair releases it")
            elif state != "released" and self._release(name, holder, token, why):
                fixed.append(f"released {name} ({why})")
        healthy = f"{len(rows)} lease(s), none stale" + "".join(f"; {h}" for h in held)
        return _row("leases", problems, fixed, healthy, "warn")

    def _release(self, name: str, holder: str, token: int, why: str) -> bool:
        """Release ``name`` if ``holder`` still holds it with ``token`` (audited)."""

        def fn(s: Session) -> bool:
            done = s.execute(
                update(Lease)
                .where(Lease.name == name, Lease.holder == holder, Lease.token == token)
                .values(holder=holder + RELEASED, expires_at=self.db.clock() - timedelta(seconds=1))
                .execution_options(synchronize_session=False)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                log.info("lease %s changed hands meanwhile; left alone", name)
                return False
            payload = {"repair": "release", "holder": holder, "token": token, "why": why}
            self._audit(s, f"lease/{name}", payload)
            return True

        return self.db.transaction(fn)

    def _lease_live(self, name: str) -> bool:
        row, now = self.db.transaction(lambda s: s.get(Lease, name)), self.db.clock()
        return row is not None and lease_state(row.holder, row.expires_at, now) == "held"

    def pending(self) -> Check:
        reg, journal = self.ws.registry, self.ws.journal
        problems: list[str] = []
        fixed: list[str] = []
        waiting: list[str] = []
        for model in reg.models():
            # versions first, then runs, then the lease: a version seen PENDING here had
            # its run opened, and its cycle took the lease, before this looks at either
            pending = [v for v in reg.versions(model) if v.status == "PENDING"]
            if not pending:
                continue
            running = {r.id for r in journal.runs(model, status="running", limit=1000)}
            live = self._lease_live(f"cycle:{model}")
            for v in pending:
                what = f"{model}:{v.version} (run {v.run_id or 'none'})"
                why = self._orphaned(v, running, live)
                if why is None:
                    waiting.append(f"{what} belongs to a running or resumable cycle")
                    continue
                if not self.repair:
                    problems.append(f"{what}: {why}; --repair sets it FAILED")
                    continue
                try:
                    reg.set_status(model, v.version, "FAILED", actor=self.actor, reason=ORPHANED)
                except ConflictError as exc:
                    log.info("%s changed meanwhile (%s); left alone", what, exc)
                    continue
                fixed.append(f"{what} set FAILED ({why})")
        healthy = "no orphaned PENDING version" + (f"; {'; '.join(waiting)}" if waiting else "")
        return _row("pending", problems, fixed, healthy, "warn")

    def _orphaned(self, v: VersionInfo, running: set[str], live: bool) -> str | None:
        """Why no run will register ``v``, or None when one will: its running run's cycle
        holds the lease, or journaled ``v`` as trained (the next cycle resumes it)."""
        if v.run_id is None or v.run_id not in running:
            return "its run is not running"
        if live:
            return None
        trained = self.ws.journal.get(v.run_id).steps.get("train", {})
        if trained.get("version") == v.version:
            return None
        return (
            f"its run is 'running' with no live cycle:{v.model} holder, and its journal "
            "does not name it as trained"
        )

    def audit(self) -> Check:
        from retrainer.governance.anchor import verify_audit  # reads anchors via fsspec

        with self.ws.secrets.scrubbed("audit.anchor"):
            verdict = verify_audit(self.db, self.ws.anchor_uri)
        chain = verdict.chain
        healthy = f"{chain.events} events verified, head {chain.head[:12]}…, "
        healthy += f"{verdict.anchors_checked} anchor(s) checked"
        at = "" if verdict.first_broken_id is None else f" at event {verdict.first_broken_id}"
        broken = f"broken{at}: {self.ws.secrets.redact(verdict.problem or '')}; never repaired "
        broken += "(it is the evidence): find who edited the store ('retrainer audit log')"
        return _row("audit", [] if verdict.ok else [broken], [], healthy, "fail")

    def champion(self) -> Check:
        def fn(s: Session) -> list[tuple[str, int, str | None]]:
            found = s.execute(
                select(Alias.model, Alias.version, ModelVersion.status)
                .outerjoin(
                    ModelVersion,
                    (ModelVersion.model == Alias.model) & (ModelVersion.version == Alias.version),
                )
                .where(Alias.alias == CHAMPION)
                .order_by(Alias.model)
            )
            return [(str(m), int(v), st) for m, v, st in found]

        rows = self.db.transaction(fn)  # one row per model at most: (model, alias) is the key
        problems: list[str] = []
        for model, version, status in rows:
            if status != "READY":
                state = "does not exist" if status is None else f"is {status}"
                problems.append(
                    f"{model}@champion points at {model}:{version}, which {state}: "
                    f"'retrainer rollback {model}' moves it back (doctor never moves it)"
                )
        healthy = ", ".join(f"{m}@champion = {m}:{v} (READY)" for m, v, _ in rows)
        return _row("champion", problems, [], healthy or "no champion yet", "fail")

    def executor(self) -> Check:
        """The spec's executor runs a task (a Dask cluster is reached or started)."""
        name = self.ws.spec.executor
        if name == "local":
            return Check("executor", "ok", "local: cycles run in their own process")
        probe = pd.DataFrame({"probe": [0, 1, 2]})
        rows = sum(self.ws.executor.map_partitions(len, probe))  # ExecutorError: fail row
        if rows != len(probe):
            return Check("executor", "fail", f"{name}: a probe task returned {rows} rows, not 3")
        return Check("executor", "ok", f"{name}: ran a probe task")
