"""PLACEHOLDER for helper 'imap''s migration of the same id (app passwords). Empty on this branch so that
0005_portal can be tested on top of it; the lead drops this file in favour of theirs at merge.

Revision ID: 0004_app_passwords
Revises: 0003_audit_moves_out
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "0004_app_passwords"
down_revision = "0003_audit_moves_out"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
