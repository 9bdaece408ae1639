"""Where a submitted message goes: to the gateway over the relay hop, or into our outbox to go later.

    outbox = Outbox(agent, spool, hostname="mail.example.org")
    result = await outbox.send(envelope, signed_bytes, client="192.0.2.7")
    result.reply        # what the user's client is told
    result.refused      # recipients the gateway refused for good (5xx) at hand-over

A 250 is a promise that the message is on disk: either the gateway's (its relay listener answers 250 only
after its spool fsynced the message) or ours (the outbox, a spool of its own below `submission.spool_dir`,
fsynced before we answer). In that order:

1. The hand-over: the message is relayed at once through `agent` (delivery/relay_client.py: mutual TLS to
   the gateway's relay listener), bounded by `timeout`. The gateway's outbound checks (anti-virus, spam)
   run now, so a refusal reaches the user as the gateway's own clear reply:
     every recipient taken (250)          250 with the gateway's queue id
     every recipient refused for good     that 5xx (e.g. "554 5.7.1 Not sent: malware detected (...)")
2. Otherwise (the gateway unreachable or slow, a 4xx, or some recipients taken and others not), the
   recipients not yet taken are committed to the outbox and the user gets "250 queued as <our id>". The
   outbox's queue manager (spool/manager.py, the same as the gateway's) relays them later with the retry
   schedule; one refused for good then gets a DSN (delivery/dsn.py) through the same path.
3. The outbox cannot take it either (disk full): 452 4.3.1, the client retries. Nothing is lost, at worst
   duplicated (a hand-over that timed out after the gateway had committed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

from mailbastion.core.envelope import Envelope
from mailbastion.core.errors import MailError
from mailbastion.core.outcome import Deferred, Delivered, DeliveryOutcome, Failed
from mailbastion.core.ports import DeliveryAgent, DeliveryRecipient, DeliveryRequest, SpoolWriter
from mailbastion.core.replies import Reply

__all__ = ["Outbox", "OwnHop", "Sent", "request_of"]

log = logging.getLogger("mailbastion.submission")


@dataclass(frozen=True, slots=True)
class Sent:
    reply: Reply
    refused: tuple[str, ...] = ()  # recipients refused for good at hand-over
    queued_here: bool = False  # in our outbox, to be relayed later


def request_of(envelope: Envelope, message: bytes) -> DeliveryRequest:
    rcpts = tuple(DeliveryRecipient(str(r), envelope.dsn_of(i).notify, envelope.dsn_of(i).orcpt)
                  for i, r in enumerate(envelope.recipients))
    return DeliveryRequest("", envelope.sender_text, rcpts, message, smtputf8=envelope.smtputf8,
                           body_8bitmime=envelope.body_8bitmime, dsn_ret=envelope.dsn_ret,
                           dsn_envid=envelope.dsn_envid, requiretls=envelope.requiretls)


class OwnHop:
    """The relay agent as the outbox's queue manager should see it: the gateway is our own server, so a
    connection that fails (a 4.4.x: refused, reset, timed out) is a restart, not the Internet. Such deferrals
    are marked `link_down` and retried within seconds (spool/manager.py), not after the Internet back-off."""

    def __init__(self, agent: DeliveryAgent) -> None:
        self.agent = agent

    async def deliver(self, request: DeliveryRequest) -> Mapping[str, DeliveryOutcome]:
        out = dict(await self.agent.deliver(request))
        for address, outcome in out.items():
            if isinstance(outcome, Deferred) and outcome.reply.status.startswith("4.4."):
                out[address] = replace(outcome, link_down=True)
        return out


def _only(envelope: Envelope, keep: set[str]) -> Envelope:
    pairs = [(r, envelope.dsn_of(i)) for i, r in enumerate(envelope.recipients) if str(r) in keep]
    return replace(envelope, recipients=tuple(r for r, _ in pairs), rcpt_dsn=tuple(d for _, d in pairs))


class Outbox:
    def __init__(self, agent: DeliveryAgent, spool: SpoolWriter, *, timeout: float = 120.0) -> None:
        self.agent = agent
        self.spool = spool
        self.timeout = timeout

    async def send(self, envelope: Envelope, message: bytes, *, client: str) -> Sent:
        request = request_of(envelope, message)
        outcomes: dict[str, DeliveryOutcome] = {}
        try:
            outcomes = dict(await asyncio.wait_for(self.agent.deliver(request), self.timeout))
        except Exception as exc:  # noqa: BLE001 - unreachable, timed out, a bug: the outbox takes it
            log.warning("submission.handover failed sender=%s: %s: %s", envelope.sender_text,
                        type(exc).__name__, exc)
        taken = [a for a in request.addresses if isinstance(outcomes.get(a), Delivered)]
        refused = [a for a in request.addresses if isinstance(outcomes.get(a), Failed)]
        if len(taken) == len(request.addresses):
            first = outcomes[taken[0]]
            return Sent(Reply(250, "2.0.0", f"Ok: sent as {first.reply.text.rsplit(' ', 1)[-1]} "
                              "(taken by the gateway)"))
        if len(refused) == len(request.addresses):
            return Sent(outcomes[refused[0]].reply, tuple(refused))
        later = {a for a in request.addresses if a not in taken}
        try:
            queue_id = await self.spool.commit(_only(envelope, later), message, client=client)
        except MailError as exc:
            log.error("submission.outbox refused sender=%s: %s", envelope.sender_text, exc)
            if taken:  # some already left: telling the client to retry would send them twice; the rest
                # could not be kept: say so now (a 5xx names the failure; nothing silent)
                return Sent(Reply(554, "5.3.1", f"Sent to {len(taken)} recipient(s); the others could not be "
                                  "queued (our outbox is full): send to them again later"))
            return Sent(exc.reply)
        log.info("submission.outbox id=%s sender=%s recipients=%d (gateway took %d now)", queue_id,
                 envelope.sender_text, len(later), len(taken))
        return Sent(Reply(250, "2.0.0", f"Ok: queued as {queue_id}"), tuple(refused), True)
