"""Measure 9, encryption: every listener's TLS against the Mozilla intermediate profile, live; the
certificate files (what `mailbastion tls status` shows); the outbound TLS policy; the confidential-mail
policy.

    TlsProbe(settings)             # the certificate files of every role, and the TLS floor
    ListenerTlsProbe(settings)     # each listener of this host's role, handshaken with Python's ssl module
    PolicyProbe(settings)          # [outbound] MTA-STS / DANE, [encryption] protection of confidential mail

A live check connects to each listener (SMTP STARTTLS, implicit TLS, LMTP with our client certificate,
the portal's HTTPS, IMAP's two when enabled) and wants: TLS 1.2 and 1.3 accepted (1.2 only when
tls.min_version allows it), TLS 1.0 and 1.1 refused, the certificate valid for at most 366 days with a
Subject and an Authority Key Identifier, and the groups the profile leaves out (X448, secp521r1) refused.
A protocol or group this client cannot even offer (OpenSSL's own floor) is reported "not offered", not
passed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import socket
import ssl
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailbastion.measures.board import MET, NOT_MET, PARTIAL, WARN, MeasureResult
from mailbastion.measures.smtp_probe import HELO, connect_host, parse_hostport

if TYPE_CHECKING:
    from mailbastion.config import Settings

__all__ = ["Endpoint", "ListenerTlsProbe", "PolicyProbe", "TlsProbe", "endpoints", "inspect_endpoint"]

TIMEOUT = 20.0
MAX_DAYS = 366
EXCLUDED_GROUPS = ("X448", "secp521r1")
_LABELS = {ssl.TLSVersion.TLSv1_3: "TLS 1.3", ssl.TLSVersion.TLSv1_2: "TLS 1.2", ssl.TLSVersion.TLSv1_1: "TLS 1.1",
           ssl.TLSVersion.TLSv1: "TLS 1.0"}


# The certificates each role holds: (what for, tls.* key of the certificate, of the key).
_PUBLIC = ("public (MX, portal)", "cert", "key")
CERTIFICATE_FILES = {
    "all": (_PUBLIC, ("MDA", "mda_cert", "mda_key"), ("gateway client", "gateway_client_cert", "gateway_client_key")),
    "gateway": (("public (MX)", "cert", "key"), ("gateway client", "gateway_client_cert", "gateway_client_key"),
                ("gateway link", "link_cert", "link_key")),
    "internal": (("users' services (portal, IMAP)", "cert", "key"), ("MDA", "mda_cert", "mda_key"),
                 ("internal client", "internal_client_cert", "internal_client_key")),
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    host: str
    port: int
    kind: str  # "smtp-starttls" | "imap-starttls" | "tls"
    client_cert: tuple[str, str] | None = None  # (cert, key) to present on a mutual-TLS link


def endpoints(settings: Settings) -> list[Endpoint]:
    """The TLS listeners of this host's role."""
    s = settings
    role = s.server.role
    out: list[Endpoint] = []

    # A mutual-TLS listener wants a certificate from our CA: the one its peer presents when this host holds it,
    # else another client certificate of ours (the TLS handshake is what is measured; who may do what after it
    # is the listener's business).
    ours = [(s.tls.internal_client_cert, s.tls.internal_client_key),
            (s.tls.gateway_client_cert, s.tls.gateway_client_key)]

    def add(name: str, listen: str, kind: str, client: tuple[str, str] | None = None) -> None:
        bound, port = parse_hostport(listen)
        pair = None
        for cert, key in ([client, *ours] if client else []):
            if s.path(cert).exists() and s.path(key).exists():
                pair = (str(s.path(cert)), str(s.path(key)))
                break
        out.append(Endpoint(name, connect_host(bound), port, kind, pair))

    if role in ("all", "gateway"):
        for a in s.smtp.listen:
            add(f"SMTP {a} (STARTTLS)", a, "smtp-starttls")
        for a in s.smtp.implicit_tls_listen:
            add(f"SMTPS {a}", a, "tls")
        for a in s.relay_in.listen:
            add(f"relay listener {a}", a, "tls", (s.tls.internal_client_cert, s.tls.internal_client_key))
        if s.map_push.listen:
            add(f"map push {s.map_push.listen}", s.map_push.listen, "tls",
                (s.tls.internal_client_cert, s.tls.internal_client_key))
    if role in ("all", "internal"):
        add(f"LMTP {s.lmtp.listen}", s.lmtp.listen, "tls", (s.tls.gateway_client_cert, s.tls.gateway_client_key))
        if s.portal.enabled:
            add(f"portal https://{s.portal.listen}", s.portal.listen, "tls")
        if s.imap.enabled:
            for a in s.imap.listen:
                add(f"IMAP {a} (STARTTLS)", a, "imap-starttls")
            for a in s.imap.listen_tls:
                add(f"IMAPS {a}", a, "tls")
        if s.submission.enabled:
            for a in s.submission.listen:
                add(f"submission {a} (STARTTLS)", a, "smtp-starttls")
            for a in s.submission.listen_tls:
                add(f"submission {a} (implicit TLS)", a, "tls")
    return out


def _context(ep: Endpoint, version: ssl.TLSVersion | None = None, group: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # we inspect the certificate ourselves; trust is not what is measured
    if version is not None:
        if version < ssl.TLSVersion.TLSv1_2:
            ctx.set_ciphers("ALL:@SECLEVEL=0")  # let this client offer the old protocols at all
        ctx.minimum_version = ctx.maximum_version = version
    if group is not None:
        ctx.set_ecdh_curve(group)
    if ep.client_cert is not None:
        ctx.load_cert_chain(*ep.client_cert)
    return ctx


def _plain_start(sock: socket.socket, kind: str) -> None:
    """Bring a plain-text connection to the point where TLS starts. Raises OSError."""
    f = sock.makefile("rb")
    try:
        if kind == "smtp-starttls":
            def reply() -> bytes:
                line = f.readline()
                while line[3:4] == b"-":
                    line = f.readline()
                return line
            reply()
            sock.sendall(b"EHLO " + HELO + b"\r\n")
            reply()
            sock.sendall(b"STARTTLS\r\n")
            if not reply().startswith(b"220"):
                raise OSError("STARTTLS refused")
        elif kind == "imap-starttls":
            f.readline()
            sock.sendall(b"a1 STARTTLS\r\n")
            line = f.readline()
            while line.startswith(b"*"):
                line = f.readline()
            if not line.startswith(b"a1 OK"):
                raise OSError("STARTTLS refused")
    finally:
        f.close()


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    offered: bool  # False: this client could not even offer it (no ClientHello left our side)
    version: str
    der: bytes | None
    error: str


def _openssl_group(ep: Endpoint, group: str) -> Attempt:
    """A handshake offering only `group`, by `openssl s_client` (Python's ssl cannot name X25519 or X448 on
    every build: Debian's 3.11 knows only EC curves there)."""
    exe = shutil.which("openssl")
    if exe is None:
        return Attempt(False, False, "", None, "neither this Python nor an openssl command can offer it")
    cmd = [exe, "s_client", "-connect", f"{ep.host}:{ep.port}", "-groups", group, "-tls1_3", "-brief"]
    if ep.kind == "smtp-starttls":
        cmd += ["-starttls", "smtp", "-name", HELO.decode()]
    elif ep.kind == "imap-starttls":
        cmd += ["-starttls", "imap"]
    if ep.client_cert is not None:
        cmd += ["-cert", ep.client_cert[0], "-key", ep.client_cert[1]]
    try:
        res = subprocess.run(cmd, input=b"", capture_output=True, timeout=TIMEOUT * 2, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Attempt(False, False, "", None, f"openssl s_client: {exc}")
    out = res.stdout + res.stderr
    if res.returncode == 0 and b"CONNECTION ESTABLISHED" in out:
        return Attempt(True, True, "TLSv1.3", None, "")
    return Attempt(False, True, "", None, out.decode(errors="replace").strip().splitlines()[-1:][0]
                   if out.strip() else f"openssl s_client exited {res.returncode}")


def attempt(ep: Endpoint, version: ssl.TLSVersion | None = None, group: str | None = None) -> Attempt:
    try:
        ctx = _context(ep, version, group)
    except (ssl.SSLError, ValueError) as exc:
        if group is not None:
            return _openssl_group(ep, group)
        return Attempt(False, False, "", None, str(exc))
    try:
        with socket.create_connection((ep.host, ep.port), timeout=TIMEOUT) as raw:
            _plain_start(raw, ep.kind)
            with ctx.wrap_socket(raw, server_hostname=None) as tls:
                return Attempt(True, True, tls.version() or "", tls.getpeercert(binary_form=True), "")
    except ssl.SSLError as exc:
        local = "NO_PROTOCOLS_AVAILABLE" in str(exc) or "NO_CIPHERS_AVAILABLE" in str(exc)
        return Attempt(False, not local, "", None, str(exc.reason or exc))
    except OSError as exc:
        return Attempt(False, True, "", None, f"{type(exc).__name__}: {exc}")


def _certificate(der: bytes) -> list[str]:
    """Problems of the listener's certificate against the profile (validity, SKI, AKI)."""
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    bad = []
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    if days > MAX_DAYS:
        bad.append(f"certificate valid for {days} days (at most {MAX_DAYS})")
    if cert.not_valid_after_utc <= dt.datetime.now(dt.UTC):
        bad.append("certificate expired")
    for ext, name in ((x509.SubjectKeyIdentifier, "Subject Key Identifier"),
                      (x509.AuthorityKeyIdentifier, "Authority Key Identifier")):
        try:
            cert.extensions.get_extension_for_class(ext)
        except x509.ExtensionNotFound:
            bad.append(f"certificate without {name}")
    return bad


def inspect_endpoint(ep: Endpoint, min_version: str) -> tuple[list[str], list[str]]:
    """(problems, evidence lines) of one listener."""
    problems: list[str] = []
    seen = []
    plain = attempt(ep)
    if not plain.ok:
        return [f"{ep.name}: no TLS handshake: {plain.error}"], []
    seen.append(f"negotiates {plain.version}")
    if plain.der is not None:
        problems += [f"{ep.name}: {p}" for p in _certificate(plain.der)]
    want = {ssl.TLSVersion.TLSv1_3: True, ssl.TLSVersion.TLSv1_2: min_version == "TLSv1.2",
            ssl.TLSVersion.TLSv1_1: False, ssl.TLSVersion.TLSv1: False}
    for version, accept in want.items():
        got = attempt(ep, version)
        label = _LABELS[version]
        if not got.offered and not accept:
            seen.append(f"{label} not offered by this client (OpenSSL floor)")
        elif got.ok == accept:
            seen.append(f"{label} {'accepted' if accept else 'refused'}")
        else:
            problems.append(f"{ep.name}: {label} {'refused' if accept else 'ACCEPTED'}")
    for group in EXCLUDED_GROUPS:
        got = attempt(ep, ssl.TLSVersion.TLSv1_3, group)
        if not got.offered:
            seen.append(f"{group} not offered by this client")
        elif got.ok:
            problems.append(f"{ep.name}: group {group} ACCEPTED")
        else:
            seen.append(f"{group} refused")
    return problems, [f"{ep.name}: " + ", ".join(seen)]


class ListenerTlsProbe:
    numbers: tuple[int, ...] = (9,)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self) -> Sequence[MeasureResult]:
        return [await asyncio.to_thread(self._check)]

    def _check(self) -> MeasureResult:
        problems: list[str] = []
        lines: list[str] = []
        eps = endpoints(self.settings)
        for ep in eps:
            p, seen = inspect_endpoint(ep, self.settings.tls.min_version)
            problems += p
            lines += seen
        if problems:
            return MeasureResult(9, NOT_MET, "; ".join(problems[:5]), tuple(problems + lines), "mailbastion audit",
                                 fix="every listener must use tls_policy.py's contexts; renew certificates with "
                                 "`mailbastion tls renew`")
        return MeasureResult(9, MET, f"{len(eps)} TLS listener(s) meet the Mozilla intermediate profile",
                             tuple(lines), "mailbastion audit")


class TlsProbe:
    """The certificate files of every role: present, matching their key, not expired; the TLS floor."""

    numbers: tuple[int, ...] = (9,)

    def __init__(self, settings: Settings, *, complete: bool = False) -> None:
        self.settings = settings
        self.complete = complete  # False (the portal): outbound policy and live listeners are not probed here

    async def __call__(self) -> Sequence[MeasureResult]:
        return [await asyncio.to_thread(self._check)]

    def _check(self) -> MeasureResult:
        from mailbastion.pki import key_matches, load_chain, load_key, read_certificate

        s = self.settings
        bad, warn, lines = [], [], [f"TLS floor: {s.tls.min_version} (Mozilla intermediate ciphers)"]
        for role, cert_key, key_key in CERTIFICATE_FILES[s.server.role]:
            cert, key = s.path(getattr(s.tls, cert_key)), s.path(getattr(s.tls, key_key))
            try:
                info = read_certificate(cert)
                if not key_matches(load_chain(cert)[0], load_key(key)):
                    bad.append(f"{role}: the key does not belong to the certificate")
                    continue
            except Exception as exc:  # noqa: BLE001 - missing or unreadable: reported, not raised
                bad.append(f"{role}: {str(exc).splitlines()[0][:200]}")
                continue
            left = info.days_left()
            lines.append(f"{role}: {info.subject}, until {info.not_after:%Y-%m-%d} ({left} days)")
            if info.not_after <= dt.datetime.now(dt.UTC):
                bad.append(f"{role}: expired")
            elif left < s.tls.expiry_warning_days:
                warn.append(f"{role}: expires in {left} days")
        if bad:
            return MeasureResult(9, NOT_MET, "; ".join(bad), tuple(lines), "mailbastion tls status")
        if warn:
            return MeasureResult(9, WARN, "; ".join(warn), tuple(lines), "mailbastion tls status")
        if self.complete:
            return MeasureResult(9, MET, "certificate files valid", tuple(lines), "mailbastion tls status")
        return MeasureResult(9, PARTIAL, "certificates valid, TLS 1.2 or newer; outbound TLS policy and "
                             "encryption at rest are not probed here", tuple(lines), "mailbastion tls status")


class PolicyProbe:
    """The outbound TLS policy (MTA-STS, DANE) and the confidential-mail policy, as configured."""

    numbers: tuple[int, ...] = (9,)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self) -> Sequence[MeasureResult]:
        o, e = self.settings.outbound, self.settings.encryption
        lines = [f"outbound MTA-STS: {'on' if o.mta_sts else 'off'}",
                 "outbound DANE: " + (f"on, resolver {o.dnssec_resolver}" if o.dnssec_resolver
                                      else "off (no validating resolver: outbound.dnssec_resolver)"),
                 f"per-domain TLS policy: {len(o.tls_policy)} entr{'y' if len(o.tls_policy) == 1 else 'ies'}",
                 f"TLS-RPT: {'on' if o.tls_rpt else 'off'}",
                 f"confidential mail: {'protected' if e.enabled else 'OFF'} (without a key: {e.without_key})"]
        bad = []
        if not (o.mta_sts or o.dnssec_resolver):
            bad.append("no outbound TLS policy: neither MTA-STS nor DANE is on")
        if not e.enabled:
            bad.append("the confidential-mail policy is off ([encryption] enabled = false)")
        if bad:
            return [MeasureResult(9, NOT_MET, "; ".join(bad), tuple(lines), "mailbastion config",
                                  fix="set outbound.mta_sts = true (and a DNSSEC resolver for DANE); "
                                  "[encryption] enabled = true")]
        return [MeasureResult(9, MET, "outbound TLS policy and confidential-mail policy on", tuple(lines),
                              "mailbastion config")]
