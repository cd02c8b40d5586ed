"""The composition root: one workspace's spec, store, artifacts, sources and clock.

A workspace is a folder with ``retrainer.yaml``; on the embedded default its state
lives in ``.retrainer/`` beside it (SQLite store and local artifacts). Opening a
workspace validates the spec first, before any side effect, then connects the store
(creating and migrating it if needed). Nothing here is global: the CLI, the service
and the tests each open the workspace they need and pass it down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from retrainer.data.ledger import Ledger
from retrainer.data.sources import Source, SourceRegistry
from retrainer.errors import SpecError
from retrainer.orchestrate.journal import Journal
from retrainer.orchestrate.lease import Leases
from retrainer.registry.artifacts import ArtifactStore
from retrainer.registry.db import Clock, Database, build_engine, utc_now
from retrainer.registry.migrate import migrate
from retrainer.registry.registry import Registry
from retrainer.spec import PipelineSpec, load_spec

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

    @classmethod
    def open(cls, path: Path = Path(), *, clock: Clock = utc_now) -> Workspace:
        """Load and validate the spec, then connect and migrate the store."""
        spec_path = find_spec(path).resolve()
        spec = load_spec(spec_path)  # fail fast: nothing has been touched yet
        root = spec_path.parent
        db = Database(build_engine(spec.store, base_dir=root), clock=clock)
        try:
            migrate(db)
            artifacts = ArtifactStore.from_uri(spec.artifacts, base_dir=root)
        except BaseException:
            db.dispose()
            raise
        return cls(root=root, spec_path=spec_path, spec=spec, db=db, artifacts=artifacts)

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
        from retrainer.governance.anchor import export_after_move

        return Registry(self.db, after_champion_move=lambda: export_after_move(self.db, anchor))

    @property
    def anchor_uri(self) -> str | None:
        """The spec's ``audit.anchor``; a plain relative path is under the workspace."""
        anchor = self.spec.audit.anchor
        if anchor is None or "://" in anchor or Path(anchor).is_absolute():
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
        """The spec's data source."""
        d = self.spec.data
        return self.sources.build(
            d.source, base_dir=self.root, query=d.query, time_column=d.time_column
        )

    def close(self) -> None:
        """Release the store's connections."""
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
