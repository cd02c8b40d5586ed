"""Loaded model versions, the champion poller (load-then-swap) and the version selector hook.

The pool keeps, per served model, an immutable :class:`ServedModel` for the champion
and for every other version the selector asks for. A background thread polls the
registry every ``poll_seconds``; when the champion alias moved, it reads the new
version's artifact (:meth:`ArtifactStore.get` verifies the sha256), loads it with the
safe skops loader and only then replaces the reference (one assignment: requests in
flight keep the object they took). A version that fails to load is never swapped in:
the old one keeps serving and health reports ``degraded`` with the reason; it is
retried after ``retry_seconds`` or when the alias moves again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from retrainer.registry import CHAMPION
from retrainer.service.schema import FeatureSchema, ParsedInput
from retrainer.service.scoring import Scorer
from retrainer.workspace import Workspace

__all__ = ["ChampionSelector", "ModelPool", "ServedModel", "VersionSelector"]

logger = logging.getLogger(__name__)


@runtime_checkable
class VersionSelector(Protocol):
    """Chooses which loaded version answers a request (the hook for canary routing).

    Both methods are called often and must be fast, non-blocking and thread-safe.
    """

    def versions(self, model: str) -> Collection[int]:
        """Versions besides the champion the pool must keep loaded for ``model``.

        Called by the poller each tick; a version dropped from the answer is unloaded.
        """
        ...

    def choose(self, model: str, request_key: str, champion: int) -> int:
        """The version to answer with.

        ``request_key`` is the caller's ``X-Request-Key`` header, or else a fresh random
        id (so keyless traffic spreads evenly); ``champion`` is the loaded champion's
        version. A version that is not loaded falls back to the champion (counted as
        ``retrainer_serve_errors_total{kind="selector_fallback"}``); so does a
        ``choose`` that raises (logged).
        """
        ...


class ChampionSelector:
    """The default: every request goes to the champion."""

    def versions(self, model: str) -> Collection[int]:
        """No extra versions."""
        return ()

    def choose(self, model: str, request_key: str, champion: int) -> int:
        """Always the champion."""
        return champion


@dataclass(frozen=True)
class ServedModel:
    """One loaded version (never mutated; replaced whole on a swap)."""

    name: str
    version: int
    sha256: str
    estimator: Any
    schema: FeatureSchema
    task: str
    classes: tuple[Any, ...] = ()
    scorer: Scorer | None = None
    loaded_at: float = field(default_factory=time.time)

    def score(self, parsed: ParsedInput) -> list[dict[str, Any]]:
        """One result per row (:meth:`Scorer.score`)."""
        scorer = self.scorer or Scorer(self.estimator, self.task, self.classes)
        return scorer.score(parsed)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary for health and model listings."""
        return {
            "version": self.version,
            "sha256": self.sha256,
            "task": self.task,
            "features": self.schema.to_dict(),
            "array_path": self.scorer is not None and self.scorer.direct,
        }


@dataclass
class _Slot:
    champion: ServedModel | None = None
    others: dict[int, ServedModel] = field(default_factory=dict)
    failures: dict[int, tuple[float, str]] = field(default_factory=dict)  # version -> (when, why)


class ModelPool:
    """Served models of one workspace: what is loaded, what failed, and the poller.

    Args:
        ws: The open workspace (its registry and artifact store are read; nothing is
            written).
        selector: The version selector (default: :class:`ChampionSelector`).
        poll_seconds: How often the poller checks the champion alias.
        retry_seconds: How long a version that failed to load is left alone.
        on_swap: Called with ``(model, version)`` after a swap.
        on_failure: Called with ``(model, version, exception)`` after a failed load.
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        selector: VersionSelector | None = None,
        poll_seconds: float = 2.0,
        retry_seconds: float = 30.0,
        on_swap: Callable[[str, int], None] | None = None,
        on_failure: Callable[[str, int, BaseException], None] | None = None,
    ) -> None:
        if poll_seconds <= 0:
            raise ValueError(f"expected poll_seconds > 0, got {poll_seconds}")
        self.ws = ws
        self.selector: VersionSelector = selector or ChampionSelector()
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self._on_swap = on_swap
        self._on_failure = on_failure
        self._slots: dict[str, _Slot] = {ws.spec.model.name: _Slot()}
        self._lock = threading.Lock()  # serialises refreshes (poller vs. explicit calls)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.poll_error: str | None = None

    def served_names(self) -> list[str]:
        """The models served: the spec's model and every model with a ``champion`` alias.

        A model's feature schema and task come from its version's lineage (recorded at
        training), or from the spec for the spec's model.
        """
        registry = self.ws.registry
        named = {self.ws.spec.model.name}
        named |= {m for m in registry.models() if registry.get_alias(m, CHAMPION) is not None}
        return sorted(named)

    # -- reading (request path) --------------------------------------------------------

    def names(self) -> list[str]:
        """Served model names."""
        return sorted(self._slots)

    def get(self, model: str, request_key: str) -> tuple[ServedModel | None, bool]:
        """The version answering this request and whether the selector fell back.

        The selector's answer falls back to the champion when that version is not
        loaded or the selector raised. Returns ``(None, False)`` while nothing is loaded.
        Raises KeyError for an unknown model.
        """
        slot = self._slots[model]
        champion = slot.champion  # one read: a concurrent swap cannot tear it
        if champion is None:
            return None, False
        try:
            chosen = self.selector.choose(model, request_key, champion.version)
        except Exception:  # a selector failure must not fail the request
            logger.exception("%s: version selector failed; answering with the champion", model)
            return champion, True
        if chosen == champion.version:
            return champion, False
        other = slot.others.get(chosen)
        return (other, False) if other is not None else (champion, True)

    def champion(self, model: str) -> ServedModel | None:
        """The loaded champion of ``model`` (None until loaded). KeyError if not served."""
        return self._slots[model].champion

    def loaded(self, model: str, version: int) -> ServedModel | None:
        """``version`` of ``model`` if it is loaded (as champion or beside it)."""
        slot = self._slots[model]
        champion = slot.champion
        if champion is not None and champion.version == version:
            return champion
        return slot.others.get(version)

    def health(self) -> dict[str, Any]:
        """Per model: what serves, and failures (a failure makes the pool degraded)."""
        out: dict[str, Any] = {}
        for name, slot in sorted(self._slots.items()):
            champion = slot.champion
            out[name] = {
                "serving": None if champion is None else champion.describe(),
                "also_loaded": sorted(slot.others),
                "failed": {str(v): reason for v, (_, reason) in sorted(slot.failures.items())},
            }
        return out

    def problems(self) -> list[str]:
        """Why the pool is degraded (empty when healthy)."""
        out: list[str] = []
        for name, slot in sorted(self._slots.items()):
            if slot.champion is None:
                out.append(f"{name}: no version loaded")
            for version, (_, reason) in sorted(slot.failures.items()):
                out.append(f"{name}: pending version {version} failed: {reason}")
        if self.poll_error:
            out.append(f"registry poll failed: {self.poll_error}")
        return out

    def ready(self) -> bool:
        """True when the spec's model has a loaded version and every other served model
        has one or has failed to load (reported by ``problems``; it must not keep the
        whole server out of rotation)."""
        main = self.ws.spec.model.name
        return all(
            slot.champion is not None or (name != main and slot.failures)
            for name, slot in self._slots.items()
        )

    # -- loading (poller) --------------------------------------------------------------

    def start(self) -> None:
        """Load what is there now, then poll in a daemon thread."""
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="champion-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the poller (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()

    def refresh(self) -> None:
        """One poll: load and swap in whatever the aliases and the selector now name."""
        with self._lock:
            try:
                new = [n for n in self.served_names() if n not in self._slots]
                if new:  # copy-on-write: request threads read the dict without a lock
                    self._slots = {**self._slots, **{n: _Slot() for n in new}}
                for name in self._slots:
                    self._refresh_model(name)
                self.poll_error = None
            except Exception as exc:  # noqa: BLE001 - a store hiccup must not stop serving
                logger.warning("champion poll failed: %s", exc)
                self.poll_error = f"{type(exc).__name__}: {exc}"

    def _refresh_model(self, name: str) -> None:
        slot = self._slots[name]
        registry = self.ws.registry
        wanted = registry.get_alias(name, CHAMPION)
        if wanted is not None and (slot.champion is None or slot.champion.version != wanted):
            loaded = self._load(name, wanted, slot)
            if loaded is not None:
                old = slot.champion
                slot.champion = loaded  # the swap: one reference assignment
                logger.info(
                    "%s: now serving version %d (was %s)",
                    name,
                    wanted,
                    None if old is None else old.version,
                )
                if self._on_swap is not None:
                    self._on_swap(name, wanted)
        current = slot.champion.version if slot.champion is not None else None
        extra = {int(v) for v in self.selector.versions(name)} - {current}
        others = {v: m for v, m in slot.others.items() if v in extra}
        for version in sorted(extra - set(others)):
            loaded = self._load(name, version, slot)
            if loaded is not None:
                others[version] = loaded
        slot.others = others  # replaced whole, never mutated in place
        keep = ({wanted} if wanted is not None else set()) | extra
        current_now = slot.champion.version if slot.champion is not None else None
        slot.failures = {v: f for v, f in slot.failures.items() if v in keep and v != current_now}

    def _load(self, name: str, version: int, slot: _Slot) -> ServedModel | None:
        failed = slot.failures.get(version)
        if failed is not None and time.monotonic() - failed[0] < self.retry_seconds:
            return None
        try:
            model = self._load_version(name, version)
        except Exception as exc:  # noqa: BLE001 - any load failure keeps the old model
            reason = f"{type(exc).__name__}: {exc}"
            logger.warning("%s: version %d not swapped in: %s", name, version, reason)
            slot.failures = {**slot.failures, version: (time.monotonic(), reason)}
            if self._on_failure is not None:
                try:
                    self._on_failure(name, version, exc)
                except Exception:
                    logger.exception("%s: the load-failure hook failed", name)
            return None
        slot.failures = {v: f for v, f in slot.failures.items() if v != version}
        return model

    def _load_version(self, name: str, version: int) -> ServedModel:
        from retrainer.errors import ConflictError, PolicyError
        from retrainer.registry.serialization import load_model  # skops: slow to import

        info = self.ws.registry.get(name, version)
        if info.status == "QUARANTINED":
            raise PolicyError(f"{name}:{version} is QUARANTINED; it is not loaded")
        if info.artifact_sha256 is None:
            raise ConflictError(f"{name}:{version} has no artifact")
        data = self.ws.artifacts.get(info.artifact_sha256, what=f"model {name} v{version}")
        estimator = load_model(data, extra_trusted=self.ws.spec.train.trusted_types)
        numeric, categorical, task = self._signature(name, version, info.lineage)
        schema = FeatureSchema(
            numeric=numeric,
            categorical=categorical,
            categories=_known_categories(estimator, list(categorical)),
        )
        classes: tuple[Any, ...] = ()
        if task == "classification":
            if not hasattr(estimator, "predict_proba") or not hasattr(estimator, "classes_"):
                raise TypeError(
                    f"{name}:{version}: a classifier without predict_proba/classes_ "
                    f"({type(estimator).__name__})"
                )
            classes = tuple(_plain(c) for c in estimator.classes_)
        scorer = Scorer(estimator, task, classes)
        _smoke_test(scorer, schema)
        return ServedModel(
            name=name,
            version=version,
            sha256=info.artifact_sha256,
            estimator=estimator,
            schema=schema,
            task=task,
            classes=classes,
            scorer=scorer,
        )

    def _signature(
        self, name: str, version: int, lineage: Mapping[str, Any]
    ) -> tuple[tuple[str, ...], tuple[str, ...], str]:
        """(numeric features, categorical features, task) of a version.

        From its lineage (``features``, ``task``: recorded at training), else from the
        spec when it is the spec's model. Raises PolicyError when neither knows.
        """
        from retrainer.errors import PolicyError

        feats, task = lineage.get("features"), lineage.get("task")
        if isinstance(feats, Mapping) and task in ("classification", "regression"):
            return tuple(feats.get("numeric", ())), tuple(feats.get("categorical", ())), task
        spec_model = self.ws.spec.model
        if name == spec_model.name:
            f = spec_model.features
            return tuple(f.numeric), tuple(f.categorical), spec_model.task
        raise PolicyError(
            f"{name}:{version} records no feature schema (features, task) in its lineage "
            "and is not the spec's model: the server cannot check its input"
        )


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _known_categories(estimator: Any, categorical: list[str]) -> dict[str, frozenset[Any]]:
    """Categories the fitted one-hot encoder knows, by feature (empty when not found)."""
    from sklearn.preprocessing import OneHotEncoder

    out: dict[str, frozenset[Any]] = {}
    steps = getattr(estimator, "named_steps", {})
    transformer = steps.get("features") if hasattr(steps, "get") else None
    for _, encoder, columns in getattr(transformer, "transformers_", []):
        if isinstance(encoder, OneHotEncoder) and hasattr(encoder, "categories_"):
            for column, cats in zip(columns, encoder.categories_, strict=False):
                if column in categorical:
                    out[column] = frozenset(_plain(c) for c in cats)
    return out


def _smoke_test(scorer: Scorer, schema: FeatureSchema) -> None:
    """Predict synthetic rows, so a model that cannot predict is never swapped in; on
    them, check the scorer's array path gives the pipeline's numbers (else not used)."""
    values = (0.0, 1.0, -1.5, 1e3, 0.25)
    rows: list[dict[str, Any]] = []
    for i, value in enumerate(values):
        row: dict[str, Any] = {n: value * (j + 1) for j, n in enumerate(schema.numeric)}
        for name in schema.categorical:
            known = sorted(schema.categories.get(name, ()), key=str)
            row[name] = known[i % len(known)] if known else ""
        rows.append(row)
    probe = schema.parse({"records": rows})
    scorer.enable_direct(schema, probe)
    scorer.score(probe)
