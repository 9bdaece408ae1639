"""WebAuthn security keys of portal accounts (directory/webauthn_keys.py): an optional second factor.

A new table only, outside the directory-generation triggers of 0002 (a sign-in must not make every MDA
re-read the directory). Each key is bound to the account row (`account_id`) as well as its address, so an
address given to a new account after a deletion does not inherit the old owner's keys.

Revision ID: 0011_webauthn
Revises: 0007_submission
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_webauthn"
down_revision = "0009_training"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portal_webauthn_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("credential_id", sa.String(1400), nullable=False),  # base64url, at most 1023 bytes raw
        sa.Column("public_key", sa.LargeBinary, nullable=False),  # COSE_Key (RFC 9053) as registered
        sa.Column("sign_count", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("credential_id", name="uq_portal_webauthn_keys_credential_id"),
        sa.UniqueConstraint("address", "name", name="uq_portal_webauthn_keys_address_name"),
    )
    op.create_index("ix_portal_webauthn_keys_address", "portal_webauthn_keys", ["address"])


def downgrade() -> None:
    op.drop_index("ix_portal_webauthn_keys_address", "portal_webauthn_keys")
    op.drop_table("portal_webauthn_keys")
