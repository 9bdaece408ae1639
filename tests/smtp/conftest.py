"""A real GatewayHandler on 127.0.0.1 with the real scorer, FakeSpool and FakeRecipients."""

from __future__ import annotations

import dataclasses
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import mailbastion.policy.checks  # noqa: F401  (registers every check)
from mailbastion.apps.gateway import GatewayServer, build_gateway
from mailbastion.config.loader import parse_settings
from mailbastion.pki import issue, make_ca
from mailbastion.policy.check import Check
from mailbastion.policy.checks.headers import headers
from mailbastion.policy.checks.helo import HeloCheck
from mailbastion.policy.checks.recipient import RecipientCheck
from mailbastion.policy.checks.relay import RelayCheck
from mailbastion.policy.pipeline import Pipeline
from mailbastion.policy.scoring import Scorer, Thresholds, load_score_table
from mailbastion.smtp.tls import server_context
from mailbastion.testing.fakes import FakeQuarantine, FakeRecipients, FakeSpool
from mailbastion.testing.smtp_dialogue import SmtpDialogue

HOST = "127.0.0.1"
OUR_HOST = "mx.example.net"
MESSAGE = (
    b"From: Sender <sender@example.org>\r\n"
    b"To: alice@example.net\r\n"
    b"Subject: hello\r\n"
    b"Date: Sat, 28 Nov 2026 03:00:00 +0000\r\n"
    b"Message-ID: <1@example.org>\r\n"
    b"\r\n"
    b"Hello Alice.\r\n"
)


def recipients() -> FakeRecipients:
    return FakeRecipients({
        "alice@example.net": "local",
        "bob@example.net": "disabled",
        "team@example.net": ["alice@example.net"],
        "carol@example.com": "local",
    })


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tls")
    make_ca(d / "ca.crt", d / "ca.key")
    issue(d / "ca.crt", d / "ca.key", d / "gw.crt", d / "gw.key", common_name=OUR_HOST, dns_names=[OUR_HOST],
          ips=[HOST])
    return {"ca": d / "ca.crt", "cert": d / "gw.crt", "key": d / "gw.key"}


@pytest.fixture
def client_tls(certs: dict[str, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs["ca"]))
    return ctx


@dataclasses.dataclass
class Gateway:
    server: GatewayServer
    spool: FakeSpool
    quarantine: FakeQuarantine
    port: int

    async def connect(self, **kw: Any) -> SmtpDialogue:
        return await SmtpDialogue.open(HOST, self.port, **kw)

    async def stop(self, drain: float = 1.0) -> None:
        await self.server.stop(drain)


def make_pipeline(thresholds: Thresholds | None = None, extra: list[Check] | None = None) -> Pipeline:
    rec = recipients()
    table = load_score_table()
    if thresholds is not None:
        table = dataclasses.replace(table, thresholds=thresholds)
    checks: list[Check] = [RelayCheck(rec), RecipientCheck(rec), HeloCheck(OUR_HOST, rec), headers, *(extra or [])]
    return Pipeline(checks, Scorer(table))


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def gateway_factory(certs: dict[str, Path]) -> AsyncIterator[GatewayFactory]:
    started: list[Gateway] = []

    async def make(*, smtp: dict[str, Any] | None = None, relay: list[str] | None = None, tls: bool = True,
                   spool: Any = None, thresholds: Thresholds | None = None, extra: list[Check] | None = None,
                   quarantine: bool = True) -> Gateway:
        settings = parse_settings({
            "server": {"hostname": OUR_HOST},
            "smtp": {"listen": [f"{HOST}:0"], **(smtp or {})},
            "relay": {"networks": relay or []},
        })
        spool = spool if spool is not None else FakeSpool()
        q = FakeQuarantine()
        ctx = server_context(certs["cert"], certs["key"]) if tls else None
        server = build_gateway(settings, pipeline=make_pipeline(thresholds, extra), recipients=recipients(),
                               spool=spool, quarantine=q if quarantine else None, tls_context=ctx)
        await server.start()
        gw = Gateway(server, spool, q, server.ports[0])
        started.append(gw)
        return gw

    yield make
    for gw in started:
        await gw.stop(0.5)


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> Gateway:
    return await gateway_factory()


async def send_message(d: SmtpDialogue, sender: str = "sender@example.org", rcpts: tuple[str, ...] = (
        "alice@example.net",), content: bytes = MESSAGE, helo: str = "mail.example.org") -> list[Any]:
    """EHLO, MAIL, RCPT..., DATA; returns every reply in order."""
    out = [await d.cmd(f"EHLO {helo}"), await d.cmd(f"MAIL FROM:<{sender}>")]
    for r in rcpts:
        out.append(await d.cmd(f"RCPT TO:<{r}>"))
    if any(r.code == 250 for r in out[2:]):
        out.append(await d.message(content))
    return out


@pytest.fixture
def smtp_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="mailbastion.smtp")
    return caplog
