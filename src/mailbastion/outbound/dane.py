"""DANE: match an MX's certificate chain against its DNSSEC-validated TLSA records (RFC 7672 §3, RFC 6698 §2).

    failure = verify_dane(chain, requirement.tlsa, names=("mx.example.org",))   # None = matched

DANE-EE(3): the leaf certificate (selector 0) or its public key (selector 1) matches; nothing else is
checked: not the name, not the dates, not a CA (RFC 7672 §3.1.1). DANE-TA(2): a certificate the server
sent (not the leaf) matches; the leaf chains up to it by signatures, each issuer a CA, every certificate
on the way within its dates, and the leaf names the MX host (RFC 7672 §3.1.2, §3.2.3). The server must
send the trust anchor in its chain (RFC 7672 §3.1.2). Digests are compared in constant time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mailbastion.outbound.pkix import dns_names, names_match
from mailbastion.outbound.requirement import (
    DANE_EE,
    DANE_TA,
    MATCH_FULL,
    MATCH_SHA256,
    SELECTOR_CERT,
    Tlsa,
)

VALIDATION_FAILURE = "validation-failure"  # RFC 8460 §4.3.2.1: the general failure, used for no TLSA match


def association_data(cert: x509.Certificate, selector: int, mtype: int) -> bytes:
    """The bytes a TLSA record of (selector, mtype) holds for `cert` (RFC 6698 §2.1.2-3)."""
    if selector == SELECTOR_CERT:
        data = cert.public_bytes(Encoding.DER)
    else:
        data = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if mtype == MATCH_FULL:
        return data
    return hashlib.sha256(data).digest() if mtype == MATCH_SHA256 else hashlib.sha512(data).digest()


def tlsa_of(cert: x509.Certificate, usage: int = DANE_EE, selector: int = 1, mtype: int = MATCH_SHA256) -> Tlsa:
    """The TLSA record that `cert` matches ("3 1 1" by default: what `dns records` publishes for our MX)."""
    return Tlsa(usage, selector, mtype, association_data(cert, selector, mtype))


def matches(cert: x509.Certificate, record: Tlsa) -> bool:
    return hmac.compare_digest(association_data(cert, record.selector, record.mtype), record.data)


def _issuer_in(cert: x509.Certificate, pool: list[x509.Certificate]) -> x509.Certificate | None:
    for candidate in pool:
        if candidate is cert or candidate.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _ta_path(chain: list[x509.Certificate], records: list[Tlsa], now: dt.datetime) -> str | None:
    """None when the leaf chains to a sent certificate matching a DANE-TA record; else why not."""
    leaf, current, seen = chain[0], chain[0], 0
    pool = chain[1:]
    while seen <= len(pool):
        if current is not leaf and any(matches(current, r) for r in records):
            return None
        issuer = _issuer_in(current, pool)
        if issuer is None:
            return "no certificate the server sent matches a DANE-TA record on the leaf's issuer chain"
        if not _is_ca(issuer):
            return f"{issuer.subject.rfc4514_string()} signs certificates but is not a CA"
        if not issuer.not_valid_before_utc <= now <= issuer.not_valid_after_utc:
            return f"{issuer.subject.rfc4514_string()} is outside its validity period"
        current, seen = issuer, seen + 1
    return "the chain loops"


def verify_dane(chain: list[x509.Certificate], tlsa: tuple[Tlsa, ...], *, names: tuple[str, ...],
                now: dt.datetime | None = None) -> tuple[str, str] | None:
    """None when the chain (leaf first) matches one usable record; else (RFC 8460 result type, detail)."""
    now = now or dt.datetime.now(dt.UTC)
    usable = [r for r in tlsa if r.usable]
    if not chain:
        return VALIDATION_FAILURE, "the server sent no certificate"
    leaf = chain[0]
    if any(matches(leaf, r) for r in usable if r.usage == DANE_EE):
        return None
    ta = [r for r in usable if r.usage == DANE_TA]
    if ta:
        why = _ta_path(chain, ta, now)
        if why is None:
            if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
                return "certificate-expired", "DANE-TA: the server certificate is outside its validity period"
            if not names_match(leaf, names):
                return ("certificate-host-mismatch",
                        f"DANE-TA: certificate names {', '.join(dns_names(leaf))}, not {', '.join(names)}")
            return None
        return VALIDATION_FAILURE, f"DANE: {why}"
    return VALIDATION_FAILURE, "DANE: the server certificate matches none of the TLSA records"


__all__ = ["association_data", "matches", "tlsa_of", "verify_dane"]
