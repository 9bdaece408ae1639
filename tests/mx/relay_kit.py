"""(A uniquely named module, not conftest, so test modules can import it.)

The gateway's relay listener run in the test's own event loop: the real listener (implicit mutual TLS on
loopback), the outbound pipeline built from the real features (YARA and the attachment policy, the spam
filter), a real spool; and SMTP clients presenting the certificates of each role of a test PKI.

    async with RelayWorld.start(tmp_path, pki) as w:
        reply = await w.send(b"...", cert="internal")       # (code, text) of the end of DATA
        w.spool_ids()                                          # what was committed
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib

from mailbastion.apps.features import Services, build_outbound_pipeline, load_features
from mailbastion.apps.gateway import RelayServer, build_relay
from mailbastion.config import Settings, load_settings
from mailbastion.dns.resolver import DnsResolver
from mailbastion.spool.layout import QueueState
from mailbastion.spool.writer import Spool
from mailbastion.testing.deployment import free_port
from mailbastion.tls_policy import client_context

CLIENT_CERTS = {"internal": "internal-client", "gateway": "gateway-client", "mda": "mda"}

CONFIG = """\
[server]
hostname = "gw.example.test"
data_dir = "."
[relay_in]
listen = ["127.0.0.1:{port}"]
[tls]
cert = "{tls}/gateway.crt"
key = "{tls}/gateway.key"
ca = "{tls}/ca.crt"
link_cert = "{tls}/gateway-link.crt"
link_key = "{tls}/gateway-link.key"
internal_client_cert = "{tls}/internal-client.crt"
internal_client_key = "{tls}/internal-client.key"
[dns]
nameservers = ["127.0.0.1"]
port = {dns_port}
timeout = 1.0
[antivirus]
stale_policy = "alarm_only"
[antivirus.clamav]
{clamav}
"""


def write_config(folder: Path, tls: Path, *, port: int, dns_port: int = 9, extra: str = "",
                 clamav: str = "enabled = false") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mailbastion.toml"
    path.write_text(CONFIG.format(port=port, tls=tls, dns_port=dns_port, clamav=clamav) + extra)
    return path


def client_tls(tls: Path, cert: str | None) -> ssl.SSLContext:
    """What a client of the relay listener presents: the certificate of a role of our CA, or none."""
    if cert is None:
        return client_context(ca=tls / "ca.crt", check_hostname=False)
    name = CLIENT_CERTS.get(cert, cert)
    return client_context(ca=tls / "ca.crt", cert=tls / f"{name}.crt", key=tls / f"{name}.key", check_hostname=False)


@dataclass
class RelayWorld:
    settings: Settings
    spool: Spool
    relay: RelayServer
    features: list[object]
    tls: Path

    @property
    def port(self) -> int:
        return self.relay.ports[0]

    @staticmethod
    @contextlib.asynccontextmanager
    async def start(folder: Path, tls: Path, *, extra: str = "",
                    clamav: str = "enabled = false") -> AsyncIterator[RelayWorld]:
        settings = load_settings(write_config(folder, tls, port=free_port(), extra=extra, clamav=clamav))
        services = Services(settings, DnsResolver(["127.0.0.1"], port=9, timeout=1))
        features = load_features(services, ("antivirus", "spam"))
        for f in features:
            await f.start()
        spool = Spool.from_settings(settings)
        relay = build_relay(settings, pipeline=build_outbound_pipeline(settings, features), spool=spool)
        assert relay is not None
        await relay.start()
        try:
            yield RelayWorld(settings, spool, relay, list(features), tls)
        finally:
            await relay.stop(1)
            for f in features:
                await f.stop()

    def spool_ids(self) -> list[str]:
        return self.spool.layout.ids(QueueState.INCOMING)

    async def connect(self, cert: str | None = "internal") -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=self.port, use_tls=True,
                               tls_context=client_tls(self.tls, cert), local_hostname="internal.example.test",
                               timeout=60)
        await smtp.connect()
        return smtp

    async def send(self, message: bytes, *, cert: str | None = "internal", sender: str = "alice@example.test",
                   rcpts: tuple[str, ...] = ("bob@remote.test",)) -> tuple[int, str]:
        """The reply to the end of DATA (or to the first refused command)."""
        try:
            smtp = await self.connect(cert)
        except aiosmtplib.SMTPConnectResponseError as exc:  # refused at the greeting
            return exc.code, exc.message
        try:
            await smtp.ehlo()
            await smtp.mail(sender)
            for r in rcpts:
                await smtp.rcpt(r)
            response = await smtp.data(message)
            return response.code, response.message
        except aiosmtplib.SMTPResponseException as exc:
            return exc.code, exc.message
        finally:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await smtp.quit()
