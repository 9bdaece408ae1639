"""Helpers of the gateway tests: a real GatewayHandler on 127.0.0.1 with the real scorer and fakes.

(A uniquely named module: test files import from here, never from conftest.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from mailbastion.apps.gateway import GatewayServer
from mailbastion.policy.check import Check
from mailbastion.policy.checks import import_all
from mailbastion.policy.checks.headers import headers
from mailbastion.policy.checks.helo import HeloCheck
from mailbastion.policy.checks.recipient import RecipientCheck
from mailbastion.policy.checks.relay import RelayCheck
from mailbastion.policy.pipeline import Pipeline
from mailbastion.policy.scoring import Scorer, Thresholds, load_score_table
from mailbastion.testing.fakes import FakeQuarantine, FakeRecipients, FakeSpool
from mailbastion.testing.smtp_dialogue import SmtpDialogue

import_all()  # registers every check

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
        "postmaster@example.net": "local",
        "postmaster@example.com": "local",
    })


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


async def send_message(d: SmtpDialogue, sender: str = "sender@example.org", rcpts: tuple[str, ...] = (
        "alice@example.net",), content: bytes = MESSAGE, helo: str = "mail.example.org") -> list[Any]:
    """EHLO, MAIL, RCPT..., DATA; returns every reply in order."""
    out = [await d.cmd(f"EHLO {helo}"), await d.cmd(f"MAIL FROM:<{sender}>")]
    for r in rcpts:
        out.append(await d.cmd(f"RCPT TO:<{r}>"))
    if any(r.code == 250 for r in out[2:]):
        out.append(await d.message(content))
    return out
