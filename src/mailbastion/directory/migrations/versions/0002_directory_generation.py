"""PLACEHOLDER for helper 'admin''s revision of the same id (branch `admin`): at merge, drop this file in
favour of theirs. It exists only so that `0003_audit_moves_out` has its down revision on this branch.

Revision ID: 0002_directory_generation
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "0002_directory_generation"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
