"""A tamper-evident audit log: every admin and lifecycle change appends one hash-chained record.

Each record holds seq, time, actor, action, subject, reason, details (JSON) and `prev_hash`; its `hash` is
SHA-256 over the canonical JSON of those fields. Changing a record breaks its hash, removing or reordering
records breaks the chain, and removing the newest records disagrees with the `audit_head` row written in
the same transaction. `verify()` finds the first record where any of that happens.

Limits: someone with write access to the whole database can rewrite every record and the head. Export
`head()` elsewhere (a log line, a ticket, a backup) and pass it to `verify(anchor=...)` to catch that too.

Appends are serialized: SQLite takes the write lock at BEGIN (`BEGIN IMMEDIATE`), PostgreSQL locks the
table; the primary key on `seq` makes a lost race an error that is retried, never a fork in the chain.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, delete, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from mailbastion.directory.database import as_engine, migrate, write_transaction
from mailbastion.directory.models import AuditEventRow, AuditHeadRow

GENESIS = "0" * 64
_events = cast(Table, AuditEventRow.__table__)
_head = cast(Table, AuditHeadRow.__table__)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    seq: int
    time: str  # ISO 8601 UTC with microseconds, exactly as hashed
    actor: str
    action: str
    subject: str
    reason: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    count: int  # records checked
    first_bad_seq: int | None = None
    problem: str = ""

    def __bool__(self) -> bool:
        return self.ok


def canonical_details(details: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(details or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record_hash(seq: int, time: str, actor: str, action: str, subject: str, reason: str, details: str,
                prev_hash: str) -> str:
    """SHA-256 over the canonical record: a JSON array, so no field can bleed into the next."""
    canon = json.dumps([seq, time, actor, action, subject, reason, details, prev_hash],
                       separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


class AuditLog:
    """The audit log in the directory database. `AuditLog(url)` creates the schema if needed."""

    def __init__(self, engine_or_url: Engine | str, *, migrate_schema: bool = True) -> None:
        self.engine = as_engine(engine_or_url)
        if migrate_schema:
            migrate(self.engine)

    def record(self, action: str, *, actor: str, subject: str, reason: str = "",
               details: Mapping[str, Any] | None = None) -> int:
        """Append one record in its own transaction and return its seq. Raises on a database error: an
        action that cannot be audited should not be reported as done."""
        for attempt in range(5):
            try:
                with write_transaction(self.engine) as conn:
                    return self.append(conn, action, actor=actor, subject=subject, reason=reason, details=details)
            except (IntegrityError, OperationalError):
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def append(self, conn: Connection, action: str, *, actor: str, subject: str, reason: str = "",
               details: Mapping[str, Any] | None = None) -> int:
        """Append within the caller's transaction, so that a change and its record commit together."""
        if not action or not actor:
            raise ValueError("an audit record needs an action and an actor")
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE")
        last = conn.execute(select(_events.c.seq, _events.c.hash).order_by(_events.c.seq.desc()).limit(1)).first()
        seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
        time = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        det = canonical_details(details)
        digest = record_hash(seq, time, actor, action, subject, reason, det, prev)
        conn.execute(insert(_events).values(seq=seq, time=time, actor=actor, action=action, subject=subject,
                                            reason=reason, details=det, prev_hash=prev, hash=digest))
        conn.execute(delete(_head))
        conn.execute(insert(_head).values(id=1, seq=seq, hash=digest))
        return seq

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest record; (0, GENESIS) when empty. Keep it somewhere else as an anchor."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_head.c.seq, _head.c.hash)).first()
        return (row.seq, row.hash) if row else (0, GENESIS)

    def events(self, limit: int | None = 100, *, subject: str | None = None,
               newest_first: bool = True) -> list[AuditEvent]:
        query = select(_events)
        if subject is not None:
            query = query.where(_events.c.subject == subject)
        query = query.order_by(_events.c.seq.desc() if newest_first else _events.c.seq)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [AuditEvent(r.seq, r.time, r.actor, r.action, r.subject, r.reason, _load(r.details),
                           r.prev_hash, r.hash) for r in rows]

    def verify(self, *, anchor: tuple[int, str] | None = None) -> VerifyResult:
        """Walk the whole chain. Reports the first record that was edited, removed or moved; a chain
        shorter than the head row (newest records removed); or a chain that disagrees with `anchor`."""
        count = 0
        prev, expected_seq = GENESIS, 1
        seen: dict[int, str] = {}
        with self.engine.connect() as conn:
            head = conn.execute(select(_head.c.seq, _head.c.hash)).first()
            for r in conn.execute(select(_events).order_by(_events.c.seq)):
                count += 1
                if r.seq != expected_seq:
                    return VerifyResult(False, count, expected_seq,
                                        f"record {expected_seq} is missing (next is {r.seq})")
                if r.prev_hash != prev:
                    return VerifyResult(False, count, r.seq,
                                        f"record {r.seq} does not follow record {r.seq - 1} (removed or reordered)")
                digest = record_hash(r.seq, r.time, r.actor, r.action, r.subject, r.reason, r.details, r.prev_hash)
                if digest != r.hash:
                    return VerifyResult(False, count, r.seq, f"record {r.seq} was altered (hash mismatch)")
                seen[r.seq] = r.hash
                prev, expected_seq = r.hash, r.seq + 1
        last_seq = expected_seq - 1
        if head is None and last_seq:
            return VerifyResult(False, count, last_seq, "the head record is missing")
        if head is not None and (head.seq, head.hash) != (last_seq, prev):
            return VerifyResult(False, count, min(head.seq, last_seq + 1),
                                f"chain ends at record {last_seq} but the head says {head.seq}: records removed")
        if anchor is not None:
            a_seq, a_hash = anchor
            if a_seq > last_seq or (a_seq > 0 and seen.get(a_seq) != a_hash):
                return VerifyResult(False, count, a_seq, f"record {a_seq} does not match the external anchor")
        return VerifyResult(True, count)


def _load(details: str) -> Mapping[str, Any]:
    try:
        value = json.loads(details)
    except ValueError:
        return {"_unparsable": details}
    return value if isinstance(value, dict) else {"_value": value}


__all__ = ["GENESIS", "AuditEvent", "AuditLog", "VerifyResult", "canonical_details", "record_hash"]
