"""Outsiders' S/MIME certificates, collected from the valid S/MIME-signed mail they send us (what mail
clients do): a reply to them can then be encrypted.

    collector = CertificateCollector(store, TrustBundle(extra_files, system=True), is_local_domain=...)
    collector.collect(message_bytes)       # the KeyRecord stored, or None; never raises

A certificate is kept only when the signature verifies, the signer's chain builds to the system's CA
bundle or a configured CA (`encryption.extra_ca_files`) for S/MIME signing (`openssl cms -verify
-purpose smimesign`), the certificate names the message's From address (one address, the same every
parser reads), it can be used for encryption, and that address is not in one of our domains (our users'
keys are managed with `mailbastion keys`). A certificate already stored is not stored again. The MDA
calls it after delivering a message that looks signed; the cost (an `openssl` process) is paid only
for signed mail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization

from mailbastion.core import lenient_addresses
from mailbastion.core.header_block import HeaderBlock
from mailbastion.crypto.keystore import KeyRecord, KeyStore
from mailbastion.crypto.smime import TrustBundle, fingerprint, is_usable_for_encryption, verify_signed

__all__ = ["CertificateCollector", "looks_smime_signed"]

log = logging.getLogger("mailbastion.crypto")


def looks_smime_signed(header: HeaderBlock) -> bool:
    """multipart/signed with an S/MIME signature, or opaque signed-data (RFC 8551 §3.5): a cheap look."""
    ctype = (header.first("content-type") or "").lower()
    if ctype.startswith("multipart/signed"):
        return "pkcs7-signature" in ctype
    return ctype.startswith(("application/pkcs7-mime", "application/x-pkcs7-mime")) and "signed-data" in ctype


class CertificateCollector:
    def __init__(self, store: KeyStore, trust: TrustBundle, *,
                 is_local_domain: Callable[[str], bool] | None = None) -> None:
        self.store = store
        self.trust = trust
        self.is_local_domain = is_local_domain or (lambda d: False)

    def collect(self, message: bytes) -> KeyRecord | None:
        try:
            return self._collect(message)
        except Exception:
            log.exception("s/mime certificate collection failed")
            return None

    def _collect(self, message: bytes) -> KeyRecord | None:
        header = HeaderBlock.parse(message)
        if not looks_smime_signed(header):
            return None
        froms = [a for _, a in lenient_addresses.getaddresses(header.values("from")) if a]
        if len(froms) != 1 or "@" not in froms[0]:
            return None
        sender = froms[0].lower()
        if self.is_local_domain(sender.rpartition("@")[2]):
            return None
        signer = verify_signed(message, self.trust)
        if signer is None:
            return None
        if sender not in signer.addresses:
            log.info("s/mime: signed by %s, but From is %s: certificate not collected", signer.addresses, sender)
            return None
        why = is_usable_for_encryption(signer.cert)
        if why:
            log.info("s/mime: certificate of %s not collected: %s", sender, why)
            return None
        fp = fingerprint(signer.cert)
        if self.store.find(sender, "smime", fp) is not None:
            return None
        record = KeyRecord(address=sender, kind="smime", fingerprint=fp,
                           public=signer.cert.public_bytes(serialization.Encoding.PEM), source="collected",
                           created=time.time(), expires=signer.cert.not_valid_after_utc.timestamp())
        log.info("s/mime: collected the certificate of %s (%s, until %s)", sender, fp[:16],
                 signer.cert.not_valid_after_utc.date())
        return self.store.put(record)
