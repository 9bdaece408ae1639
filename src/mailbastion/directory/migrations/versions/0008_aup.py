"""The acceptable use policy (aup/): published versions, acceptances, notices sent past the grace period.

New tables only, outside the directory-generation triggers of 0002 (an acceptance must not make every MDA
re-read the directory). Addresses are stored normalized, like aliases and send-as grants.

Revision ID: 0008_aup
Revises: 0007_submission
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_aup"
down_revision = "0007_submission"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aup_versions",
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(320), nullable=False),
    )
    op.create_index("ix_aup_versions_effective_at", "aup_versions", ["effective_at"])
    op.create_table(
        "aup_acceptances",
        sa.Column("account", sa.String(320), primary_key=True),
        sa.Column("version", sa.String(32), sa.ForeignKey("aup_versions.version", name="fk_aup_acceptances_version"),
                  primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
    )
    op.create_index("ix_aup_acceptances_version", "aup_acceptances", ["version"])
    op.create_table(
        "aup_notices",
        sa.Column("account", sa.String(320), primary_key=True),
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queue_id", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("aup_notices")
    op.drop_index("ix_aup_acceptances_version", "aup_acceptances")
    op.drop_table("aup_acceptances")
    op.drop_index("ix_aup_versions_effective_at", "aup_versions")
    op.drop_table("aup_versions")
