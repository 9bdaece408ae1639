"""The hash chain itself, apart from any database: records, their hash, and the walk that verifies them.

Each record holds seq, time, actor, action, subject, reason, details (canonical JSON) and `prev_hash`; its
`hash` is SHA-256 over the canonical JSON array of those fields. Changing a record breaks its hash,
removing or reordering records breaks the chain, and removing the newest records disagrees with the head
(seq, hash) kept beside the chain. `walk()` finds the first place where any of that happens.

Pure functions: `log.py` stores the records, this module only computes and checks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

GENESIS = "0" * 64  # the prev_hash of record 1


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


class StoredRecord(Protocol):
    """A record as stored: `details` is the canonical JSON text that was hashed."""

    @property
    def seq(self) -> int: ...
    @property
    def time(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def details(self) -> str: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...


def canonical_details(details: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(details or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record_hash(seq: int, time: str, actor: str, action: str, subject: str, reason: str, details: str,
                prev_hash: str) -> str:
    """SHA-256 over the canonical record: a JSON array, so no field can bleed into the next."""
    canon = json.dumps([seq, time, actor, action, subject, reason, details, prev_hash],
                       separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def walk(records: Iterable[StoredRecord], head: tuple[int, str] | None, *,
         anchor: tuple[int, str] | None = None) -> VerifyResult:
    """Check `records` (in seq order) against each other, against `head` (None: no head row) and against an
    external `anchor`. Reports the first record that was edited, removed or moved; a chain shorter than the
    head (newest records removed); or a chain that disagrees with the anchor."""
    count = 0
    prev, expected_seq = GENESIS, 1
    seen: dict[int, str] = {}
    for r in records:
        count += 1
        if r.seq != expected_seq:
            return VerifyResult(False, count, expected_seq, f"record {expected_seq} is missing (next is {r.seq})")
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
    if head is not None and head != (last_seq, prev):
        return VerifyResult(False, count, min(head[0], last_seq + 1),
                            f"chain ends at record {last_seq} but the head says {head[0]}: records removed")
    if anchor is not None:
        a_seq, a_hash = anchor
        if a_seq > last_seq or (a_seq > 0 and seen.get(a_seq) != a_hash):
            return VerifyResult(False, count, a_seq, f"record {a_seq} does not match the external anchor")
    return VerifyResult(True, count)


def load_details(details: str) -> Mapping[str, Any]:
    """The stored details text as a mapping; never raises (a tampered value shows as `_unparsable`)."""
    try:
        value = json.loads(details)
    except ValueError:
        return {"_unparsable": details}
    return value if isinstance(value, dict) else {"_value": value}


__all__ = ["GENESIS", "AuditEvent", "StoredRecord", "VerifyResult", "canonical_details", "load_details",
           "record_hash", "walk"]
