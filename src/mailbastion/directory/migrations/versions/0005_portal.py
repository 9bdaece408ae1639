"""The portal's tables: portal roles with TOTP and sign-in state, server-side sessions, enrolment links.

New tables only (nothing existing is rebuilt, so the directory-generation triggers of 0002 stay as they
are); see `directory/portal_models.py` for what each holds and why no secret is stored as it is used.

Revision ID: 0005_portal
Revises: 0004_app_passwords
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_portal"
down_revision = "0004_app_passwords"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "portal_accounts",
        sa.Column("address", sa.String(320), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False, server_default="user"),
        sa.Column("totp_secret", sa.LargeBinary, nullable=True),
        _when("totp_confirmed_at", True),
        sa.Column("totp_last_step", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
        _when("failed_since", True),
        _when("locked_until", True),
        sa.CheckConstraint("role IN ('administrator', 'helpdesk', 'user')", name="ck_portal_accounts_role"),
    )
    op.create_table(
        "portal_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("mfa_done", sa.Boolean, nullable=False, server_default=sa.false()),
        _when("created_at"),
        _when("last_seen_at"),
        _when("expires_at"),
        sa.Column("client", sa.String(64), nullable=False, server_default=""),
    )
    op.create_index("ix_portal_sessions_address", "portal_sessions", ["address"])
    op.create_index("ix_portal_sessions_expires_at", "portal_sessions", ["expires_at"])
    op.create_table(
        "portal_enrol_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("address", sa.String(320), nullable=False),
        _when("created_at"),
        _when("expires_at"),
        _when("used_at", True),
        sa.Column("created_by", sa.String(320), nullable=False),
    )
    op.create_index("ix_portal_enrol_tokens_address", "portal_enrol_tokens", ["address"])


def downgrade() -> None:
    op.drop_index("ix_portal_enrol_tokens_address", "portal_enrol_tokens")
    op.drop_table("portal_enrol_tokens")
    op.drop_index("ix_portal_sessions_expires_at", "portal_sessions")
    op.drop_index("ix_portal_sessions_address", "portal_sessions")
    op.drop_table("portal_sessions")
    op.drop_table("portal_accounts")
