"""The engine on its own, on 127.0.0.1: a recording handler (no policy) behind real listeners.

    engine = await start_engine(RecordingHandler(), tls=ctx)        # SMTP; protocol="lmtp" for LMTP
    d = await engine.connect()
    ...
    await engine.stop()

(A uniquely named module: test files import from here, never from conftest.)
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Sequence
from typing import Any

from mailbastion.core import replies
from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo
from mailbastion.core.replies import Reply
from mailbastion.smtp.edge import EdgeConfig, SmtpEdge
from mailbastion.smtp.handler import BaseHandler
from mailbastion.smtp.limits import EdgeLimits, NetworkList
from mailbastion.smtp.listeners import Listeners
from mailbastion.testing.smtp_dialogue import SmtpDialogue

HOST = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class Received:
    peer: PeerInfo
    envelope: Envelope
    content: bytes


class RecordingHandler(BaseHandler):
    """Accepts everything except recipients whose local part starts with "nobody" (550) and
    records what it was asked. `users` turns AUTH PLAIN/LOGIN on."""

    def __init__(self, *, users: dict[str, str] | None = None, fail_data: bool = False) -> None:
        self.users = users or {}
        self.auth_mechanisms = ("PLAIN", "LOGIN") if users else ()  # type: ignore[misc]
        self.fail_data = fail_data
        self.calls: list[str] = []
        self.mails: list[Envelope] = []
        self.mail_peers: list[PeerInfo] = []
        self.auths: list[tuple[str, str, str]] = []
        self.received: list[Received] = []
        self.connects = 0
        self.disconnects = 0

    async def on_connect(self, peer: PeerInfo) -> Reply:
        self.connects += 1
        self.calls.append("connect")
        return replies.OK

    async def on_helo(self, peer: PeerInfo, helo: str) -> Reply:
        self.calls.append(f"helo {helo}")
        return replies.OK

    async def on_auth(self, peer: PeerInfo, mechanism: str, authzid: str, authcid: str, password: str) -> Reply:
        self.auths.append((mechanism, authzid, authcid))
        return replies.AUTH_OK if self.users.get(authcid) == password else replies.AUTH_FAILED

    async def on_mail(self, peer: PeerInfo, envelope: Envelope) -> Reply:
        self.calls.append("mail")
        self.mails.append(envelope)
        self.mail_peers.append(peer)
        return replies.SENDER_OK

    async def on_rcpt(self, peer: PeerInfo, envelope: Envelope, rcpt: Address) -> Reply:
        self.calls.append(f"rcpt {rcpt}")
        return replies.UNKNOWN_USER if rcpt.local.startswith("nobody") else replies.RECIPIENT_OK

    async def on_data(self, peer: PeerInfo, envelope: Envelope, message: SpooledMessage) -> Reply:
        self.calls.append("data")
        if self.fail_data:
            raise RuntimeError("the handler broke")
        self.received.append(Received(peer, envelope, message.raw))
        return replies.queued(f"Q{len(self.received)}")

    async def on_reset(self, peer: PeerInfo) -> None:
        self.calls.append("reset")

    async def on_disconnect(self, peer: PeerInfo) -> None:
        self.disconnects += 1
        self.calls.append("disconnect")


class LmtpRecordingHandler(RecordingHandler):
    """LMTP: one reply per recipient; a local part starting with "full" gets 452 4.2.2."""

    async def on_lmtp_data(self, peer: PeerInfo, envelope: Envelope, message: SpooledMessage) -> Sequence[Reply]:
        self.received.append(Received(peer, envelope, message.raw))
        return [replies.MAILBOX_FULL if r.local.startswith("full") else replies.DELIVERED
                for r in envelope.recipients]


@dataclasses.dataclass
class Engine:
    edge: SmtpEdge
    listeners: Listeners
    handler: RecordingHandler

    @property
    def port(self) -> int:
        return self.listeners.ports[0]

    async def connect(self, **kw: Any) -> SmtpDialogue:
        return await SmtpDialogue.open(HOST, self.port, **kw)

    async def stop(self, drain: float = 0.5) -> None:
        await self.listeners.stop(drain)


async def start_engine(handler: RecordingHandler | None = None, *, tls: ssl.SSLContext | None = None,
                       implicit_tls: bool = False, protocol: str = "smtp", xclient: bool = False,
                       proxy: bool = False, greet_pause: float = 0.0, **limits: Any) -> Engine:
    handler = handler if handler is not None else (LmtpRecordingHandler() if protocol == "lmtp" else RecordingHandler())
    config = EdgeConfig(hostname="mx.example.net", protocol=protocol, limits=EdgeLimits(**limits),  # type: ignore[arg-type]
                        tls_context=tls, xclient_from=NetworkList([HOST] if xclient else []),
                        proxy_from=NetworkList([HOST] if proxy else []), greet_pause=greet_pause)
    edge = SmtpEdge(handler, config, implicit_tls=implicit_tls)
    listeners = Listeners([(edge, [f"{HOST}:0"])])
    await listeners.start()
    return Engine(edge, listeners, handler)


async def ehlo_mail_rcpt(d: SmtpDialogue, *rcpts: str, mail: str = "MAIL FROM:<a@example.org>") -> None:
    assert (await d.cmd("EHLO client.example.org")).code == 250
    assert (await d.cmd(mail)).code == 250
    for r in rcpts or ("b@example.net",):
        assert (await d.cmd(f"RCPT TO:<{r}>")).code == 250
