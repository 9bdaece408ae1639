"""Inbound bounces matched to the messages we sent: a DSN that comes back to one of our users is
recognised and logged against our queue entry.

    watch = BounceWatch(lmtp_agent, sent_log)      # the local agent, as the router's `local`
    ... every null-sender message delivered to our users passes through it ...
    log: outbound.bounce queue_id=4F2A... dsn_id=9C1B... recipient=bob@example.net action=failed
         status=5.1.1 remote_mta=mx.example.net matched_by=message-id diagnostic="550 5.1.1 unknown user"

How a bounce names our message (RFC 3464): `Original-Envelope-Id` in its per-message fields (the ENVID the
sender gave, which we passed on), the returned headers (text/rfc822-headers, message/rfc822 or their
RFC 6533 global forms) with our Message-ID, and our own `X-Mailbastion-Queue-ID` when the DSN is ours.
Non-standard bounces (plain text quoting the original) are searched for a Message-ID field too. The
delivered messages' IDs are in `SentLog`; a bounce that matches none is delivered like any mail, silently.
Parsing is bounded (MAX_BOUNCE_BYTES) and off the event loop; it never changes the delivery.

A matched bounce that reports a permanent failure (Action: failed) is also told to `on_bounce(sender,
detail)`, once per message of ours it names, with the envelope sender we sent that message from: a burst of
them is a sign of a hijacked account (submission/limits.py `SendingMeter.bounce`, wired by apps/). Only
matched bounces count: a forged DSN about a message we never sent (backscatter) cannot suspend anyone.
The same senders ride the delivery inward (`DeliveryRequest.bounce_of`, XBOUNCEOF on the LMTP link), so on
a split deployment the internal host, where submission and its meter run, counts them as well.
"""

from __future__ import annotations

import asyncio
import email
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from email.message import Message

from mailbastion.core.header_block import HeaderBlock
from mailbastion.core.mime_parts import parse_message
from mailbastion.core.outcome import Delivered, DeliveryOutcome
from mailbastion.core.ports import DeliveryAgent, DeliveryRequest
from mailbastion.delivery.sent_log import SentEntry, SentLog

log = logging.getLogger("mailbastion.delivery.bounce")

__all__ = ["BounceReport", "BounceWatch", "BouncedRecipient", "match_bounce", "parse_bounce", "refused_senders"]

MAX_BOUNCE_BYTES = 2 * 1024 * 1024
_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
_HEADER_TYPES = ("text/rfc822-headers", "message/global-headers")
_MESSAGE_TYPES = ("message/rfc822", "message/global")
_MESSAGE_ID = re.compile(rb"(?im)^message-id:[ \t]*(<[^>\s]{1,400}>)")


@dataclass(frozen=True, slots=True)
class BouncedRecipient:
    recipient: str
    action: str
    status: str
    remote_mta: str = ""
    diagnostic: str = ""


@dataclass(frozen=True, slots=True)
class BounceReport:
    envid: str | None
    message_ids: tuple[str, ...]  # of the returned (our) message
    queue_ids: tuple[str, ...]  # X-Mailbastion-Queue-ID of our own DSNs
    recipients: tuple[BouncedRecipient, ...]


def _field(value: object) -> str:
    """compat32 gives an `email.header.Header`, not a str, for a value with 8-bit bytes (a localised
    Diagnostic-Code): str() it."""
    return " ".join(str(value).split()) if value is not None else ""


def _after_type(value: object) -> str:
    """`rfc822; bob@example.net` -> `bob@example.net` (RFC 3464 §2.3.2 address-type; address)."""
    text = _field(value)
    return text.split(";", 1)[1].strip() if ";" in text else text


def _blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    # Some parsers leave the body as text: parse its blank-line separated blocks ourselves.
    text = payload if isinstance(payload, str) else ""
    return [email.message_from_string(b.strip() + "\n") for b in re.split(r"\r?\n\r?\n", text) if b.strip()]


def parse_bounce(raw: bytes) -> BounceReport | None:
    """The facts a bounce gives about the message it returns, or None when it names no message at all."""
    if len(raw) > MAX_BOUNCE_BYTES:
        raw = raw[:MAX_BOUNCE_BYTES]
    msg = parse_message(raw)  # a bounce nested past the recursion limit is read as one opaque part
    envid: str | None = None
    recipients: list[BouncedRecipient] = []
    ids: list[str] = []
    queue_ids: list[str] = []
    own_id = _field(msg.get("Message-ID"))
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in _STATUS_TYPES:
            blocks = _blocks(part)
            if blocks:
                head = blocks[0]
                envid = _field(head.get("Original-Envelope-Id")) or envid
                if head.get("X-Mailbastion-Queue-ID"):
                    queue_ids.append(_field(head.get("X-Mailbastion-Queue-ID")))
            for block in blocks[1:]:
                final = _after_type(block.get("Final-Recipient") or block.get("Original-Recipient"))
                if final:
                    recipients.append(BouncedRecipient(final, _field(block.get("Action")).lower(),
                                                       _field(block.get("Status")),
                                                       _after_type(block.get("Remote-MTA")),
                                                       _after_type(block.get("Diagnostic-Code"))[:300]))
        elif ctype in _HEADER_TYPES:
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                ids += HeaderBlock.parse(payload).values("message-id")
        elif ctype in _MESSAGE_TYPES:
            for inner in _blocks(part):
                if inner.get("Message-ID"):
                    ids.append(str(inner.get("Message-ID")))
    if not ids:  # a bounce in plain text that quotes the original header section
        ids = [m.decode("ascii", "replace") for m in _MESSAGE_ID.findall(raw)]
    found = tuple(dict.fromkeys(i for i in (_field(x) for x in ids) if i and i != own_id))
    if not (found or envid or queue_ids):
        return None
    return BounceReport(envid, found, tuple(queue_ids), tuple(recipients))


def match_bounce(raw: bytes, sent: SentLog) -> tuple[BounceReport, list[SentEntry], str] | None:
    """(what the bounce says, our delivered messages it is about, matched by what) or None."""
    report = parse_bounce(raw)
    if report is None:
        return None
    if report.envid:
        entries = sent.find(envid=report.envid)
        if entries:
            return report, entries, "envid"
    entries = sent.find(message_ids=report.message_ids)
    if entries:
        return report, entries, "message-id"
    return None


def refused_senders(report: BounceReport, entries: list[SentEntry], how: str) -> list[tuple[str, str]]:
    """(our envelope sender, a line) once per message of ours the bounce reports as refused (Action: failed,
    or a bounce that names no recipient at all). Delayed, relayed or delivered reports refuse nothing."""
    failed = {r.recipient.lower() for r in report.recipients if r.action == "failed"}
    if report.recipients and not failed:
        return []
    out: list[tuple[str, str]] = []
    for queue_id in dict.fromkeys(e.queue_id for e in entries):
        ours = [e for e in entries if e.queue_id == queue_id]
        refused = [e.recipient for e in ours if not failed or e.recipient.lower() in failed]
        if refused and ours[0].sender:
            out.append((ours[0].sender, f"bounce of {queue_id} for {','.join(refused)} (matched by {how})"))
    return out


class BounceWatch:
    """A DeliveryAgent around the local one: null-sender mail delivered to our users is looked at, and a
    bounce of a message we sent is logged as `outbound.bounce` against our queue id. Never changes an
    outcome; a parsing error is logged and ignored.

    The match is made before the delivery, so the request handed inward carries the senders it names as
    refused (`DeliveryRequest.bounce_of`, the LMTP link's XBOUNCEOF): on a split the MDA on the internal
    host tells its submission role, which holds the sending meter. `on_bounce` is told here, in this
    process, once the copy is delivered (the all-in-one's submission role listens there)."""

    def __init__(self, inner: DeliveryAgent, sent: SentLog,
                 on_bounce: Callable[[str, str], None] | None = None) -> None:
        self.inner = inner
        self.sent = sent
        self.on_bounce = on_bounce

    async def deliver(self, request: DeliveryRequest) -> Mapping[str, DeliveryOutcome]:
        found = None
        if request.sender == "":
            try:
                found = await asyncio.to_thread(match_bounce, request.message, self.sent)
            except Exception:  # recognising a bounce must never cost its delivery
                log.exception("id=%s bounce matching failed", request.queue_id)
        refused = refused_senders(*found) if found is not None else []
        if refused:
            request = replace(request, bounce_of=tuple(sender for sender, _ in refused))
        out = await self.inner.deliver(request)
        if found is not None and any(isinstance(o, Delivered) for o in out.values()):
            self._log(request, *found)
            self._tell(refused)
        return out

    def _tell(self, refused: list[tuple[str, str]]) -> None:
        if self.on_bounce is None:
            return
        for sender, detail in refused:
            try:
                self.on_bounce(sender, detail)
            except Exception:  # a listener's failure must not cost the delivery
                log.exception("bounce listener failed for %s", sender)

    @staticmethod
    def _log(request: DeliveryRequest, report: BounceReport, entries: list[SentEntry], how: str) -> None:
        by_rcpt = {r.recipient.lower(): r for r in report.recipients}
        for queue_id in dict.fromkeys(e.queue_id for e in entries):
            ours = [e for e in entries if e.queue_id == queue_id]
            named = [by_rcpt[e.recipient.lower()] for e in ours if e.recipient.lower() in by_rcpt]
            for r in named or [BouncedRecipient(ours[0].recipient, "unknown", "")]:
                log.warning('outbound.bounce queue_id=%s dsn_id=%s to=%s recipient=%s action=%s status=%s '
                            'remote_mta=%s matched_by=%s diagnostic="%s"', queue_id, request.queue_id,
                            ",".join(request.addresses), r.recipient, r.action or "-", r.status or "-",
                            r.remote_mta or "-", how, r.diagnostic.replace('"', "'"))
