"""The audit log moves out of the directory database into its own (`[audit] url`).

Upgrade: the records and head row of `audit_events`/`audit_head` are copied verbatim into the audit
database named by the running `Directory` (`mailbastion.audit.transfer.moving_to`), then the two tables
are dropped. Copied first, in the audit database's own committed transaction, and dropped after: a move
interrupted in between runs again (the copy skips what is already there), so no record is lost. When the
audit log lives in this same database (`[audit] url` = `[directory] url`), nothing moves: the tables stay
and the audit schema adopts them. Refuses (and changes nothing) when records exist but no destination was
named (a bare `migrate()`), or when the destination holds a different chain (`AuditChainConflict`).

Downgrade: the tables come back, with the audit database's records copied back into them verbatim.

Revision ID: 0003_audit_moves_out
Revises: 0002_directory_generation
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mailbastion.audit import transfer
from mailbastion.audit.log import EVENTS, HEAD
from mailbastion.audit.models import AuditBase

revision = "0003_audit_moves_out"
down_revision = "0002_directory_generation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("audit_events"):
        return
    target = transfer.destination()
    if target is not None and target.shares_database(bind.engine):
        return  # one database for both: the tables stay, now the audit schema's
    has_records = bind.execute(sa.text("SELECT count(*) FROM audit_events")).scalar_one() > 0
    has_head = bind.execute(sa.text("SELECT count(*) FROM audit_head")).scalar_one() > 0
    if has_records or has_head:
        if target is None:
            raise RuntimeError("the directory database holds audit records that must move to the audit database, "
                               "but none was named: open the directory through Directory (it knows [audit] url)")
        transfer.import_chain(bind, target)
    op.drop_table("audit_head")
    op.drop_index("ix_audit_events_subject", table_name="audit_events")
    op.drop_table("audit_events")


def downgrade() -> None:
    bind = op.get_bind()
    if sa.inspect(bind).has_table("audit_events"):
        return  # one database for both: the tables never left
    AuditBase.metadata.create_all(bind)
    source = transfer.destination()
    if source is None:
        return
    with source.engine.connect() as conn:
        rows = [r._asdict() for r in conn.execute(sa.select(EVENTS).order_by(EVENTS.c.seq))]
        head = conn.execute(sa.select(HEAD)).first()
    if rows:
        bind.execute(sa.insert(EVENTS), rows)
    if head is not None:
        bind.execute(sa.insert(HEAD).values(id=1, seq=head.seq, hash=head.hash))
