"""The ports the protocol edges depend on. Concrete adapters live elsewhere; `apps/` wires them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.verdict import Verdict


class ResolutionKind(Enum):
    LOCAL = "local"  # a mailbox of an active account
    ALIAS = "alias"  # expands to targets (local or remote)
    UNKNOWN_USER = "unknown_user"  # our domain, no such (active) address
    UNKNOWN_DOMAIN = "unknown_domain"  # not one of our domains


@dataclass(frozen=True, slots=True)
class Resolution:
    kind: ResolutionKind
    address: Address
    targets: tuple[Address, ...] = ()  # for ALIAS: the final addresses


class RecipientResolver(Protocol):
    """What the gateway knows about our addresses. Holds no credentials and no mailboxes."""

    def is_local_domain(self, domain: str) -> bool: ...

    def resolve(self, address: Address) -> Resolution: ...


class SpoolWriter(Protocol):
    async def commit(
        self,
        envelope: Envelope,
        message: bytes,
        *,
        client: str,
        verdict: Verdict | None = None,
        junk: bool = False,
        hops: int = 0,
    ) -> str:
        """Write, fsync and rename the message and its record into the spool; return the queue id.
        Raises SpoolFull when it cannot. Only after it returns may the server say 250."""
        ...


class QuarantineSink(Protocol):
    async def put(self, envelope: Envelope, message: bytes, verdict: Verdict, *, client: str) -> str:
        """Durably hold a message for the administrator; return its quarantine id."""
        ...
