"""Batch scores carry the drift verdict and the label-free (CBPE) estimate.

``batch_scores.drift`` is the drift report of a batch against the champion's reference
profile (per-feature statistics and statuses); ``batch_scores.estimated`` holds the
champion's estimated metrics on the batch without its labels. Both are JSON, nullable
(batches scored before this revision have neither).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 01:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batch_scores") as batch:
        batch.add_column(sa.Column("drift", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("estimated", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batch_scores") as batch:
        batch.drop_column("estimated")
        batch.drop_column("drift")
