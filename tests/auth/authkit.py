"""Shared test rig for sender authentication: a real DNS server on loopback, keys, signed messages.

Imported by tests/auth/* and tests/policy/checks/test_{spf,dkim,dmarc,arc,from_header}.py.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailbastion.apps.feature_auth import build
from mailbastion.apps.features import Services
from mailbastion.config.loader import parse_settings
from mailbastion.core.address import Address, parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Verdict
from mailbastion.dns.resolver import DnsResolver
from mailbastion.policy.check import CheckContext
from mailbastion.policy.checks.dmarc import DmarcCheck
from mailbastion.policy.pipeline import Pipeline
from mailbastion.policy.scoring import Scorer, load_score_table
from mailbastion.testing.dns_server import DnsTestServer

AUTHSERV_ID = "mx.ours.test"


@dataclass
class SigningKey:
    domain: str
    selector: str
    private: bytes  # as dkimpy's sign() wants it
    record: str  # the TXT value to publish
    algorithm: bytes = b"rsa-sha256"

    def sign(self, raw: bytes, *, include: list[bytes] | None = None) -> bytes:
        return dkim.sign(raw, self.selector.encode(), self.domain.encode(), self.private,
                         signature_algorithm=self.algorithm, include_headers=include,
                         canonicalize=(b"relaxed", b"relaxed")) + raw

    def arc_seal(self, raw: bytes, srv_id: str) -> bytes:
        headers = dkim.arc_sign(raw, self.selector.encode(), self.domain.encode(), self.private, srv_id.encode())
        return b"".join(headers) + raw


def rsa_key(domain: str, selector: str = "sel", bits: int = 2048) -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return SigningKey(domain, selector, pem, f"v=DKIM1; k=rsa; p={base64.b64encode(pub).decode()}")


def ed_key(domain: str, selector: str = "ed") -> SigningKey:
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SigningKey(domain, selector, base64.b64encode(seed), f"v=DKIM1; k=ed25519; p={base64.b64encode(pub).decode()}",
                   b"ed25519-sha256")


def message(from_: str = "Alice <alice@example.org>", *, to: str = "bob@ours.test", subject: str = "hello",
            extra: str = "", body: str = "Hello Bob.\r\n") -> bytes:
    head = f"From: {from_}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Sat, 28 Nov 2026 03:00:00 +0000\r\n" \
           f"Message-ID: <{abs(hash((from_, subject, extra)))}@test>\r\n{extra}"
    return (head + "\r\n" + body).encode()


@dataclass
class Rig:
    """A DNS server on loopback, a resolver pointed at it, and the auth feature's checks in a Pipeline."""

    dns: DnsTestServer
    resolver: DnsResolver
    auth: dict[str, object] = field(default_factory=dict)
    sample: Callable[[], float] | None = None
    settings: dict[str, object] = field(default_factory=dict)  # other sections (spam.rules.extra_domains...)

    def publish(self, key: SigningKey) -> SigningKey:
        self.dns.add(f"{key.selector}._domainkey.{key.domain}", "TXT", key.record)
        return key

    def pipeline(self) -> Pipeline:
        settings = parse_settings({**self.settings, "server": {"hostname": AUTHSERV_ID}, "auth": dict(self.auth)})
        checks = build(Services(settings, self.resolver)).checks()
        if self.sample is not None:
            for c in checks:
                if isinstance(c, DmarcCheck):
                    c.sample = self.sample
        table = load_score_table()
        return Pipeline(checks, Scorer(table))

    async def judge(self, raw: bytes, *, ip: str = "192.0.2.10", sender: str | None = "alice@example.org",
                    helo: str = "mail.example.org") -> tuple[Verdict, CheckContext]:
        pipe = self.pipeline()
        env = Envelope(sender=parse_address(sender) if sender else None, recipients=(Address("bob", "ours.test"),),
                       helo=helo)
        ctx = CheckContext(Stage.DATA, PeerInfo(ip=ip, helo=helo), env, message=SpooledMessage(raw))
        outcome = await pipe.run_stage(ctx)
        return pipe.decide(outcome.symbols, outcome.forced, outcome.edits), ctx


def names(verdict: Verdict) -> set[str]:
    return set(verdict.symbol_names)


# Fixtures: a test module does `from authkit import dns_server, resolver, rig` to use them.
import pytest


@pytest.fixture
def dns_server():  # type: ignore[no-untyped-def]
    server = DnsTestServer().start()
    yield server
    # socketserver's shutdown polls every 0.5 s; each test has its own port, so nobody waits for it.
    threading.Thread(target=server.stop, daemon=True).start()


@pytest.fixture
def resolver(dns_server: DnsTestServer) -> DnsResolver:
    return DnsResolver([dns_server.host], port=dns_server.port, timeout=0.5)


@pytest.fixture
def rig(dns_server: DnsTestServer, resolver: DnsResolver) -> Rig:
    return Rig(dns_server, resolver)
