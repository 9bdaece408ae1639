"""Moving an existing audit chain into an audit log, record for record, so that it stays verifiable.

The audit log used to live in the directory database. The directory's migration `0003_audit_moves_out`
copies those records into the audit database with `import_chain()` and then drops the old tables. The copy
is verbatim (seq, time, fields, prev_hash, hash, and the head row as it was): the chain verifies exactly as
before, external anchors taken before the move still match, and tampering done before the move still
shows after it.

A migration cannot be handed arguments, so the caller that knows where the audit log lives (the
`Directory`, from `[audit] url`) names it for the duration of the migration:

    with moving_to(audit_log):
        migrate(directory_engine)       # revision 0003 reads destination()
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlalchemy import Connection, insert, select, text

from mailbastion.audit import database

if TYPE_CHECKING:
    from mailbastion.audit.log import AuditLog

log = logging.getLogger("mailbastion.audit")

_destination: contextvars.ContextVar[AuditLog | None] = contextvars.ContextVar("audit_destination", default=None)


class AuditChainConflict(Exception):
    """The destination already holds records that are not a copy of the ones being moved: two chains
    cannot be merged without re-hashing one of them, which would defeat the anchors kept of it."""


@contextlib.contextmanager
def moving_to(audit_log: AuditLog) -> Iterator[None]:
    token = _destination.set(audit_log)
    try:
        yield
    finally:
        _destination.reset(token)


def destination() -> AuditLog | None:
    """The audit log named by the innermost `moving_to()`, or None."""
    return _destination.get()


def import_chain(source: Connection, target: AuditLog) -> int:
    """Copy the records and head row of the `audit_events`/`audit_head` tables that `source` reaches into
    `target`, verbatim, in one transaction of the audit database; return how many records were copied.
    The target's schema must be current (`AuditLog.migrate()`, done by whoever opened it: this runs inside
    the directory's migration, where a second Alembic run cannot nest).

    Idempotent: records the target already holds with the same seq and hash are skipped, so a move that
    was interrupted after this commit (before the old tables were dropped) simply runs again. Raises
    AuditChainConflict when the target holds a different record at a seq being moved, or records of its
    own interleaved with missing ones; nothing is written then.
    """
    from mailbastion.audit.log import EVENTS, HEAD

    rows = source.execute(text("SELECT seq, time, actor, action, subject, reason, details, prev_hash, hash "
                               "FROM audit_events ORDER BY seq")).all()
    head = source.execute(text("SELECT seq, hash FROM audit_head")).first()
    with database.write_transaction(target.engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE")
        held = {r.seq: r.hash for r in conn.execute(select(EVENTS.c.seq, EVENTS.c.hash))}
        for r in rows:
            if r.seq in held and held[r.seq] != r.hash:
                raise AuditChainConflict(
                    f"the audit database already holds another record {r.seq}: it has a chain of its own "
                    f"({len(held)} records). Point [audit] url at an empty database, or move those records "
                    "aside, and start again; the directory database is left as it was")
        missing = [r for r in rows if r.seq not in held]
        if missing and held and max(held) > min(r.seq for r in missing):
            raise AuditChainConflict(
                f"the audit database holds records after seq {min(r.seq for r in missing)} that the directory "
                "database does not: the two chains differ. Point [audit] url at an empty database and start again")
        if missing:
            conn.execute(insert(EVENTS), [r._asdict() for r in missing])
        if head is not None and (missing or not held):
            conn.execute(HEAD.delete())
            conn.execute(insert(HEAD).values(id=1, seq=head.seq, hash=head.hash))
    if missing:
        log.warning("audit: moved %d records from the directory database to %s", len(missing),
                    target.engine.url.render_as_string(hide_password=True))
    return len(missing)


__all__ = ["AuditChainConflict", "destination", "import_chain", "moving_to"]
