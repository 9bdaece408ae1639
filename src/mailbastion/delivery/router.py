"""The agent the queue manager talks to: our domains go to the MDA over LMTP, the rest out by SMTP.

    router = RoutingAgent(is_local_domain=resolver.is_local_domain,
                          local=LmtpDeliveryAgent.from_settings(settings),
                          remote=SmtpDeliveryAgent.from_settings(settings, dns))

Each agent gets the request restricted to its own recipients, and both run at once. When no `remote`
agent is given (a gateway that only receives), recipients in other domains fail permanently: such mail
was never meant to be accepted (the relay check refuses it at RCPT).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from mailbastion.core.outcome import Deferred, DeliveryOutcome, Failed
from mailbastion.core.ports import DeliveryAgent, DeliveryRequest
from mailbastion.core.replies import Reply

RELAY_DISABLED = Reply(550, "5.7.1", "relaying to remote domains is not enabled here")


class RoutingAgent:
    def __init__(
        self,
        *,
        is_local_domain: Callable[[str], bool],
        local: DeliveryAgent,
        remote: DeliveryAgent | None = None,
    ) -> None:
        self.is_local_domain = is_local_domain
        self.local = local
        self.remote = remote

    def split(self, request: DeliveryRequest) -> tuple[list[str], list[str]]:
        """(local recipients, remote recipients) of the request."""
        local: list[str] = []
        remote: list[str] = []
        for address in request.addresses:
            domain = address.rpartition("@")[2].lower()
            (local if self.is_local_domain(domain) else remote).append(address)
        return local, remote

    async def deliver(self, request: DeliveryRequest) -> dict[str, DeliveryOutcome]:
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
