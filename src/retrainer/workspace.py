"""The composition root: one workspace's spec, store, artifacts, sources and clock.

A workspace is a folder with ``retrainer.yaml``; on the embedded default its state
lives in ``.retrainer/`` beside it (SQLite store and local artifacts). Opening a
workspace validates the spec first, before any side effect, then connects the store
(creating and migrating it if needed). Nothing here is global: the CLI, the service
and the tests each open the workspace they need and pass it down.

This is where the spec's strings become connections, so it is where ``${env:NAME}``
secret references are resolved (:mod:`retrainer.secrets`): the store URL, the artifact
root, the data source and the audit anchor, each inside ``secrets.scrubbed`` so that an
error echoing the resolved text shows ``***`` instead of the value. A local location
may not climb out with ``..`` (also percent-encoded) and no location may hold a control
character; an absolute path or a URI is an explicit choice and is used as given.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from retrainer.data.ledger import Ledger
from retrainer.data.sources import BatchRef, Source, SourceRegistry
from retrainer.errors import DataSourceError, SpecError, StoreError
from retrainer.orchestrate.executors import Executor, build_executor
from retrainer.orchestrate.journal import Journal
from retrainer.orchestrate.lease import Leases
from retrainer.registry.artifacts import ArtifactStore
from retrainer.registry.db import Clock, Database, build_engine, utc_now
from retrainer.registry.migrate import migrate
from retrainer.registry.registry import Registry
from retrainer.secrets import Secrets, has_reference
from retrainer.spec import PipelineSpec, load_spec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SPEC_FILE", "STATE_DIR", "Workspace", "find_spec"]

log = logging.getLogger(__name__)

SPEC_FILE = "retrainer.yaml"
STATE_DIR = ".retrainer"


def find_spec(path: Path) -> Path:
    """``path`` itself if it is a file, else ``path/retrainer.yaml``. Raises SpecError."""
    candidate = path if path.is_file() else path / SPEC_FILE
    if not candidate.is_file():
        raise SpecError(
            f"{candidate}: no spec file here; run 'retrainer init' to create a workspace, "
            "or pass --workspace DIR"
        )
    return candidate


@dataclass
class Workspace:
    """Everything one workspace needs, built once and passed down."""

    root: Path
    spec_path: Path
    spec: PipelineSpec
    db: Database
    artifacts: ArtifactStore
    sources: SourceRegistry = field(default_factory=SourceRegistry.default)
    secrets: Secrets = field(default_factory=Secrets.from_environ)
    _executor: Executor | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(
        cls,
        path: Path = Path(),
        *,
        clock: Clock = utc_now,
        env: Mapping[str, str] | None = None,
        migrate_store: bool = True,
    ) -> Workspace:
        """Load and validate the spec, then connect and migrate the store.

        ``env`` holds the values of ``${env:NAME}`` references (default: ``os.environ``).
        ``migrate_store=False`` leaves the schema as it is and does not contact the store
        (``retrainer doctor`` reports a schema that is behind instead of fixing it unasked).
        """
        spec_path = find_spec(path).resolve()
        spec = load_spec(spec_path)  # fail fast: nothing has been touched yet
        root = spec_path.parent
        secrets = Secrets(os.environ if env is None else env)
        url = secrets.resolve(spec.store, key="store")  # both before any side effect
        uri = secrets.resolve(spec.artifacts, key="artifacts")
        if url.startswith("sqlite"):
            _check_location("store", spec.store, url)
        _check_location("artifacts", spec.artifacts, uri)
        with secrets.scrubbed("store", StoreError):
            db = Database(build_engine(url, base_dir=root), clock=clock)
        try:
            if migrate_store:
                with secrets.scrubbed("store", StoreError):
                    migrate(db)
            with secrets.scrubbed("artifacts", SpecError):
                artifacts = ArtifactStore.from_uri(uri, base_dir=root)
        except BaseException:
            db.dispose()
            raise
        return cls(
            root=root, spec_path=spec_path, spec=spec, db=db, artifacts=artifacts, secrets=secrets
        )

    @property
    def state_dir(self) -> Path:
        """``.retrainer/`` of this workspace."""
        return self.root / STATE_DIR

    @property
    def registry(self) -> Registry:
        """Versions and aliases (exporting the audit anchor after champion moves, when
        the spec names one)."""
        anchor = self.anchor_uri
        if anchor is None:
            return Registry(self.db)
        from retrainer.governance.anchor import export_after_move, export_anchor

        if not has_reference(self.spec.audit.anchor):
            return Registry(self.db, after_champion_move=lambda: export_after_move(self.db, anchor))

        def export() -> None:  # export_after_move, with the resolved anchor kept out of logs
            try:
                with self.secrets.scrubbed("audit.anchor"):
                    export_anchor(self.db, anchor)
            except Exception as exc:  # noqa: BLE001 - the move has committed; verify shows it
                log.error(
                    "could not export the audit anchor to %s: %s",
                    self.spec.audit.anchor,
                    self.secrets.redact(f"{type(exc).__name__}: {exc}"),
                )

        return Registry(self.db, after_champion_move=export)

    @property
    def anchor_uri(self) -> str | None:
        """The spec's ``audit.anchor``, references resolved; a plain relative path is
        under the workspace. Raises SpecError (a missing variable, a ``..`` segment)."""
        spec_anchor = self.spec.audit.anchor
        if spec_anchor is None:
            return None
        anchor = self.secrets.resolve(spec_anchor, key="audit.anchor")
        _check_location("audit.anchor", spec_anchor, anchor)
        if "://" in anchor or Path(anchor).is_absolute():
            return anchor
        return str(self.root / anchor)

    @property
    def ledger(self) -> Ledger:
        """Batches, snapshots and watermarks."""
        return Ledger(self.db, self.artifacts)

    @property
    def journal(self) -> Journal:
        """Runs and their steps."""
        return Journal(self.db)

    @property
    def leases(self) -> Leases:
        """Named leases (one cycle per model at a time)."""
        return Leases(self.db)

    def source(self) -> Source:
        """The spec's data source (references resolved; errors scrubbed of their values)."""
        d = self.spec.data
        with self.secrets.scrubbed("data.source", DataSourceError):
            uri = self.secrets.resolve(d.source, key="data.source")
            if _is_file_location(uri):
                _check_location("data.source", d.source, uri)
            elif any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in uri):
                raise SpecError(f"data.source: {d.source!r} holds a control character or NUL")
            built = self.sources.build(
                uri, base_dir=self.root, query=d.query, time_column=d.time_column
            )
        return _ScrubbedSource(built, self.secrets) if has_reference(d.source) else built

    @property
    def executor(self) -> Executor:
        """The spec's executor, built on first use (a Dask cluster is started or
        connected only then) and closed with the workspace."""
        if self._executor is None:
            self._executor = build_executor(self.spec.executor)
        return self._executor

    def close(self) -> None:
        """Release the executor and the store's connections."""
        try:
            if self._executor is not None:
                self._executor.close()
                self._executor = None
        finally:
            self.db.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_FILE_SCHEMES = ("parquet", "csv", "file", "sqlite", "duckdb")


def _is_file_location(uri: str) -> bool:
    scheme, sep, _ = uri.partition("://")
    return not sep or scheme.lower().split("+")[0] in _FILE_SCHEMES


def _check_location(key: str, spec_text: str, value: str) -> str:
    """``value`` unless it holds a control character (NUL...) or a ``..`` segment, as
    given or percent-decoded once or twice. Errors show ``spec_text``, never ``value``."""
    for text in {value, unquote(value), unquote(unquote(value))}:
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
            raise SpecError(f"{key}: {spec_text!r} holds a control character or NUL")
        if ".." in re.split(r"[/\\]", text):
            raise SpecError(
                f"{key}: {spec_text!r} climbs out with '..' (path escapes root); a relative "
                "location stays inside the workspace: write an absolute path or a URI for a "
                "place outside it"
            )
    return value


class _ScrubbedSource:
    """A source whose errors and batch URIs never show a resolved secret."""

    def __init__(self, inner: Source, secrets: Secrets) -> None:
        self._inner = inner
        self._secrets = secrets
        self.uri = secrets.redact(inner.uri)

    def __repr__(self) -> str:
        return self._secrets.redact(repr(self._inner))

    def discover(self, watermark: Mapping[str, Any] | None) -> list[BatchRef]:
        with self._secrets.scrubbed("data.source", DataSourceError):
            refs = self._inner.discover(watermark)
        return [replace(ref, source_uri=self.uri) for ref in refs]

    def read(self, ref: BatchRef) -> pd.DataFrame:
        with self._secrets.scrubbed("data.source", DataSourceError):
            return self._inner.read(ref)

    def advance(
        self, watermark: Mapping[str, Any] | None, ref: BatchRef, frame: pd.DataFrame
    ) -> dict[str, Any]:
        with self._secrets.scrubbed("data.source", DataSourceError):
            return self._inner.advance(watermark, ref, frame)
