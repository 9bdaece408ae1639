"""The hash-chained audit log: records and the head row.

A database that already holds these tables (a deployment that keeps the audit log in its directory
database, created there by the directory's first migration) keeps them: they are adopted, not re-created.

Revision ID: audit_0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "audit_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("audit_events"):
        return  # adopted from the directory schema (same tables, same columns)
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("time", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(320), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_events_subject", "audit_events", ["subject"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),
    )


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_index("ix_audit_events_subject", table_name="audit_events")
    op.drop_table("audit_events")
