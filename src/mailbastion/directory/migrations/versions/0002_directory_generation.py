"""The directory's change counter: one row, bumped by triggers on every change to domains, accounts and
aliases, in the changing transaction, whoever changes them (our store, another process, an administrator
with SQL). Readers that keep the directory in memory (directory/cache.py) compare it to know when to
read again.

Triggers rather than a line in the store's change transaction: no writer can forget them. On SQLite a
table rebuilt by a batch migration loses its triggers; a later migration that rebuilds `domains`,
`accounts` or `aliases` must call `create_triggers()` again (tests/directory/test_directory_cache.py
fails otherwise: it changes each table with plain SQL and watches the counter).

Revision ID: 0002_directory_generation
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_directory_generation"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("domains", "accounts", "aliases")
_BUMP = "UPDATE directory_generation SET generation = generation + 1 WHERE id = 1"


def create_triggers() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        for table in TABLES:
            for event in ("INSERT", "UPDATE", "DELETE"):  # SQLite: one event per trigger, row level only
                op.execute(f"CREATE TRIGGER trg_{table}_{event.lower()}_generation AFTER {event} ON {table} "
                           f"BEGIN {_BUMP}; END")
    elif dialect == "postgresql":
        op.execute("CREATE FUNCTION directory_generation_bump() RETURNS trigger LANGUAGE plpgsql AS "
                   f"$$ BEGIN {_BUMP}; RETURN NULL; END $$")
        for table in TABLES:
            op.execute(f"CREATE TRIGGER trg_{table}_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                       f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION directory_generation_bump()")
    else:
        raise NotImplementedError(f"the directory supports SQLite and PostgreSQL, not {dialect}")


def drop_triggers() -> None:
    dialect = op.get_context().dialect.name
    for table in TABLES:
        if dialect == "sqlite":
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_{event}_generation")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_generation ON {table}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS directory_generation_bump()")


def upgrade() -> None:
    table = op.create_table(
        "directory_generation",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_directory_generation_single_row"),
    )
    op.bulk_insert(table, [{"id": 1, "generation": 0}])
    create_triggers()


def downgrade() -> None:
    drop_triggers()
    op.drop_table("directory_generation")
