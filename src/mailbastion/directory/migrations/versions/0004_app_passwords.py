"""App passwords: one generated password per device of an account, stored as an argon2id hash, so that mail
clients (IMAP, submission) never hold the account's main password. A new table only: `accounts` is not
rebuilt, so the generation triggers of 0002 stay in place.

Revision ID: 0004_app_passwords
Revises: 0003_audit_moves_out
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_app_passwords"
down_revision = "0003_audit_moves_out"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_passwords",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account_id", sa.Integer,
                  sa.ForeignKey("accounts.id", name="fk_app_passwords_account_id_accounts", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(8), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("account_id", "name", name="uq_app_passwords_account_name"),
    )
    op.create_index("ix_app_passwords_account_id", "app_passwords", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_app_passwords_account_id", table_name="app_passwords")
    op.drop_table("app_passwords")
