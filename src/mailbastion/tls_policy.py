"""TLS contexts: the one place where every listener's TLS policy is set (Mozilla's "intermediate" profile).

    server_context_from_settings(settings)              public listeners: SMTP STARTTLS / implicit TLS,
                                                        and later submission and IMAP (role "public")
    server_context_from_settings(settings, "mda")       the MDA's LMTP: a client certificate of our CA required
    lmtp_client_context_from_settings(settings)         gateway → MDA: verifies the MDA, presents its own
    reload_server_context(live, settings[, role])       SIGHUP: validate the files again, load them in place
    server_context(cert, key[, client_ca=ca])           the same policy from explicit paths (tests, tools)
    client_context(ca=ca, cert=c, key=k)                outbound: TLS 1.2+, verifies the server

The policy (Mozilla server-side TLS, version 5.7, "intermediate"; checked by sslyze in tests/tls):
TLS 1.2 and 1.3 only; the profile's TLS 1.2 cipher list in the profile's order (all forward-secret AEAD),
the client choosing among them (`server_preferred_order: false`); no compression, no client-initiated
renegotiation, no session tickets (the forward secrecy of a ticket depends on rotating its key, which a
long-running process does not). Key exchange groups: the profile allows X25519, P-256 and P-384, and
OpenSSL would add X448 and P-521. Python 3.11's ssl module can limit the groups only through
`set_ecdh_curve`, which keeps exactly one: we keep P-256 (prime256v1), the group every TLS client must
implement (RFC 8446 §9.1), so nobody is locked out; a client whose first key share is X25519 gets a
HelloRetryRequest (one more round trip). docs/architecture.md (change 26) says why not the other routes.

Every `*_from_settings` function refuses to start (ConfigError: the configuration file, the key and why)
when a configured certificate or key is missing, unreadable, unparsable or not a pair: a listener that
silently drops STARTTLS is worse than one that does not start.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import ssl
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cryptography import x509

from mailbastion.core.errors import ConfigError
from mailbastion.durable import write_durably, write_fd
from mailbastion.pki import key_matches, parse_key

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings

__all__ = [
    "MOZILLA_INTERMEDIATE_CIPHERS", "SERVER_GROUP", "TLS12_CIPHERS", "ServerRole", "client_context",
    "lmtp_client_context_from_settings", "reload_server_context", "server_context", "server_context_from_settings",
]

log = logging.getLogger("mailbastion.tls")

# Mozilla intermediate v5.7, in the profile's order. The DHE suites are negotiated only with an RSA
# certificate and DH parameters, which we never load: listed so that the policy is the profile, unchanged.
MOZILLA_INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305",
)
TLS12_CIPHERS = ":".join(MOZILLA_INTERMEDIATE_CIPHERS)
# TLS 1.3 suites are not set: OpenSSL's defaults are exactly the profile's three (and Python 3.11 cannot set them).
SERVER_GROUP = "prime256v1"  # see the module docstring: one group is all Python 3.11 can set

_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}

ServerRole = Literal["public", "mda"]


def _harden(ctx: ssl.SSLContext, min_version: str) -> ssl.SSLContext:
    ctx.minimum_version = _VERSIONS[min_version]
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return ctx


def _server_policy(ctx: ssl.SSLContext, min_version: str) -> ssl.SSLContext:
    _harden(ctx, min_version)
    ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE  # Mozilla intermediate: server_preferred_order false
    ctx.options |= ssl.OP_NO_TICKET
    ctx.set_ecdh_curve(SERVER_GROUP)
    return ctx


def server_context(
    cert: Path | str,
    key: Path | str,
    *,
    min_version: str = "TLSv1.2",
    client_ca: Path | str | None = None,
) -> ssl.SSLContext:
    """A server context with the listener policy. With `client_ca`, a client certificate signed by that CA
    is required. Raises OSError / ssl.SSLError as `load_cert_chain` does (the apps use the
    `*_from_settings` functions, which explain the problem instead)."""
    ctx = _server_policy(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), min_version)
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


# --- from the configuration ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pair:
    """A certificate chain and its key as read once from disk: what is checked is what gets loaded."""

    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes | None


_LABELS = {"public": "public", "mda": "MDA", "lmtp-client": "gateway's LMTP client"}


def _read(settings: Settings, key: str, what: str) -> tuple[Path, bytes]:
    path = settings.path(getattr(settings.tls, key))
    source = str(settings.source) if settings.source else None
    try:
        return path, path.read_bytes()
    except FileNotFoundError:
        hint = "run `mailbastion init`, `mailbastion tls renew` or `mailbastion tls import`"
        raise ConfigError(f"the {what} {path} does not exist ({hint})", file=source, key=f"tls.{key}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror} (running as uid {os.getuid()})",
                          file=source, key=f"tls.{key}") from None


def _check(settings: Settings, role: ServerRole | Literal["lmtp-client"]) -> _Pair:
    """Read and check the files of `role`; raise ConfigError naming the file and key, log expiry."""
    cert_key, key_key = {"public": ("cert", "key"), "mda": ("mda_cert", "mda_key"),
                         "lmtp-client": ("gateway_client_cert", "gateway_client_key")}[role]
    source = str(settings.source) if settings.source else None
    label = _LABELS[role]
    cert_path, cert_pem = _read(settings, cert_key, f"{label} certificate")
    key_path, key_pem = _read(settings, key_key, f"{label} private key")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise ConfigError(f"{cert_path} holds no PEM certificate", file=source, key=f"tls.{cert_key}") from None
    try:
        private = parse_key(key_pem, key_path)
    except ConfigError as exc:
        raise ConfigError(str(exc), file=source, key=f"tls.{key_key}") from None
    if not key_matches(chain[0], private):
        raise ConfigError(f"the private key {key_path} does not belong to the {label} certificate {cert_path}",
                          file=source, key=f"tls.{key_key}")
    if os.stat(key_path).st_mode & stat.S_IROTH:
        log.warning("tls: the private key %s is readable by every user: chmod 600 it", key_path)
    _log_expiry(cert_path, chain[0], settings.tls.expiry_warning_days)
    ca_pem = None
    if role != "public":
        _, ca_pem = _read(settings, "ca", "internal CA certificate")
    return _Pair(cert_pem, key_pem, ca_pem)


def _log_expiry(path: Path, cert: x509.Certificate, warn_days: int) -> None:
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    if left.total_seconds() <= 0:
        log.error("tls: the certificate %s EXPIRED on %s: renew it (`mailbastion tls renew` or `tls import`)",
                  path, f"{cert.not_valid_after_utc:%Y-%m-%d}")
    elif left.days < warn_days:
        log.warning("tls: the certificate %s expires in %d days (%s): renew it", path, left.days,
                    f"{cert.not_valid_after_utc:%Y-%m-%d}")


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """A path to `data` that never touches a disk (memfd on Linux): OpenSSL loads keys from paths only."""
    if not hasattr(os, "memfd_create") or not os.path.isdir("/proc/self/fd"):
        with tempfile.TemporaryDirectory(prefix="mailbastion-tls-") as tmp:  # 0700, removed at once
            path = Path(tmp) / "pair.pem"
            write_durably(path, data, exclusive=True)
            yield str(path)
        return
    fd = os.memfd_create("mailbastion-tls", os.MFD_CLOEXEC)
    try:
        write_fd(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _load(ctx: ssl.SSLContext, pair: _Pair) -> None:
    with _memory_file(pair.cert_pem + b"\n" + pair.key_pem) as path:
        ctx.load_cert_chain(path)
    if pair.ca_pem is not None:
        ctx.load_verify_locations(cadata=pair.ca_pem.decode("ascii"))


def _build(settings: Settings, role: ServerRole, pair: _Pair) -> ssl.SSLContext:
    source = str(settings.source) if settings.source else None
    key = "tls.cert" if role == "public" else "tls.mda_cert"
    ctx = _server_policy(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), settings.tls.min_version)
    try:
        _load(ctx, pair)
    except (ssl.SSLError, ValueError, OSError) as exc:  # e.g. a key OpenSSL's security level refuses
        raise ConfigError(f"OpenSSL refuses the certificate, key or CA: {exc}", file=source, key=key) from None
    if role == "mda":
        ctx.verify_mode = ssl.CERT_REQUIRED
        if not settings.lmtp.require_client_cert:
            # Weakened on purpose by the site: clients without a certificate may connect (and are then
            # not trusted with XMAILBASTION).
            ctx.verify_mode = ssl.CERT_OPTIONAL
            log.warning("config.weakened lmtp.require_client_cert=false: LMTP clients need no certificate")
    return ctx


def server_context_from_settings(settings: Settings, role: ServerRole = "public") -> ssl.SSLContext:
    """The context of a listener of `role`: "public" (tls.cert/tls.key: the MX's STARTTLS and implicit TLS,
    submission, IMAP) or "mda" (tls.mda_cert/tls.mda_key; clients need a certificate of tls.ca unless
    lmtp.require_client_cert = false). Raises ConfigError when a file is missing, unreadable, not PEM, or
    the key is not the certificate's: the caller must not start. Logs an expired or expiring certificate."""
    return _build(settings, role, _check(settings, role))


def lmtp_client_context_from_settings(settings: Settings) -> ssl.SSLContext:
    """The gateway's LMTP client context: verifies the MDA against tls.ca and presents
    tls.gateway_client_cert. Raises ConfigError as server_context_from_settings does."""
    pair = _check(settings, "lmtp-client")
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), settings.tls.min_version)
    try:
        _load(ctx, pair)
    except (ssl.SSLError, ValueError, OSError) as exc:
        raise ConfigError(f"OpenSSL refuses the gateway client certificate, key or CA: {exc}",
                          file=str(settings.source) if settings.source else None,
                          key="tls.gateway_client_cert") from None
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def reload_server_context(live: ssl.SSLContext, settings: Settings, role: ServerRole = "public") -> None:
    """SIGHUP: read the files of `role` again, check them (as server_context_from_settings does, and by
    loading them into a fresh context), then load that same snapshot into `live`, in place: every listener
    holding `live` (STARTTLS and implicit TLS alike) uses the new certificate from its next handshake on;
    sessions already open are untouched. Raises ConfigError, and leaves `live` as it was, when the new
    files do not pass. The TLS policy itself (versions, ciphers) is not changed by a reload."""
    pair = _check(settings, role)
    _build(settings, role, pair)  # validation: raises before `live` is touched
    _load(live, pair)
    log.info("tls: %s certificate reloaded from %s", role,
             settings.path(settings.tls.cert if role == "public" else settings.tls.mda_cert))
