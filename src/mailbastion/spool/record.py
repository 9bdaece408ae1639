"""The queue record: everything the queue manager knows about one message, kept in its queue file.

A record is a frozen value; the manager makes a new one for each change. Each recipient carries its
own status, its last reply as fields (code, enhanced status, text: never re-read from text) and retry
time (Stalwart), so one slow domain never holds back the others. The envelope's RFC 3461 parameters
(RET, ENVID; NOTIFY and ORCPT per recipient) and RFC 8689 REQUIRETLS are kept for the agents and the
DSN builder; the Junk decision is one field, `folder`, derived from the verdict.

    {"version": 2, "queue_id": "...", "arrival": 1764300000.0, "client": "203.0.113.5",
     "sender": "a@example.org", "folder": "INBOX", "dsn_ret": "HDRS", "dsn_envid": "x1", ...
     "recipients": [{"address": "b@example.net", "status": "deferred", "attempts": 2,
                     "reply": {"code": 451, "status": "4.3.0", "text": "try later"}, "remote": "mx.example.net",
                     "next_retry": 1764300600.0, "notify": ["FAILURE"], "orcpt": "rfc822;b@example.net", ...}],
     "verdict": {"action": "accept", "score": 1.5, "symbols": ["R_SPF_ALLOW=-0.2"], "forced_by": null}}

Version 1 records (before replies were fields) are still read: their reply texts are kept as text
with the basic code of their state and no enhanced status.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from enum import StrEnum
from typing import Any

from mailbastion.core.envelope import Envelope
from mailbastion.core.outcome import Handoff, describe
from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
from mailbastion.core.replies import Reply
from mailbastion.core.verdict import Folder, Verdict

RECORD_VERSION = 2
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    """What `dataclasses.asdict` gives for JSON (dataclasses as dicts, tuples and lists as lists, other values
    as they are), without its deep copies of every leaf: this runs once per message and per rewrite."""
    cls = type(value)
    if cls in (str, int, float, bool) or value is None:
        return value
    names = _FIELD_NAMES.get(cls)
    if names is None:
        if not is_dataclass(cls):
            if isinstance(value, (list, tuple)):
                return [_plain(v) for v in value]
            if isinstance(value, dict):
                return {k: _plain(v) for k, v in value.items()}
            return value
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return {name: _plain(getattr(value, name)) for name in names}


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
    reply: Reply | None = None  # the last reply: accepting once delivered, refusing otherwise
    remote: str = ""  # the host that gave `reply` ("" when we made it: refused connection, expiry)
    handoff: Handoff | None = None  # once delivered: into a mailbox, relayed, or transferred with DSN duty
    expired: bool = False  # failed because the queue lifetime ran out (DSN status 4.4.7)
    link_failures: int = 0  # consecutive refused/reset connections to our own MDA (fast retry)
    next_retry: float | None = None  # epoch seconds; set while deferred
    updated: float | None = None
    notified: bool = False  # the outcome the sender asked to hear about has been reported (or needs none)
    delay_notified: bool = False  # a "delayed" DSN has been queued
    notify: tuple[str, ...] = ()  # RFC 3461 NOTIFY of this RCPT; () = not given
    orcpt: str | None = None  # RFC 3461 ORCPT of this RCPT, decoded

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    @property
    def reply_line(self) -> str:
        """The last reply on one line ("" before any attempt)."""
        return describe(self.reply) if self.reply is not None else ""

    def wants(self, kind: str) -> bool:
        """Does the sender want a DSN of `kind` ("SUCCESS", "FAILURE", "DELAY")? RFC 3461 §4.1: without
        NOTIFY, FAILURE (and DELAY at our discretion) are reported; SUCCESS only when asked for."""
        if not self.notify:
            return kind in ("FAILURE", "DELAY")
        return kind in self.notify


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
    folder: Folder = Folder.INBOX
    hops: int = 0
    helo: str = ""
    smtputf8: bool = False
    body_8bitmime: bool = False
    dsn_ret: str | None = None  # RFC 3461 RET: "FULL" | "HDRS"
    dsn_envid: str | None = None  # RFC 3461 ENVID, decoded
    requiretls: bool = False  # RFC 8689
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
        hops: int = 0,
    ) -> QueueRecord:
        if not envelope.recipients:
            raise ValueError("a message without recipients cannot be queued")
        seen: dict[str, RecipientStatus] = {}
        for i, r in enumerate(envelope.recipients):  # one status per distinct address, in envelope order
            dsn = envelope.dsn_of(i)
            seen.setdefault(str(r), RecipientStatus(str(r), notify=dsn.notify, orcpt=dsn.orcpt))
        return QueueRecord(
            queue_id=queue_id,
            arrival=arrival,
            client=client,
            sender=envelope.sender_text,
            recipients=tuple(seen.values()),
            size=size,
            folder=verdict.folder if verdict is not None else Folder.INBOX,
            hops=hops,
            helo=envelope.helo,
            smtputf8=envelope.smtputf8,
            body_8bitmime=envelope.body_8bitmime,
            dsn_ret=envelope.dsn_ret,
            dsn_envid=envelope.dsn_envid,
            requiretls=envelope.requiretls,
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

    def request(self, addresses: Iterable[str], message: bytes) -> DeliveryRequest:
        """The delivery request for these recipients of the record (the agents' view of it)."""
        keep = set(addresses)
        return DeliveryRequest(
            queue_id=self.queue_id, sender=self.sender, message=message, folder=self.folder,
            recipients=tuple(DeliveryRecipient(r.address, r.notify, r.orcpt) for r in self.recipients
                             if r.address in keep),
            smtputf8=self.smtputf8, body_8bitmime=self.body_8bitmime, dsn_ret=self.dsn_ret,
            dsn_envid=self.dsn_envid, requiretls=self.requiretls)

    # -- changes -------------------------------------------------------------------------------
    def with_recipients(self, updates: Mapping[str, RecipientStatus]) -> QueueRecord:
        return replace(self, recipients=tuple(updates.get(r.address, r) for r in self.recipients))

    def with_all_pending_due(self) -> QueueRecord:
        """Every deferred recipient due now (`queue retry`)."""
        return replace(self, recipients=tuple(
            r if r.is_final else replace(r, next_retry=None) for r in self.recipients))

    # -- JSON ----------------------------------------------------------------------------------
    def to_json(self) -> bytes:
        data: dict[str, Any] = {"version": RECORD_VERSION, **_plain(self)}
        data["mail_params"] = [list(p) for p in self.mail_params]
        return json.dumps(data, separators=(",", ":")).encode("utf-8")

    @staticmethod
    def from_json(raw: bytes) -> QueueRecord:
        """Parse a record. Raises RecordError for anything that is not a well-formed record."""
        try:
            data = json.loads(raw)
            version = data.pop("version")
            if version not in (1, RECORD_VERSION):
                raise RecordError(f"unsupported record version {version!r}")
            rcpts = tuple(_recipient_v1(r) if version == 1 else _recipient(r) for r in data.pop("recipients"))
            if version == 1:
                data["folder"] = Folder.JUNK if data.pop("junk", False) else Folder.INBOX
            v = data.pop("verdict")
            verdict = VerdictSummary(**{**v, "symbols": tuple(v["symbols"])}) if v is not None else None
            params = tuple((str(k), str(val)) for k, val in data.pop("mail_params", []))
            record = QueueRecord(recipients=rcpts, verdict=verdict, mail_params=params,
                                 folder=Folder(data.pop("folder")), **data)
        except RecordError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RecordError(f"malformed queue record: {exc}") from None
        if not record.recipients:
            raise RecordError("queue record without recipients")
        return record


def _recipient(r: dict[str, Any]) -> RecipientStatus:
    reply = r.pop("reply")
    handoff = r.pop("handoff")
    return RecipientStatus(**{
        **r, "status": RecipientState(r["status"]), "notify": tuple(r.get("notify", ())),
        "reply": Reply(int(reply["code"]), str(reply["status"]), str(reply["text"])) if reply else None,
        "handoff": Handoff(handoff) if handoff else None})


_V1_CODES = {RecipientState.DELIVERED: 250, RecipientState.DEFERRED: 451, RecipientState.FAILED: 550}


def _recipient_v1(r: dict[str, Any]) -> RecipientStatus:
    """A version 1 recipient: its reply was one string; keep it as text, with the code of its state."""
    status = RecipientState(r["status"])
    text = r.get("response") or r.get("last_error") or ""
    return RecipientStatus(
        address=r["address"], status=status, attempts=int(r.get("attempts", 0)),
        reply=Reply(_V1_CODES[status], "", text) if text and status in _V1_CODES else None,
        handoff=Handoff.DELIVERED if status is RecipientState.DELIVERED else None,
        next_retry=r.get("next_retry"), updated=r.get("updated"), notified=bool(r.get("notified", False)))
