"""Accounts over time (issue 13): the states `left` and `archived`, start dates, successors, HR's name and
manager, the archive of a leaver's mailbox, the reservation of a deleted account's address, and which
accounts the LDAP sync keeps (`source`).

`disabled` rows stay as they are (still a legal state: what `deactivate` made before this revision).

Widening the state CHECK rebuilds `accounts` on SQLite (batch mode). Two things a rebuild would lose are
kept by hand: the change-counter triggers of 0002 on `accounts` (created again), and the rows of
`app_passwords`, whose foreign key cascades on the DROP TABLE of the rebuild while foreign keys are on
(saved first, written back after).

Revision ID: 0006_lifecycle
Revises: 0005_portal
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_lifecycle"
down_revision = "0005_portal"
branch_labels = None
depends_on = None

NEW = "state IN ('pending', 'active', 'suspended', 'left', 'archived', 'disabled', 'deleted')"
OLD = "state IN ('pending', 'active', 'suspended', 'disabled', 'deleted')"
_BUMP = "UPDATE directory_generation SET generation = generation + 1 WHERE id = 1"
COLUMNS = (("start_at", sa.DateTime(timezone=True)), ("successor", sa.String(320)),
           ("display_name", sa.String(200)), ("manager", sa.String(320)),
           ("archived_at", sa.DateTime(timezone=True)), ("archive_file", sa.String(1024)),
           ("reserved_until", sa.DateTime(timezone=True)), ("source", sa.String(16)))


def _rebuild(change: object, check: str) -> None:
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    saved = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM app_passwords"))] if sqlite else []
    with op.batch_alter_table("accounts", recreate="always" if sqlite else "auto") as batch:
        change(batch)  # type: ignore[operator]
        batch.drop_constraint("ck_accounts_state", type_="check")
        batch.create_check_constraint("ck_accounts_state", sa.text(check))
    if sqlite:
        if saved:
            table = sa.table("app_passwords", *(sa.column(k) for k in saved[0]))
            conn.execute(sa.delete(table))
            conn.execute(sa.insert(table), saved)
        for event in ("insert", "update", "delete"):  # the rebuild dropped the triggers of 0002 on accounts
            op.execute(f"DROP TRIGGER IF EXISTS trg_accounts_{event}_generation")
            op.execute(f"CREATE TRIGGER trg_accounts_{event}_generation AFTER {event.upper()} ON accounts "
                       f"BEGIN {_BUMP}; END")


def upgrade() -> None:
    def add(batch: op.BatchOperations) -> None:  # type: ignore[name-defined]
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))

    _rebuild(add, NEW)


def downgrade() -> None:
    op.execute("UPDATE accounts SET state = 'disabled' WHERE state IN ('left', 'archived')")

    def drop(batch: op.BatchOperations) -> None:  # type: ignore[name-defined]
        for name, _ in COLUMNS:
            batch.drop_column(name)

    _rebuild(drop, OLD)
