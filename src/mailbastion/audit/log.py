"""A tamper-evident audit log: every admin and lifecycle change appends one hash-chained record.

    log = AuditLog(settings.audit_url)                      # creates and migrates the schema if needed
    log.record("quarantine.release", actor="admin", subject="quarantine:ID", reason="false positive")
    log.verify()                                            # VerifyResult(ok=True, count=...)

The chain (`chain.py`) is stored in two tables of the audit database: the records and a head row written
in the same transaction as each record.

Limits: someone with write access to the whole audit database can rewrite every record and the head.
Export `head()` elsewhere (a log line, a ticket, a backup) and pass it to `verify(anchor=...)` to catch that.

Appends are serialized: SQLite takes the write lock at BEGIN (`BEGIN IMMEDIATE`), PostgreSQL locks the
table; the primary key on `seq` makes a lost race an error that is retried, never a fork in the chain.

A change made in another database (the directory's) is audited with `record_change()` before that change
commits, and with `not_committed()` when its commit then fails: see `record_change` for the order and what
it promises.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, delete, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from mailbastion.audit import database
from mailbastion.audit.chain import (
    GENESIS,
    AuditEvent,
    VerifyResult,
    canonical_details,
    load_details,
    record_hash,
    walk,
)
from mailbastion.audit.models import AuditEventRow, AuditHeadRow

log = logging.getLogger("mailbastion.audit")

EVENTS = cast(Table, AuditEventRow.__table__)
HEAD = cast(Table, AuditHeadRow.__table__)
NOT_COMMITTED = "change.not_committed"  # the compensating record: "record N names a change that did not happen"


@dataclass(frozen=True, slots=True)
class AuditReceipt:
    """What `record_change` wrote. `apart` is True when the record is already committed in the audit
    database, ahead of the change (two databases); False when it commits with the change (one database)."""

    seq: int
    action: str
    actor: str
    subject: str
    apart: bool


class AuditLog:
    """The audit log in its own database (an `[audit] url`, or an engine). `AuditLog(url)` creates and
    migrates the schema when needed; pass `migrate_schema=False` when the caller has done so."""

    def __init__(self, engine_or_url: Engine | str, *, migrate_schema: bool = True) -> None:
        self.engine = database.as_engine(engine_or_url)
        if migrate_schema:
            self.migrate()

    def migrate(self) -> None:
        database.migrate(self.engine)

    def shares_database(self, engine: Engine) -> bool:
        """Does `engine` reach this log's database (so that one transaction can hold a change and its record)?"""
        return database.same_database(self.engine, engine)

    # -- writing -------------------------------------------------------------------------------------

    def record(self, action: str, *, actor: str, subject: str, reason: str = "",
               details: Mapping[str, Any] | None = None) -> int:
        """Append one record in its own transaction and return its seq. Raises on a database error: an
        action that cannot be audited should not be reported as done."""
        for attempt in range(5):
            try:
                with database.write_transaction(self.engine) as conn:
                    return self.append(conn, action, actor=actor, subject=subject, reason=reason, details=details)
            except (IntegrityError, OperationalError):
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def append(self, conn: Connection, action: str, *, actor: str, subject: str, reason: str = "",
               details: Mapping[str, Any] | None = None) -> int:
        """Append within the caller's transaction on this log's database, so that a change and its record
        commit together. `conn` must reach the audit database (see `shares_database`)."""
        if not action or not actor:
            raise ValueError("an audit record needs an action and an actor")
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE")
        last = conn.execute(select(EVENTS.c.seq, EVENTS.c.hash).order_by(EVENTS.c.seq.desc()).limit(1)).first()
        seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
        time = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        det = canonical_details(details)
        digest = record_hash(seq, time, actor, action, subject, reason, det, prev)
        conn.execute(insert(EVENTS).values(seq=seq, time=time, actor=actor, action=action, subject=subject,
                                           reason=reason, details=det, prev_hash=prev, hash=digest))
        conn.execute(delete(HEAD))
        conn.execute(insert(HEAD).values(id=1, seq=seq, hash=digest))
        return seq

    def record_change(self, conn: Connection, action: str, *, actor: str, subject: str, reason: str = "",
                      details: Mapping[str, Any] | None = None) -> AuditReceipt:
        """Audit a change that the caller has made (and flushed) in the open transaction `conn`, and is
        about to commit. Call it last, just before the commit, so that a change refused by its own checks
        leaves no record.

        - `conn` reaches the audit database: the record is appended in that transaction and commits, or
          rolls back, with the change. Exactly one of both, never one without the other.
        - Two databases: the record is committed now, in the audit database, before the change commits. If
          this raises, the caller rolls its change back (nothing happened, nothing recorded). If the
          caller's commit then fails, it must call `not_committed(receipt, error)`, which appends a
          compensating record naming this one.

        So a change is never committed unaudited. The one gap two databases leave: a process killed between
        the two commits leaves a record of a change that did not happen, without its compensating record.
        """
        if self.shares_database(conn.engine):
            seq = self.append(conn, action, actor=actor, subject=subject, reason=reason, details=details)
            return AuditReceipt(seq, action, actor, subject, apart=False)
        seq = self.record(action, actor=actor, subject=subject, reason=reason, details=details)
        return AuditReceipt(seq, action, actor, subject, apart=True)

    def not_committed(self, receipt: AuditReceipt, error: BaseException) -> int | None:
        """The change audited by `receipt` failed to commit: append the compensating record (two databases)
        and return its seq; None when the record rolled back with the change (one database). Never raises
        over the caller's error: if the compensating record cannot be written either, says so in the log."""
        if not receipt.apart:
            return None
        try:
            return self.record(NOT_COMMITTED, actor=receipt.actor, subject=receipt.subject,
                               reason=f"{type(error).__name__}: {error}".splitlines()[0][:500],
                               details={"of_seq": receipt.seq, "action": receipt.action})
        except Exception as exc:  # noqa: BLE001 - the caller re-raises the original error
            log.error("audit: record %d (%s %s) names a change that was not committed, and the compensating "
                      "record failed too: %s", receipt.seq, receipt.action, receipt.subject, exc)
            return None

    # -- reading ------------------------------------------------------------------------------------

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest record; (0, GENESIS) when empty. Keep it somewhere else as an anchor."""
        with self.engine.connect() as conn:
            row = conn.execute(select(HEAD.c.seq, HEAD.c.hash)).first()
        return (row.seq, row.hash) if row else (0, GENESIS)

    def events(self, limit: int | None = 100, *, subject: str | None = None,
               newest_first: bool = True) -> list[AuditEvent]:
        query = select(EVENTS)
        if subject is not None:
            query = query.where(EVENTS.c.subject == subject)
        query = query.order_by(EVENTS.c.seq.desc() if newest_first else EVENTS.c.seq)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [AuditEvent(r.seq, r.time, r.actor, r.action, r.subject, r.reason, load_details(r.details),
                           r.prev_hash, r.hash) for r in rows]

    def verify(self, *, anchor: tuple[int, str] | None = None) -> VerifyResult:
        """Walk the whole chain in one read transaction (see `chain.walk` for what is found)."""
        with self.engine.connect() as conn, conn.begin():
            head = conn.execute(select(HEAD.c.seq, HEAD.c.hash)).first()
            rows = conn.execute(select(EVENTS).order_by(EVENTS.c.seq))
            return walk(rows, None if head is None else (head.seq, head.hash), anchor=anchor)


__all__ = ["NOT_COMMITTED", "AuditLog", "AuditReceipt"]
