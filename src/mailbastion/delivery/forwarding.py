"""Mail for our addresses that goes on outside our domains, decided where the queue manager delivers.

    forwarder = Forwarder(recipients=recipient_map, srs=Srs(key), spool=spool, sealer=ArcSealer(...))
    router = RoutingAgent(..., forwarder=forwarder)     # delivery/router.py asks `plan` per local recipient

Two cases, both seen by the gateway's router before it hands our domains to the MDA:

- forward  an alias (or a leaver's forward to a successor, lifecycle/transitions.py) with targets outside
           our domains: a copy for those targets is committed to our spool as a new queue entry (so it
           gets its own retries and DSNs), with
             the envelope sender rewritten by SRS (outbound/srs.py) at the SRS domain (`[srs] domain`, else
             the alias's domain); the null sender stays null; a sender of our own domains is kept; an SRS
             form longer than 64 octets (RFC 5321 §4.5.3.1.1) becomes postmaster@<srs domain>;
             the message sealed with ARC (outbound/arc_seal.py): our Authentication-Results become its
             ARC-Authentication-Results, signed with our DKIM key;
           the alias's local targets (if any) still go to the MDA, which skips the outside ones. The
           alias recipient counts as delivered once the copy is on disk (and its local part delivered).
- reverse  a bounce (or any reply) to an SRS address of ours, which the gateway accepted at RCPT only after
           `Srs.reverse` verified it (policy/checks/recipient.py): it is delivered to the address the SRS
           address stands for, through the router again (outside: SMTP; ours: the MDA).

A copy is committed once per (queue id, alias) in this process: when the local part of a mixed alias is
retried, the outside copy is not made again (a restart in between may make it twice: never lost).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailbastion.core.address import Address, AddressError, parse_address
from mailbastion.core.envelope import Envelope, RecipientDsn
from mailbastion.core.ports import DeliveryRequest, RecipientResolver, ResolutionKind, SpoolWriter
from mailbastion.outbound.arc_seal import ArcSealer
from mailbastion.outbound.srs import Srs, SrsInvalid, is_srs, srs_from_settings

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings

__all__ = ["Forward", "Forwarder", "Reverse", "forwarder_from_settings"]

log = logging.getLogger("mailbastion.delivery.forward")
MAX_LOCAL = 64
_REMEMBERED = 10_000


@dataclass(frozen=True, slots=True)
class Forward:
    alias: str
    outside: tuple[Address, ...]  # the targets outside our domains
    has_local: bool  # some targets are ours: the MDA still gets the alias


@dataclass(frozen=True, slots=True)
class Reverse:
    srs: str
    original: str  # what the SRS address stands for


class Forwarder:
    def __init__(self, *, recipients: RecipientResolver, srs: Srs | None, spool: SpoolWriter,
                 sealer: ArcSealer | None = None, srs_domain: str = "", arc_domain: str = "") -> None:
        self.recipients = recipients
        self.srs = srs
        self.spool = spool
        self.sealer = sealer
        self.srs_domain = srs_domain.lower().rstrip(".")
        self.arc_domain = arc_domain.lower().rstrip(".")
        self._done: dict[tuple[str, str], str] = {}  # (queue id, alias) -> the copy's queue id

    # -- what a recipient needs -------------------------------------------------------------------

    def plan(self, address: str) -> Forward | Reverse | None:
        """Forward, Reverse, or None (deliver as usual). Never raises for an address."""
        try:
            addr = parse_address(address, allow_utf8=True)
        except AddressError:
            return None
        if self.srs is not None and is_srs(addr.local):
            try:
                return Reverse(address, self.srs.reverse(str(addr)))
            except SrsInvalid:
                return None  # accepted by no RCPT check of ours: the MDA refuses it like any unknown user
        if self.srs is None:
            return None
        resolution = self.recipients.resolve(addr)
        if resolution.kind is not ResolutionKind.ALIAS:
            return None
        outside = tuple(t for t in resolution.targets if not self.recipients.is_local_domain(t.domain))
        if not outside:
            return None
        return Forward(address, outside, len(outside) < len(resolution.targets))

    def envelope_sender(self, sender: str, alias: str) -> Address | None:
        """The forwarded copy's envelope sender (see the module docstring)."""
        if not sender:
            return None
        domain = self.srs_domain or alias.rpartition("@")[2].lower()
        try:
            original = parse_address(sender, allow_utf8=True)
            if self.srs is None or self.recipients.is_local_domain(original.domain):
                return original
            rewritten = self.srs.forward(str(original), domain)
            if len(rewritten.rpartition("@")[0].encode("utf-8")) > MAX_LOCAL:
                raise AddressError("the SRS form is longer than 64 octets")
            return parse_address(rewritten, allow_utf8=True)
        except (AddressError, ValueError) as exc:
            log.warning("forward: no SRS form for %s (%s); envelope sender postmaster@%s", sender, exc, domain)
            return Address("postmaster", domain)

    def seal(self, message: bytes, alias: str) -> bytes:
        if self.sealer is None:
            return message
        domain = self.arc_domain or self.srs_domain or alias.rpartition("@")[2].lower()
        sealed = self.sealer.seal(message, domain)
        if sealed is message:
            log.warning("forward: copy for %s not ARC-sealed: %s", alias, self.sealer.last_reason)
        return sealed

    # -- doing it ---------------------------------------------------------------------------------

    async def commit_copy(self, request: DeliveryRequest, plan: Forward) -> str:
        """The outside copy on disk (once per queue id and alias); its queue id. Raises what the spool
        raises (SpoolFull: the caller defers the alias)."""
        key = (request.queue_id, plan.alias.lower())
        done = self._done.get(key)
        if done is not None:
            return done
        sender = self.envelope_sender(request.sender, plan.alias)
        envelope = Envelope(sender, plan.outside, smtputf8=request.smtputf8, body_8bitmime=request.body_8bitmime,
                            dsn_ret=request.dsn_ret, dsn_envid=request.dsn_envid, requiretls=request.requiretls,
                            rcpt_dsn=tuple(RecipientDsn(orcpt=f"rfc822;{plan.alias}") for _ in plan.outside))
        message = self.seal(request.message, plan.alias)
        queue_id = await self.spool.commit(envelope, message, client="forward")
        if len(self._done) >= _REMEMBERED:
            self._done.pop(next(iter(self._done)))
        self._done[key] = queue_id
        log.info("forward id=%s alias=%s to=%s as=%s sender=%s arc=%s", request.queue_id, plan.alias,
                 ",".join(str(a) for a in plan.outside), queue_id, envelope.sender_text or "<>",
                 "sealed" if message is not request.message else "none")
        return queue_id



def forwarder_from_settings(settings: Settings, recipients: RecipientResolver, spool: SpoolWriter) -> Forwarder | None:
    """The gateway's Forwarder for `[srs]`; None when forwarding outside is off. Raises OSError/ValueError
    when the SRS key cannot be read or made (the gateway refuses to start with a clear line)."""
    s = settings.srs
    srs = srs_from_settings(settings)
    if srs is None:
        return None
    sealer = ArcSealer.from_settings(settings) if s.arc_seal else None
    return Forwarder(recipients=recipients, srs=srs, spool=spool, sealer=sealer, srs_domain=s.domain,
                     arc_domain=s.arc_domain)
