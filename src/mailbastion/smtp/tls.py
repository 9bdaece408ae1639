"""TLS contexts: TLS 1.2 or newer, modern ciphers, and the mutual-TLS link between gateway and MDA.

    server_context(cert, key)                          public STARTTLS / implicit TLS
    server_context(cert, key, client_ca=ca)            MDA: refuses a client without a cert from our CA
    client_context(ca=ca, cert=c, key=k)               gateway → MDA: verifies the MDA, presents its own
"""

from __future__ import annotations

import ssl
from pathlib import Path

from mailbastion.core.peer import TlsInfo

# Forward-secret AEAD suites only for TLS 1.2 (TLS 1.3 suites are all strong and not set here).
TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
])

_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def _harden(ctx: ssl.SSLContext, min_version: str) -> ssl.SSLContext:
    ctx.minimum_version = _VERSIONS[min_version]
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


def server_context(
    cert: Path | str,
    key: Path | str,
    *,
    min_version: str = "TLSv1.2",
    client_ca: Path | str | None = None,
) -> ssl.SSLContext:
    """A server context. With `client_ca`, a client certificate signed by that CA is required."""
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), min_version)
    ctx.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        ctx.load_verify_locations(cafile=str(client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(
    *,
    ca: Path | str | None = None,
    cert: Path | str | None = None,
    key: Path | str | None = None,
    min_version: str = "TLSv1.2",
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A client context that verifies the server against `ca` (system CAs when None)."""
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), min_version)
    if ca is not None:
        ctx.load_verify_locations(cafile=str(ca))
    else:
        ctx.load_default_certs()
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    return ctx


def tls_info(obj: ssl.SSLObject | ssl.SSLSocket | None) -> TlsInfo | None:
    """What a Received header and the log line need to know about an established TLS session."""
    if obj is None:
        return None
    cipher = obj.cipher()
    if cipher is None:
        return None
    subject = None
    try:
        peer = obj.getpeercert()
    except (ValueError, ssl.SSLError):
        peer = None
    if peer:
        parts = [v for rdn in peer.get("subject", ()) for (k, v) in rdn if k == "commonName"]
        subject = parts[0] if parts else None
    return TlsInfo(version=str(obj.version()), cipher=cipher[0], bits=int(cipher[2] or 0), peer_cert_subject=subject)
