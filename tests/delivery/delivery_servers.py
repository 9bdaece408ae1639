"""Real servers on 127.0.0.1 for delivery tests: an LMTP 'MDA' over mutual TLS, an SMTP 'remote MX'.

A uniquely named module (not conftest) so test modules can import it without clashing with other
test directories' conftest files."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from mailbastion.smtp.tls import client_context


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    peer_cert_cn: str | None
    tls_version: str | None


@dataclass
class ScriptedHandler:
    """Accepts every recipient unless told otherwise, per address, at RCPT and after DATA."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lmtp: bool = True

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        ssl_obj = server.transport.get_extra_info("ssl_object")
        cn = None
        if ssl_obj is not None and ssl_obj.getpeercert():
            cn = dict(x[0] for x in ssl_obj.getpeercert()["subject"]).get("commonName")
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content
                                      or envelope.content, cn, ssl_obj.version() if ssl_obj else None))
        if not self.lmtp:
            return self.data_replies.get("*", "250 2.0.0 Ok: queued")
        # RFC 2033: one reply per accepted recipient, in order (aiosmtpd pushes the lines as given).
        return "\r\n".join(self.data_replies.get(r, f"250 2.0.0 <{r}> delivered") for r in envelope.rcpt_tos)


def gateway_client_context(pki: dict[str, Path]) -> ssl.SSLContext:
    return client_context(ca=pki["ca.crt"], cert=pki["gateway-client.crt"], key=pki["gateway-client.key"])


@dataclass
class Server:
    handler: ScriptedHandler
    port: int
    server: asyncio.base_events.Server


async def start_lmtp(handler: ScriptedHandler, ctx: ssl.SSLContext | None) -> Server:
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: LMTP(handler, hostname="mda", enable_SMTPUTF8=True),
                                   "127.0.0.1", 0, ssl=ctx)
    return Server(handler, srv.sockets[0].getsockname()[1], srv)


async def start_smtp(handler: ScriptedHandler, tls: ssl.SSLContext | None) -> Server:
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: SMTP(handler, hostname="mx.example.net", tls_context=tls,
                                                enable_SMTPUTF8=True),
                                   "127.0.0.1", 0)
    return Server(handler, srv.sockets[0].getsockname()[1], srv)
