"""Encryption at rest: the MDA encrypts each delivered copy to its mailbox owner's public key before the
copy touches the disk (`[encryption] at_rest = ["alice@example.org", "example.net"]`).

    sealer = AtRestSealer.from_settings(settings, store)
    sealer.applies(mailbox)                  # is this mailbox (or its domain) listed?
    stored = sealer.seal(mailbox, copy)      # the copy as it will be written; raises NoKeyForMailbox

The stored file is a normal RFC 5322 message a mail client opens: the copy's header fields except the
Content-* ones (Return-Path, Delivered-To, Received, From, To, Date, Subject, Message-ID: the mailbox
listing and threading still work; with `hide_subject` the Subject reads "[...]"), and as its body the
WHOLE copy encrypted (S/MIME EnvelopedData, or PGP/MIME), so decrypting it gives the delivered copy back
byte for byte (in canonical CRLF form). Only the owner's private key opens it; the server holds only
the public key it encrypts to (the user's private key is in the key store, sealed, for `keys export
--private` only; the MDA never opens it).

Which key: `at_rest_format = "auto"` uses the user's active S/MIME certificate if there is one, else
the OpenPGP key; "smime" or "openpgp" insist on that kind. No usable key raises NoKeyForMailbox (a
LookupError): the MDA answers 451 4.7.5 for that mailbox and logs why, so nothing is stored in clear.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from cryptography import x509

from mailbastion.crypto import openpgp, smime
from mailbastion.crypto.keystore import KeyStore, PublicKey

__all__ = ["AtRestSealer", "NoKeyForMailbox"]

log = logging.getLogger("mailbastion.mda")


class NoKeyForMailbox(LookupError):
    """At-rest encryption is required for this mailbox and it has no usable key."""


class AtRestSealer:
    def __init__(self, store: KeyStore, targets: Iterable[str], *, fmt: str = "auto", cipher: str = "aes256-cbc",
                 hide_subject: bool = False) -> None:
        self.store = store
        self.addresses = frozenset(t.lower() for t in targets if "@" in t)
        self.domains = frozenset(t.lower() for t in targets if "@" not in t)
        self.fmt = fmt
        self.cipher = cipher
        self.hide_subject = hide_subject

    @classmethod
    def from_settings(cls, settings: Any, store: KeyStore | None = None) -> AtRestSealer | None:
        """None when no mailbox is encrypted at rest."""
        e = settings.encryption
        if not e.at_rest:
            return None
        return cls(store or KeyStore.from_settings(settings), e.at_rest, fmt=e.at_rest_format, cipher=e.smime_cipher,
                   hide_subject=e.hide_subject)

    def applies(self, mailbox: object) -> bool:
        address = str(mailbox).lower()
        return address in self.addresses or address.rpartition("@")[2] in self.domains

    def _key(self, address: str) -> PublicKey:
        if self.fmt == "auto":
            key = self.store.encryption_key(address, prefer="smime")
        else:
            active = self.store.active(address, self.fmt)
            r = active[0] if active else None
            key = PublicKey(r.address, r.kind, r.fingerprint, r.public, r.source) if r else None
        if key is None:
            wanted = "an S/MIME certificate or OpenPGP key" if self.fmt == "auto" else f"an {self.fmt} key"
            raise NoKeyForMailbox(f"{address} must be stored encrypted (encryption.at_rest) but has no active {wanted}: "
                                  f"run `mailbastion keys generate {address}` or import the user's certificate")
        return key

    def seal(self, mailbox: object, message: bytes) -> bytes:
        """`message` (the copy as the MDA would store it) encrypted to the mailbox owner, LF line ends."""
        address = str(mailbox).lower()
        key = self._key(address)
        if key.kind == "smime":
            cert = x509.load_pem_x509_certificates(key.public)[0]
            out = smime.encrypt_message(message, [cert], cipher=self.cipher, hide_subject=self.hide_subject)
        else:
            out = openpgp.encrypt_message(message, [openpgp.load_cert(key.public)], hide_subject=self.hide_subject)
        return out.replace(b"\r\n", b"\n")  # the Maildir convention of this MDA: LF line ends
