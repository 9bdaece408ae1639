"""The queue record: everything the queue manager knows about one message, as JSON beside it.

A record is a frozen value; the manager makes a new one for each change and writes it durably
(write tmp, fsync, rename over, fsync the directory). Each recipient carries its own status and
retry time (Stalwart), so one slow domain never holds back the others.

    {"version": 1, "queue_id": "...", "arrival": 1764300000.0, "client": "203.0.113.5",
     "sender": "a@example.org", "recipients": [{"address": "b@example.net", "status": "deferred",
     "attempts": 2, "last_error": "451 4.3.0 ...", "next_retry": 1764300600.0, ...}], "junk": false,
     "hops": 3, "verdict": {"action": "accept", "score": 1.5, "symbols": ["R_SPF_ALLOW=-0.2"]}, ...}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from mailbastion.core.envelope import Envelope
from mailbastion.core.verdict import Verdict

RECORD_VERSION = 1


class RecordError(ValueError):
    """A record that cannot be read: the entry goes to corrupt/ for a human."""


class RecipientState(StrEnum):
    PENDING = "pending"  # never tried
    DELIVERED = "delivered"  # final
    DEFERRED = "deferred"  # tried, failed temporarily; see next_retry
    FAILED = "failed"  # final: permanent failure or expired

    @property
    def is_final(self) -> bool:
        return self in (RecipientState.DELIVERED, RecipientState.FAILED)


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    address: str
    status: RecipientState = RecipientState.PENDING
    attempts: int = 0
    last_error: str = ""  # the last failure reply ("452 4.2.2 Mailbox full") or local reason
    next_retry: float | None = None  # epoch seconds; set while deferred
    response: str = ""  # the accepting reply once delivered
    updated: float | None = None
    notified: bool = False  # a DSN has been queued for this failure

    @property
    def is_final(self) -> bool:
        return self.status.is_final


@dataclass(frozen=True, slots=True)
class VerdictSummary:
    """What the record keeps of a Verdict: enough for `queue show` and a DSN, nothing executable."""

    action: str
    score: float
    symbols: tuple[str, ...] = ()
    forced_by: str | None = None

    @staticmethod
    def of(verdict: Verdict) -> VerdictSummary:
        return VerdictSummary(
            action=verdict.action.name.lower(),
            score=float(verdict.score),
            symbols=tuple(str(s) for s in verdict.symbols),
            forced_by=verdict.forced.by if verdict.forced else None,
        )


@dataclass(frozen=True, slots=True)
class QueueRecord:
    queue_id: str
    arrival: float  # epoch seconds when committed
    client: str  # the connecting client (address, or "local" / "dsn")
    sender: str  # "" is the null reverse-path <>
    recipients: tuple[RecipientStatus, ...]
    size: int = 0
    junk: bool = False
    hops: int = 0
    helo: str = ""
    smtputf8: bool = False
    body_8bitmime: bool = False
    verdict: VerdictSummary | None = None
    mail_params: tuple[tuple[str, str], ...] = field(default=())

    @staticmethod
    def new(
        queue_id: str,
        envelope: Envelope,
        *,
        arrival: float,
        client: str,
        size: int,
        verdict: Verdict | None = None,
        junk: bool = False,
        hops: int = 0,
    ) -> QueueRecord:
        if not envelope.recipients:
            raise ValueError("a message without recipients cannot be queued")
        seen: dict[str, None] = {}
        for r in envelope.recipients:  # one status per distinct address, in envelope order
            seen.setdefault(str(r))
        return QueueRecord(
            queue_id=queue_id,
            arrival=arrival,
            client=client,
            sender=envelope.sender_text,
            recipients=tuple(RecipientStatus(a) for a in seen),
            size=size,
            junk=junk,
            hops=hops,
            helo=envelope.helo,
            smtputf8=envelope.smtputf8,
            body_8bitmime=envelope.body_8bitmime,
            verdict=VerdictSummary.of(verdict) if verdict is not None else None,
            mail_params=envelope.mail_params,
        )

    # -- views ---------------------------------------------------------------------------------
    @property
    def is_null_sender(self) -> bool:
        return self.sender == ""

    @property
    def is_done(self) -> bool:
        """Every recipient is final: the entry may be deleted."""
        return all(r.is_final for r in self.recipients)

    @property
    def pending(self) -> tuple[RecipientStatus, ...]:
        """Recipients still to be delivered (pending or deferred)."""
        return tuple(r for r in self.recipients if not r.is_final)

    @property
    def next_retry(self) -> float | None:
        """The earliest retry time over deferred recipients; None when something is due now."""
        times = [r.next_retry for r in self.pending]
        if not times or any(t is None for t in times):
            return None
        return min(t for t in times if t is not None)

    def recipient(self, address: str) -> RecipientStatus:
        for r in self.recipients:
            if r.address == address:
                return r
        raise KeyError(address)

    def restricted_to(self, addresses: Iterable[str]) -> QueueRecord:
        """A copy listing only these recipients (a router hands each agent its share)."""
        keep = set(addresses)
        return replace(self, recipients=tuple(r for r in self.recipients if r.address in keep))

    # -- changes -------------------------------------------------------------------------------
    def with_recipients(self, updates: Mapping[str, RecipientStatus]) -> QueueRecord:
        return replace(self, recipients=tuple(updates.get(r.address, r) for r in self.recipients))

    def with_all_pending_due(self) -> QueueRecord:
        """Every deferred recipient due now (`queue retry`)."""
        return replace(self, recipients=tuple(
            r if r.is_final else replace(r, next_retry=None) for r in self.recipients))

    # -- JSON ----------------------------------------------------------------------------------
    def to_json(self) -> bytes:
        data: dict[str, Any] = {"version": RECORD_VERSION, **asdict(self)}
        data["recipients"] = [{**asdict(r), "status": r.status.value} for r in self.recipients]
        data["mail_params"] = [list(p) for p in self.mail_params]
        return json.dumps(data, indent=1, sort_keys=False).encode("utf-8")

    @staticmethod
    def from_json(raw: bytes) -> QueueRecord:
        """Parse a record. Raises RecordError for anything that is not a well-formed record."""
        try:
            data = json.loads(raw)
            if data.pop("version") != RECORD_VERSION:
                raise RecordError("unsupported record version")
            rcpts = tuple(
                RecipientStatus(**{**r, "status": RecipientState(r["status"])}) for r in data.pop("recipients"))
            v = data.pop("verdict")
            verdict = VerdictSummary(**{**v, "symbols": tuple(v["symbols"])}) if v is not None else None
            params = tuple((str(k), str(val)) for k, val in data.pop("mail_params", []))
            record = QueueRecord(recipients=rcpts, verdict=verdict, mail_params=params, **data)
        except RecordError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RecordError(f"malformed queue record: {exc}") from None
        if not record.recipients:
            raise RecordError("queue record without recipients")
        return record
