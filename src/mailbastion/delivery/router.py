"""The agent the queue manager talks to: our domains go to the MDA over LMTP, the rest out by SMTP.

    router = RoutingAgent(is_local_domain=resolver.is_local_domain,
                          local=LmtpDeliveryAgent.from_settings(settings),
                          remote=SmtpDeliveryAgent.from_settings(settings, dns))

Each agent gets the request restricted to its own recipients, and both run at once. When no `remote`
agent is given (a gateway that only receives), recipients in other domains fail permanently: such mail
was never meant to be accepted (the relay check refuses it at RCPT).

With a `forwarder` (delivery/forwarding.py), a recipient of ours is looked at first: an alias with targets
outside our domains gets its outside copy committed to the spool (SRS envelope, ARC seal) and only its local
part goes to the MDA; an SRS address of ours (a bounce of a copy we forwarded) is delivered to the address
it stands for. With an `auto_reply` (delivery/auto_reply.py), a leaver's forwarded mail answers its sender.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from mailbastion.core.errors import ConfigError, MailError
from mailbastion.core.outcome import Deferred, Delivered, DeliveryOutcome, Failed
from mailbastion.core.ports import DeliveryAgent, DeliveryRecipient, DeliveryRequest
from mailbastion.core.replies import Reply

if TYPE_CHECKING:
    from mailbastion.delivery.auto_reply import AutoReplier
    from mailbastion.delivery.forwarding import Forwarder

log = logging.getLogger("mailbastion.delivery.forward")

RELAY_DISABLED = Reply(550, "5.7.1", "relaying to remote domains is not enabled here")


class RoutingAgent:
    def __init__(
        self,
        *,
        is_local_domain: Callable[[str], bool],
        local: DeliveryAgent,
        remote: DeliveryAgent | None = None,
        forwarder: Forwarder | None = None,
        auto_reply: AutoReplier | None = None,
    ) -> None:
        self.is_local_domain = is_local_domain
        self.local = local
        self.remote = remote
        self.forwarder = forwarder
        self.auto_reply = auto_reply

    def split(self, request: DeliveryRequest) -> tuple[list[str], list[str]]:
        """(local recipients, remote recipients) of the request."""
        local: list[str] = []
        remote: list[str] = []
        for address in request.addresses:
            domain = address.rpartition("@")[2].lower()
            (local if self.is_local_domain(domain) else remote).append(address)
        return local, remote

    async def deliver(self, request: DeliveryRequest) -> dict[str, DeliveryOutcome]:
        out: dict[str, DeliveryOutcome] = {}
        rest = request
        if self.forwarder is not None:
            rest, out = await self._forward(request)
        if rest.recipients:
            out.update(await self._route(rest))
        if self.auto_reply is not None:
            delivered = [a for a, o in out.items() if isinstance(o, Delivered)]
            if delivered:
                await self.auto_reply.answer(request, delivered)
        return out

    async def _forward(self, request: DeliveryRequest) -> tuple[DeliveryRequest, dict[str, DeliveryOutcome]]:
        """Forward and reverse what needs it (see the module docstring); the rest of the request, and the
        outcomes already known."""
        from mailbastion.delivery.forwarding import Forward, Reverse

        assert self.forwarder is not None
        out: dict[str, DeliveryOutcome] = {}
        keep: list[str] = []
        reversed_: dict[str, str] = {}  # the SRS address it came in as -> the original
        for address in request.addresses:
            domain = address.rpartition("@")[2].lower()
            plan = self.forwarder.plan(address) if self.is_local_domain(domain) else None
            if isinstance(plan, Reverse):
                reversed_[address] = plan.original
                continue
            if isinstance(plan, Forward):
                try:
                    copy_id = await self.forwarder.commit_copy(request, plan)
                except (MailError, OSError, ConfigError) as exc:
                    log.warning("forward id=%s alias=%s deferred: the copy could not be stored: %s",
                                request.queue_id, address, exc)
                    out[address] = Deferred(Reply(451, "4.3.0", "forwarded copy could not be stored"))
                    continue
                if not plan.has_local:
                    out[address] = Delivered(Reply(250, "2.0.0", f"forwarded as {copy_id}"))
                    continue
            keep.append(address)
        if reversed_:
            firsts: dict[str, DeliveryRecipient] = {}  # two SRS addresses of one original: one delivery
            for r in request.recipients:
                if r.address in reversed_:
                    firsts.setdefault(reversed_[r.address], replace(r, address=reversed_[r.address]))
            got = await self._route(replace(request, recipients=tuple(firsts.values())))
            for srs, original in reversed_.items():
                log.info("forward.bounce id=%s srs=%s to=%s", request.queue_id, srs, original)
                out[srs] = got.get(original) or Deferred(Reply(451, "4.3.0", "no outcome from delivery agent"))
        return request.restricted_to(keep), out

    async def _route(self, request: DeliveryRequest) -> dict[str, DeliveryOutcome]:
        local, remote = self.split(request)
        jobs: list[tuple[list[str], DeliveryAgent]] = []
        out: dict[str, DeliveryOutcome] = {}
        if local:
            jobs.append((local, self.local))
        if remote and self.remote is not None:
            jobs.append((remote, self.remote))
        elif remote:
            out.update({a: Failed(RELAY_DISABLED) for a in remote})
        results: list[Mapping[str, DeliveryOutcome] | BaseException] = await asyncio.gather(
            *(agent.deliver(request.restricted_to(addrs)) for addrs, agent in jobs), return_exceptions=True)
        for (addrs, _), result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                error = Deferred(Reply(451, "4.3.0", f"delivery agent error: {result}"))
                out.update({a: error for a in addrs})
            else:
                missing = Deferred(Reply(451, "4.3.0", "no outcome from delivery agent"))
                out.update({a: result.get(a) or missing for a in addrs})
        return out
