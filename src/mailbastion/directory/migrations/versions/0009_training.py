"""Training (measure 8): module assignments with their results, phishing-simulation campaigns and their
per-recipient results (training/models.py).

New tables only, outside the directory-generation triggers of 0002 (a quiz answer must not make every MDA
re-read the directory).

Revision ID: 0009_training
Revises: 0007_submission
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_training"
down_revision = "0008_aup"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_assignments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("module", sa.String(64), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("assigned_by", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("score", sa.Integer, nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("address", "module", name="uq_training_assignments_address_module"),
    )
    op.create_index("ix_training_assignments_due_at", "training_assignments", ["due_at"])
    op.create_table(
        "training_campaigns",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("target", sa.String(320), nullable=False),
        sa.Column("module", sa.String(64), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "training_targets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign", sa.String(64), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("queue_id", sa.String(64), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clicked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("campaign", "address", name="uq_training_targets_campaign_address"),
        sa.UniqueConstraint("token_hash", name="uq_training_targets_token_hash"),
    )


def downgrade() -> None:
    op.drop_table("training_targets")
    op.drop_table("training_campaigns")
    op.drop_index("ix_training_assignments_due_at", "training_assignments")
    op.drop_table("training_assignments")
