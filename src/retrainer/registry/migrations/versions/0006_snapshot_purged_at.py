"""Retention: ``snapshots.purged_at``, when retention deleted a snapshot's rows.

``retrainer retention apply`` deletes the stored rows (the Parquet artifact) of
snapshots past their retention period, and keeps the record: source, row count, time
range, columns and content hash stay, so lineage and the audit trail still name what
was there. ``purged_at`` is set in the transaction that appends the deletion's audit
event; NULL means the rows are (or should be) in the artifact store. Batches whose
rows were deleted move to the status ``purged`` and versions whose artifacts were
deleted to ``PURGED``; both columns are plain text, so neither needs a schema change.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("purged_at")
