"""Submission: send-as grants and sending holds (directory/sending.py).

New tables only, outside the directory-generation triggers of 0002 (a suspension must not make every MDA
re-read the directory).

Revision ID: 0007_submission
Revises: 0006_lifecycle
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_submission"
down_revision = "0006_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "send_as_grants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account", sa.String(320), nullable=False),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.UniqueConstraint("account", "sender", name="uq_send_as_grants_account_sender"),
    )
    op.create_index("ix_send_as_grants_account", "send_as_grants", ["account"])
    op.create_table(
        "sending_holds",
        sa.Column("account", sa.String(320), primary_key=True),
        sa.Column("reason", sa.String(1000), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("suspended_by", sa.String(320), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sending_holds")
    op.drop_index("ix_send_as_grants_account", "send_as_grants")
    op.drop_table("send_as_grants")
