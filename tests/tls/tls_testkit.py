"""Helpers of the TLS tests: a deployment's certificates and configuration in a folder, our real listeners
(gateway: STARTTLS and implicit TLS; MDA: LMTP over mutual TLS) on loopback, and what a client sees.

(A uniquely named module: test files import from here, never from conftest.)
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from mailbastion.apps.gateway import GatewayServer, build_gateway
from mailbastion.apps.mda import build_mda
from mailbastion.config import Settings, load_settings
from mailbastion.directory import Directory
from mailbastion.mailbox.lmtp_server import MdaServer
from mailbastion.pki import make_deployment_pki
from mailbastion.policy.pipeline import Pipeline
from mailbastion.policy.scoring import Scorer, load_score_table
from mailbastion.tls_policy import server_context_from_settings
from mailbastion.testing.fakes import FakeRecipients, FakeSpool
from mailbastion.testing.smtp_dialogue import SmtpDialogue

HOST = "127.0.0.1"
HOSTNAME = "mail.example.test"

CONFIG = """\
[server]
hostname = "{hostname}"
data_dir = "."

[smtp]
listen = ["127.0.0.1:0"]
implicit_tls_listen = ["127.0.0.1:0"]

[lmtp]
listen = "127.0.0.1:0"
"""


def make_deployment(root: Path, *, hostname: str = HOSTNAME, extra: str = "") -> Path:
    """Certificates from `make_deployment_pki` (what `init` makes) and a configuration file; returns its path."""
    root.mkdir(parents=True, exist_ok=True)
    make_deployment_pki(root / "tls", hostname)
    config = root / "mailbastion.toml"
    config.write_text(CONFIG.format(hostname=hostname) + extra, encoding="utf-8")
    return config


def mb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m mailbastion ARGS` as a user runs it (PYTHONPATH is inherited)."""
    return subprocess.run([sys.executable, "-m", "mailbastion", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, check=False, env={**os.environ, "NO_COLOR": "1"})


@dataclass
class Listeners:
    settings: Settings
    gateway: GatewayServer
    mda: MdaServer
    starttls_port: int
    implicit_port: int
    lmtp_port: int

    async def stop(self) -> None:
        await self.gateway.stop(0.5)
        await self.mda.stop()


async def start_listeners(config: Path) -> Listeners:
    """The real gateway (its TLS context from server_context_from_settings) and the real MDA (build_mda)."""
    settings = load_settings(config)
    pipeline = Pipeline([], Scorer(load_score_table()))
    gateway = build_gateway(settings, pipeline=pipeline, recipients=FakeRecipients({"alice@example.test": "local"}),
                            spool=FakeSpool(), tls_context=server_context_from_settings(settings))
    await gateway.start()
    directory = Directory.create(settings)
    mda = build_mda(settings, directory=directory)
    await mda.start()
    assert gateway.listeners is not None
    ports = gateway.ports
    return Listeners(settings, gateway, mda, ports[0], ports[1], mda.port)


def client_context(settings: Settings, *, client_cert: bool = False) -> ssl.SSLContext:
    """A strict client: TLS 1.2+, verifies the chain against our CA and the name."""
    ctx = ssl.create_default_context(cafile=str(settings.path(settings.tls.ca)))
    if client_cert:
        ctx.load_cert_chain(settings.path(settings.tls.gateway_client_cert),
                            settings.path(settings.tls.gateway_client_key))
    return ctx


def _peer(writer: asyncio.StreamWriter) -> x509.Certificate:
    obj = writer.get_extra_info("ssl_object")
    der = obj.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der)


async def starttls_certificate(port: int, ctx: ssl.SSLContext, name: str = HOSTNAME) -> x509.Certificate:
    """EHLO, STARTTLS, handshake: the certificate the gateway presents."""
    async with await SmtpDialogue.open(HOST, port) as d:
        ehlo = await d.cmd("EHLO client.example.org")
        assert "STARTTLS" in ehlo.text
        reply = await d.starttls(ctx, server_hostname=name)
        assert reply.code == 220
        return _peer(d.writer)


async def implicit_tls_certificate(port: int, ctx: ssl.SSLContext, name: str = HOSTNAME) -> x509.Certificate:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(HOST, port, ssl=ctx, server_hostname=name), 10)
    try:
        await asyncio.wait_for(reader.readline(), 10)  # the greeting: the session is up
        return _peer(writer)
    finally:
        writer.close()


def issue_dated(ca_dir: Path, cert_path: Path, key_path: Path, *, days_from: int, days_to: int,
                name: str = HOSTNAME) -> None:
    """A leaf of the deployment's CA valid from today+days_from to today+days_to (expired ones, too)."""
    import datetime as dt

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from mailbastion.pki import load_chain, load_key

    ca, ca_key = load_chain(ca_dir / "ca.crt")[0], load_key(ca_dir / "ca.key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=days_from)).not_valid_after(now + dt.timedelta(days=days_to))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
