"""The agent the queue manager talks to: our domains go to the MDA over LMTP, the rest out by SMTP.

    router = RoutingAgent(is_local_domain=resolver.is_local_domain,
                          local=LmtpDeliveryAgent.from_settings(settings),
                          remote=SmtpDeliveryAgent.from_settings(settings, dns))

Each agent gets a view of the record that lists only its own recipients, and both run at once.
When no `remote` agent is given (a gateway that only receives), recipients in other domains fail
permanently: such mail was never meant to be accepted (the relay check refuses it at RCPT).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mailbastion.delivery.agent import DeliveryAgent, DeliveryOutcome, PermFailed, TempFailed
from mailbastion.spool.record import QueueRecord


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

    def split(self, record: QueueRecord) -> tuple[list[str], list[str]]:
        """(local recipients, remote recipients) among the pending ones."""
        local: list[str] = []
        remote: list[str] = []
        for r in record.pending:
            domain = r.address.rpartition("@")[2].lower()
            (local if self.is_local_domain(domain) else remote).append(r.address)
        return local, remote

    async def deliver(self, record: QueueRecord, message: bytes) -> dict[str, DeliveryOutcome]:
        local, remote = self.split(record)
        jobs: list[tuple[list[str], DeliveryAgent]] = []
        out: dict[str, DeliveryOutcome] = {}
        if local:
            jobs.append((local, self.local))
        if remote and self.remote is not None:
            jobs.append((remote, self.remote))
        elif remote:
            out.update({a: PermFailed("5.7.1 relaying to remote domains is not enabled here") for a in remote})
        results = await asyncio.gather(*(agent.deliver(record.restricted_to(addrs), message)
                                         for addrs, agent in jobs), return_exceptions=True)
        for (addrs, _), result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                out.update({a: TempFailed(f"4.3.0 delivery agent error: {result}") for a in addrs})
            else:
                out.update({a: result.get(a, TempFailed("4.3.0 no outcome from delivery agent")) for a in addrs})
        return out
