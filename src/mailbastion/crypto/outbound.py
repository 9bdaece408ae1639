"""The outbound encryption policy: what leaves for each recipient of a message, and how.

    policy = OutboundPolicy.from_settings(settings, is_local_domain=recipient_map.is_local_domain,
                                          pickup=PickupStore.from_settings(settings))
    keys = StoreKeys(KeyStore.from_settings(settings))         # or any KeyLookup
    decision = protect_outbound(message_bytes, recipients, keys, policy, sender=envelope.sender)

For a message the classifier calls confidential:

- recipients in our own domains get the message as it is (it stays on our mutual-TLS links; at rest the
  MDA encrypts it when `at_rest` says so);
- an outside recipient whose S/MIME certificate or OpenPGP key we hold gets it encrypted to that key (one
  message for the To/Cc recipients of one kind, a message of their own for the others, so a Bcc
  recipient's key never shows in another's copy);
- every other outside recipient, by `without_key`: "hold" (the recipient is held and the sender told
  which recipients lack keys), "pickup" (the message is sealed in the pick-up store; the recipient gets
  a notice with a link and no content, the sender the one-time code to pass on), or "refuse" (a 5.7.1
  reply for the DSN).

Whatever happens, no Outgoing of a confidential message carries its content in clear to the outside,
and every Outgoing of it has `require_tls` (verified TLS, as REQUIRETLS: the SMTP client must refuse
to send it over anything less). Signing (`sign = "confidential" | "always"`) happens before encryption,
with the sender's own S/MIME key; a sender without one is sent unsigned (`Decision.notes` says so).
A message that is not confidential leaves as it is (signed when `sign = "always"`).
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mailbastion.core import lenient_addresses
from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.header_block import HeaderBlock
from mailbastion.core.replies import Reply
from mailbastion.crypto import openpgp, smime
from mailbastion.crypto.classify import Classification, Classifier
from mailbastion.crypto.keystore import KeyStore, PublicKey
from mailbastion.crypto.pickup import PickupStore, PickupTicket

__all__ = [
    "Decision",
    "KeyLookup",
    "OutboundPolicy",
    "Outgoing",
    "Protection",
    "Refusal",
    "SigningKey",
    "StoreKeys",
    "protect_outbound",
]

log = logging.getLogger("mailbastion.crypto")


class Protection(StrEnum):
    NONE = "none"  # not confidential: as it was (maybe signed)
    INTERNAL = "internal"  # confidential, to our own domains: our mutual-TLS links
    SMIME = "smime"
    OPENPGP = "openpgp"
    PICKUP_NOTICE = "pickup-notice"  # a link and no content


@dataclass(frozen=True, slots=True)
class SigningKey:
    cert: x509.Certificate
    key: Any  # RSA or EC private key
    chain: tuple[x509.Certificate, ...] = ()


class KeyLookup(Protocol):
    def encryption_key(self, address: str, *, prefer: str = "smime") -> PublicKey | None: ...

    def signing_key(self, address: str) -> SigningKey | None: ...


class StoreKeys:
    """KeyLookup over the key store (the internal role's: signing opens the sender's private key)."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store

    def encryption_key(self, address: str, *, prefer: str = "smime") -> PublicKey | None:
        return self.store.encryption_key(address, prefer=prefer)

    def signing_key(self, address: str) -> SigningKey | None:
        for record in self.store.active(address, "smime"):
            if record.has_private:
                certs = x509.load_pem_x509_certificates(record.public)
                key = serialization.load_der_private_key(self.store.private_key(record), None)
                return SigningKey(certs[0], key, tuple(certs[1:]))
        return None


@dataclass(frozen=True, slots=True)
class Outgoing:
    recipients: tuple[Address, ...]
    message: bytes
    protection: Protection
    require_tls: bool  # verified TLS only (REQUIRETLS-like): never downgrade for this message


@dataclass(frozen=True, slots=True)
class Refusal:
    recipient: Address
    reply: Reply  # 550 5.7.1 ..., for the DSN


@dataclass(frozen=True, slots=True)
class Decision:
    classification: Classification
    outgoing: tuple[Outgoing, ...] = ()
    held: tuple[Address, ...] = ()  # keep the message in the hold queue for these
    refused: tuple[Refusal, ...] = ()
    pickups: tuple[PickupTicket, ...] = ()
    notice: bytes | None = None  # a message for the sender (held recipients, pick-up codes), to deliver locally
    signed: bool = False
    notes: tuple[str, ...] = ()

    @property
    def require_tls(self) -> bool:
        return any(o.require_tls for o in self.outgoing)


@dataclass(frozen=True)
class OutboundPolicy:
    classifier: Classifier
    is_local_domain: Callable[[str], bool]
    without_key: str = "hold"
    sign: str = "never"
    prefer: str = "smime"
    cipher: str = "aes256-cbc"
    hide_subject: bool = False
    pickup: PickupStore | None = None
    pickup_url: str = "https://localhost/pickup/"
    notice_from: str = "postmaster@localhost"
    hostname: str = "localhost"
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Any, *, is_local_domain: Callable[[str], bool],
                      pickup: PickupStore | None = None) -> OutboundPolicy:
        e = settings.encryption
        host = settings.server.hostname
        domain = host.split(".", 1)[1] if host.count(".") >= 2 else host
        return cls(Classifier.from_settings(e), is_local_domain, without_key=e.without_key, sign=e.sign,
                   prefer=e.prefer, cipher=e.smime_cipher, hide_subject=e.hide_subject, pickup=pickup,
                   pickup_url=e.pickup_url or f"{settings.portal.base_url(host)}/pickup/", notice_from=f"postmaster@{domain}",
                   hostname=host)


def refused_reply(rcpt: Address) -> Reply:
    return Reply(550, "5.7.1", f"confidential message not sent to {rcpt}: we hold no encryption key or certificate "
                               "for this recipient, and the policy forbids sending it in clear")


def _header_recipients(raw: bytes) -> set[str]:
    block = HeaderBlock.parse(raw)
    values = [v for name in ("to", "cc") for v in block.values(name)]
    return {a.lower() for _, a in lenient_addresses.getaddresses(values) if a}


def _encrypt(raw: bytes, key_kind: str, keys: Sequence[PublicKey], policy: OutboundPolicy) -> bytes:
    if key_kind == "smime":
        certs = [x509.load_pem_x509_certificates(k.public)[0] for k in keys]
        return smime.encrypt_message(raw, certs, cipher=policy.cipher, hide_subject=policy.hide_subject)
    return openpgp.encrypt_message(raw, [openpgp.load_cert(k.public) for k in keys], hide_subject=policy.hide_subject)


def protect_outbound(message: bytes, recipients: Sequence[Address], keys: KeyLookup, policy: OutboundPolicy, *,
                     sender: Address | None = None, envelope: Envelope | None = None,
                     classification: Classification | None = None) -> Decision:
    """Decide what to send to each recipient (module docstring). Never raises for one recipient's key: a key
    that fails to encrypt counts as no key. Raises only for a broken pick-up store (OSError), so that the
    caller defers rather than sends. `classification`: the classifier's answer when the caller has it already."""
    if classification is None:
        classification = policy.classifier.is_confidential(message, envelope)
    sender_text = str(sender) if sender is not None and str(sender) else ""
    notes: list[str] = []
    signer = None
    if policy.sign == "always" or (policy.sign == "confidential" and classification):
        signer = keys.signing_key(sender_text) if sender_text else None
        if signer is None:
            notes.append(f"not signed: {sender_text or 'the null sender'} has no S/MIME key with a private key")
    body = smime.sign_message(message, signer.cert, signer.key, signer.chain) if signer else message
    if not classification:
        return Decision(classification, (Outgoing(tuple(recipients), body, Protection.NONE, False),),
                        signed=signer is not None, notes=tuple(notes))

    internal = [r for r in recipients if r.domain and policy.is_local_domain(r.domain)]
    outside = [r for r in recipients if r not in internal]
    outgoing: list[Outgoing] = []
    if internal:
        outgoing.append(Outgoing(tuple(internal), body, Protection.INTERNAL, True))
    visible = _header_recipients(message)
    groups: dict[tuple[str, str], list[tuple[Address, PublicKey]]] = {}
    without: list[Address] = []
    for rcpt in outside:
        key = keys.encryption_key(rcpt.normalized, prefer=policy.prefer)
        if key is None:
            without.append(rcpt)
            continue
        # To/Cc recipients share one message per kind; anyone else (Bcc) gets one alone.
        group = "visible" if rcpt.normalized in visible else f"alone:{rcpt.normalized}"
        groups.setdefault((key.kind, group), []).append((rcpt, key))
    for (kind, _), members in groups.items():
        try:
            encrypted = _encrypt(body, kind, [k for _, k in members], policy)
        except (smime.SmimeError, openpgp.OpenPgpError, ValueError) as exc:
            log.warning("confidential: cannot encrypt to %s (%s): %s", ", ".join(str(r) for r, _ in members), kind, exc)
            notes.append(f"{kind} encryption failed for {', '.join(str(r) for r, _ in members)}: {exc}")
            without.extend(r for r, _ in members)
            continue
        outgoing.append(Outgoing(tuple(r for r, _ in members), encrypted, Protection(kind), True))

    held: list[Address] = []
    refused: list[Refusal] = []
    tickets: list[PickupTicket] = []
    mode = policy.without_key
    if mode == "pickup" and without and policy.pickup is None:
        notes.append("pick-up store not configured: holding instead")
        mode = "hold"
    for rcpt in without:
        if mode == "refuse":
            refused.append(Refusal(rcpt, refused_reply(rcpt)))
        elif mode == "pickup":
            assert policy.pickup is not None
            ticket = policy.pickup.deposit(body, recipient=rcpt.normalized, sender=sender_text)
            tickets.append(ticket)
            outgoing.append(Outgoing((rcpt,), _pickup_notice(message, rcpt, ticket, sender_text, policy),
                                     Protection.PICKUP_NOTICE, True))
        else:
            held.append(rcpt)
    notice = _sender_notice(message, sender_text, held, tickets, policy) if sender_text and (held or tickets) else None
    log.info("confidential message (%s): %d encrypted, %d internal, %d held, %d pick-up, %d refused",
             "; ".join(classification.reasons), sum(len(o.recipients) for o in outgoing
                                                    if o.protection in (Protection.SMIME, Protection.OPENPGP)),
             len(internal), len(held), len(tickets), len(refused))
    return Decision(classification, tuple(outgoing), tuple(held), tuple(refused), tuple(tickets), notice,
                    signer is not None, tuple(notes))


def _subject(message: bytes) -> str:
    return (HeaderBlock.parse(message).first("subject") or "").strip()


def _generated(sender_from: str, to: str, subject: str, text: str, hostname: str) -> bytes:
    lines = [f"From: {sender_from}", f"To: {to}", f"Subject: {subject}", f"Date: {email.utils.formatdate()}",
             f"Message-ID: {email.utils.make_msgid(domain=hostname)}", "Auto-Submitted: auto-generated",
             "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", "", text]
    return "\r\n".join(lines).encode("utf-8")


def _pickup_notice(message: bytes, rcpt: Address, ticket: PickupTicket, sender: str, policy: OutboundPolicy) -> bytes:
    """What the recipient gets: who sent something, the link, how to get the code. No content, no subject."""
    import datetime as dt

    until = dt.datetime.fromtimestamp(ticket.expires, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (f"{sender or 'A sender'} has sent you a confidential message through a secure pick-up.\r\n\r\n"
            f"Open it here: {policy.pickup_url}{ticket.token}\r\n\r\n"
            f"You will be asked for a one-time code. The sender gives it to you by another channel (phone, SMS);\r\n"
            f"it is not in this mail. The message can be opened once, until {until}.\r\n")
    return _generated(policy.notice_from, str(rcpt), "Confidential message waiting for you", text, policy.hostname)


def _sender_notice(message: bytes, sender: str, held: Sequence[Address], tickets: Sequence[PickupTicket],
                   policy: OutboundPolicy) -> bytes:
    subject = _subject(message) if not policy.hide_subject else ""
    parts = [f"Your confidential message{f' ({subject!r})' if subject else ''} was not sent in clear to everyone."]
    if held:
        parts.append("It is HELD for these recipients, because we have no encryption key or certificate for them:\r\n"
                     + "".join(f"  {r}\r\n" for r in held)
                     + "Ask them for their S/MIME certificate (a signed mail from them is enough) or OpenPGP key;\r\n"
                       "an administrator then releases the message.")
    if tickets:
        parts.append("These recipients get a link to a secure pick-up instead. Give each one their code by another\r\n"
                     "channel (phone, SMS), never by mail:\r\n"
                     + "".join(f"  {t.recipient}: {t.code}\r\n" for t in tickets))
    return _generated(policy.notice_from, sender, "Your confidential message: action needed", "\r\n\r\n".join(parts)
                      + "\r\n", policy.hostname)
