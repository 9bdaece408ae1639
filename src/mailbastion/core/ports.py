"""The ports the protocol edges and the queue depend on. Concrete adapters live elsewhere; `apps/` wires them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Protocol

from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.outcome import DeliveryOutcome
from mailbastion.core.verdict import Folder, Verdict


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
    successor: str | None = None  # for UNKNOWN_USER: a leaver's successor, named in the refusal (issue 13)


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
        hops: int = 0,
    ) -> str:
        """Write and fsync the message with its record, and fsync its directory entry in the spool; return
        the queue id. The Junk decision travels as `verdict.folder`. Raises SpoolFull when it cannot.
        Only after it returns may the server say 250."""
        ...


class QuarantineSink(Protocol):
    async def put(self, envelope: Envelope, message: bytes, verdict: Verdict, *, client: str) -> str:
        """Durably hold a message for the administrator; return its quarantine id."""
        ...


@dataclass(frozen=True, slots=True)
class DeliveryRecipient:
    """One recipient of a delivery, with what its RCPT asked for (RFC 3461 NOTIFY and ORCPT)."""

    address: str
    notify: tuple[str, ...] = ()  # () = not given; ("NEVER",) or a subset of SUCCESS, FAILURE, DELAY
    orcpt: str | None = None  # "rfc822;alice@example.org", xtext decoded


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    """What the queue manager asks of a delivery agent: one message, the recipients due now, and the
    envelope parameters a next hop may need (RFC 6152, 6531, 3461, 8689)."""

    queue_id: str
    sender: str  # "" is the null reverse-path <>
    recipients: tuple[DeliveryRecipient, ...]
    message: bytes
    folder: Folder = Folder.INBOX  # where a final delivery files the copy (the Junk decision)
    smtputf8: bool = False
    body_8bitmime: bool = False
    dsn_ret: str | None = None  # "FULL" | "HDRS"
    dsn_envid: str | None = None
    requiretls: bool = False
    # A DSN the gateway matched to mail we sent (delivery/bounce_match.py): the envelope senders of ours whose
    # messages it reports refused, once per message. Carried to the MDA on the LMTP link (XBOUNCEOF), where
    # the internal host's submission counts them as hijack signs; empty for every other message.
    bounce_of: tuple[str, ...] = ()

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(r.address for r in self.recipients)

    def restricted_to(self, addresses: Iterable[str]) -> DeliveryRequest:
        """The same request for only these recipients (a router hands each agent its share)."""
        keep = set(addresses)
        return replace(self, recipients=tuple(r for r in self.recipients if r.address in keep))


class DeliveryAgent(Protocol):
    async def deliver(self, request: DeliveryRequest) -> Mapping[str, DeliveryOutcome]:
        """Deliver `request.message` to each of `request.recipients`; return {address: outcome} for each.

        Never raises for one recipient's failure: when the next hop cannot be reached at all, every
        recipient is Deferred. The queue manager treats a missing outcome, or an exception escaping an
        agent, as a temporary failure."""
        ...
