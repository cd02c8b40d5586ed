"""Prediction log and labels: ``predictions`` and ``labels``.

``predictions`` holds one row per served prediction, keyed by ``(model, prediction_id)``
and indexed by ``(model, predicted_at)`` for windowed reads. ``labels`` holds the true
label (a JSON scalar) per ``(model, prediction_id)``; it has no foreign key to
``predictions`` on purpose: a label may arrive before its prediction is logged (or for
a prediction logged elsewhere) and is kept, never dropped.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("prediction_id", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("label", sa.String(length=256), nullable=True),
        sa.Column("probabilities", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("model", "prediction_id"),
    )
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_predictions_model_predicted_at", ["model", "predicted_at"], unique=False
        )

    op.create_table(
        "labels",
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("prediction_id", sa.String(length=128), nullable=False),
        sa.Column("label", sa.JSON(), nullable=False),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model", "prediction_id"),
    )


def downgrade() -> None:
    op.drop_table("labels")
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_index("ix_predictions_model_predicted_at")

    op.drop_table("predictions")
