"""After STARTTLS: the context to hand the handshake, and the judgement of the peer against the requirement.

    ctx = starttls_context()                              # the house TLS policy, no verification in the handshake
    await smtp.starttls(server_hostname=req.host, tls_context=ctx)
    result = check_peer(smtp.get_transport_info("ssl_object"), req, trust)
    if not result.ok and req.enforced: QUIT and defer with refusal_of(req, result)

Why the handshake verifies nothing: the peer is judged once, here, for every mode, so that an MTA-STS
policy in testing mode can report a bad certificate and still deliver (RFC 8461 §5), DANE-EE can accept a
certificate no CA signed (RFC 7672 §3.1.1), and every failure gets its RFC 8460 result type. Nothing but
QUIT is sent on a connection whose check failed.
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass

from cryptography import x509

from mailbastion.outbound.dane import verify_dane
from mailbastion.outbound.pkix import TrustStore, verify_pkix
from mailbastion.outbound.requirement import TlsMode, TlsRefusal, TlsRequirement
from mailbastion.tls_policy import client_context

TlsObject = ssl.SSLObject | ssl.SSLSocket


def starttls_context(min_version: str = "TLSv1.2") -> ssl.SSLContext:
    """TLS 1.2+ with the house cipher list (tls_policy.py), SNI from server_hostname, and no verification
    during the handshake: check_peer() does it afterwards."""
    ctx = client_context(check_hostname=False, min_version=min_version)
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def peer_chain(tls: TlsObject) -> list[x509.Certificate]:
    """The certificates the server sent, leaf first. Python 3.13 has `get_unverified_chain()`; 3.10-3.12
    have the same method on the internal `_sslobj`; older ones give the leaf only."""
    getter = getattr(tls, "get_unverified_chain", None) or getattr(getattr(tls, "_sslobj", None),
                                                                   "get_unverified_chain", None)
    if getter is not None:
        try:
            raw = getter() or []
            ders = [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                    for c in raw]
            return [x509.load_der_x509_certificate(d) for d in ders]
        except (ValueError, AttributeError, ssl.SSLError):
            pass
    leaf = tls.getpeercert(binary_form=True)
    return [x509.load_der_x509_certificate(leaf)] if leaf else []


@dataclass(frozen=True, slots=True)
class TlsCheck:
    """The judgement of one established TLS session. `result_type` is RFC 8460's, set on failure."""

    ok: bool
    verified: bool  # the peer was authenticated (DANE or PKIX)
    result_type: str | None = None
    detail: str = ""
    version: str = ""
    cipher: str = ""

    def __str__(self) -> str:
        how = "verified" if self.verified else ("unverified" if self.ok else "FAILED")
        return f"{self.version} {self.cipher} {how}{': ' + self.detail if self.detail else ''}".strip()


def check_peer(tls: TlsObject, req: TlsRequirement, trust: TrustStore | None,
               now: dt.datetime | None = None) -> TlsCheck:
    """Judge the peer of an established session. Never raises for a bad certificate: a failure is a
    TlsCheck with ok=False. `trust` may be None when no requirement needs a CA (DANE, encrypt, may)."""
    cipher = tls.cipher()
    version, name = str(tls.version() or ""), (cipher[0] if cipher else "")
    names = req.names or (req.host,)
    if req.mode is TlsMode.DANE:
        failure = verify_dane(peer_chain(tls), req.tlsa, names=names, now=now)
        detail = "DANE: matched " + ", ".join(str(t)[:20] + "…" for t in req.tlsa) if failure is None else ""
    elif req.mode is TlsMode.VERIFY:
        if trust is None:
            failure = ("certificate-not-trusted", "no CA bundle to verify against")
        else:
            failure = verify_pkix(peer_chain(tls), names, trust, now)
        detail = f"PKIX: {names[0]} ({req.source.value})" if failure is None else ""
    else:
        return TlsCheck(True, False, None, "", version, name)
    if failure is None:
        return TlsCheck(True, True, None, detail, version, name)
    return TlsCheck(False, False, failure[0], failure[1], version, name)


def refusal_of(req: TlsRequirement, result: TlsCheck) -> TlsRefusal | None:
    """The refusal a failed check means for `req`: None when it passed or the policy only reports."""
    if result.ok or not req.enforced:
        return None
    # RFC 8689 §5: a REQUIRETLS message that cannot get verified TLS fails with 5.7.10 once it expires;
    # each attempt is a deferral like any other policy failure.
    return TlsRefusal("4.7.5", f"{req.host}: {result.detail} ({req.describe()})", result.result_type)


__all__ = ["TlsCheck", "check_peer", "peer_chain", "refusal_of", "starttls_context"]
