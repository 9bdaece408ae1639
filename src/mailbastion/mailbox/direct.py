"""Direct delivery: the all-in-one process's queue manager hands local mail to the MDA in the same process.

A split deployment delivers over the LMTP link (mutual TLS, `delivery/lmtp_client.py`), because the MDA
is on another host. In the all-in-one process (`server.role = "all"`, `[lmtp] direct = true`, the
default) the MDA's handler is in the same process as the queue manager, and the link would only wrap
each delivery in a TLS session on loopback: an LMTP exchange encoded and parsed on both sides, a copy
of the message through the kernel, and on a busy machine two processes woken per message
(docs/architecture.md change 61). `DirectAgent` is the link's transaction without the link:

- the same decisions: `LmtpHandler.deliver_here` is `MAIL FROM:<sender> XQUEUEID= XFOLDER= [XBOUNCEOF=]`,
  a RCPT per recipient and `BDAT LAST` from a verified gateway (the same directory look-ups, journal,
  folders, copies and replies);
- the same bytes: the MDA receives `crlf_message(request.message)`, as the LMTP client sends it, and
  parses addresses as the LMTP server would (a sender or recipient it could not parse gets the reply
  the server would give);
- the same outcomes: each reply becomes a `DeliveryOutcome` as the LMTP client makes it, named after
  the MDA (`remote`), and a failure of the handler itself defers every recipient.

Exactly once holds as over the link: the journal is the MDA's, keyed by queue id and mailbox, and the
queue manager and the MDA now die together, so a copy written before a crash is found on the retry.
"""

from __future__ import annotations

import logging

from mailbastion.core import replies
from mailbastion.core.address import Address, AddressError, parse_path
from mailbastion.core.message import SpooledMessage
from mailbastion.core.outcome import Deferred, DeliveryOutcome, outcome_of
from mailbastion.core.ports import DeliveryRequest
from mailbastion.core.replies import Reply
from mailbastion.mailbox.lmtp_handler import LmtpHandler
from mailbastion.smtp.data import crlf_message

__all__ = ["DirectAgent"]

log = logging.getLogger("mailbastion.mda")


class DirectAgent:
    """A `DeliveryAgent` (core/ports.py) that writes through `handler` in this process. Never raises."""

    def __init__(self, handler: LmtpHandler, *, remote: str = "mda") -> None:
        self.handler = handler
        self.remote = remote  # how outcomes name the next hop (the LMTP client names the MDA's certificate)

    async def deliver(self, request: DeliveryRequest) -> dict[str, DeliveryOutcome]:
        try:
            sender = parse_path(request.sender, allow_utf8=request.smtputf8, allow_null=True)
        except AddressError as exc:
            return self._all(request, replies.BAD_SENDER_SYNTAX.with_text(f"Bad sender address syntax: {exc}"))
        out: dict[str, DeliveryOutcome] = {}
        parsed: list[tuple[str, Address]] = []
        for address in request.addresses:
            try:
                rcpt = parse_path(address, allow_utf8=request.smtputf8, allow_postmaster=True)
                if rcpt is None:  # only a path that allows null can be null; said for the type checker
                    raise AddressError("null path not allowed here")
            except AddressError as exc:
                out[address] = outcome_of(replies.BAD_RECIPIENT_SYNTAX.with_text(
                    f"Bad recipient address syntax: {exc}"), remote=self.remote)
                continue
            parsed.append((address, rcpt))
        if not parsed:
            return out
        try:
            answers = await self.handler.deliver_here(
                sender=sender, recipients=[rcpt for _, rcpt in parsed],
                message=SpooledMessage(crlf_message(request.message)), folder=request.folder,
                queue_id=request.queue_id, bounce_of=request.bounce_of)
        except Exception:  # noqa: BLE001 - a fault of ours must defer the mail, never lose it
            log.exception("id=%s direct delivery failed", request.queue_id)
            failure = Deferred(replies.TEMP_FAILURE, self.remote)
            return {**out, **{address: failure for address, _ in parsed}}
        for (address, _), reply in zip(parsed, answers, strict=True):
            out[address] = outcome_of(reply, remote=self.remote)
        return out

    def _all(self, request: DeliveryRequest, reply: Reply) -> dict[str, DeliveryOutcome]:
        outcome = outcome_of(reply, remote=self.remote)
        return {address: outcome for address in request.addresses}
