"""A remote MX for outbound tests: an aiosmtpd server on a loopback address with STARTTLS and the test
certificate of the host it plays, keeping every message it accepts and how it arrived.

    sink = await MxSink.start("127.0.0.2", port, cert_chain, key, hostname="mx.dane.test")
    ... deliver ...
    sink.received  -> [SinkMessage(mail_from, rcpt_tos, content, tls_version, mail_options)]
    await sink.stop()

Options: `starttls=False` (STARTTLS not offered), `smtputf8=False` (SMTPUTF8 not offered), `requiretls=True` (REQUIRETLS advertised after TLS, and
the MAIL parameter accepted, RFC 8689 §4). Several sinks share one port on different 127.0.0.x addresses,
so that each MX host of a test has its own address and certificate behind the one delivery port.

`sink.rcpt_replies["nobody@remote.test"] = "550 5.1.1 no such user"` refuses a recipient; `sink.connections`
counts the connections made to it and `sink.most_at_once` the most open at the same time (connection
reuse and concurrency limits of a client are seen there).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP


@dataclass
class SinkMessage:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls_version: str | None
    mail_options: list[str]


@dataclass
class _Handler:
    requiretls: bool
    received: list[SinkMessage] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    connections: int = 0
    open_now: int = 0
    most_at_once: int = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_options.extend(rcpt_options)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.requiretls and server.transport.get_extra_info("ssl_object") is not None:
            responses.insert(-1, "250-REQUIRETLS")
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        ssl_obj = server.transport.get_extra_info("ssl_object")
        self.received.append(SinkMessage(envelope.mail_from, list(envelope.rcpt_tos),
                                         envelope.original_content or envelope.content,
                                         ssl_obj.version() if ssl_obj else None, list(envelope.mail_options)))
        return "250 2.0.0 Ok: queued"


class _Smtp(SMTP):
    """aiosmtpd refuses MAIL parameters it does not know: accept REQUIRETLS when we advertise it."""

    def connection_made(self, transport: Any) -> None:
        handler: _Handler = self.event_handler
        if not getattr(self, "_counted", False):  # STARTTLS makes a second connection_made on aiosmtpd
            self._counted = True
            handler.connections += 1
            handler.open_now += 1
            handler.most_at_once = max(handler.most_at_once, handler.open_now)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        handler: _Handler = self.event_handler
        if getattr(self, "_counted", False) and not getattr(self, "_lost", False):
            self._lost = True
            handler.open_now -= 1
        super().connection_lost(exc)

    async def smtp_MAIL(self, arg: str) -> None:
        handler: _Handler = self.event_handler
        if handler.requiretls and arg and arg.upper().rstrip().endswith(" REQUIRETLS"):
            await super().smtp_MAIL(arg.rstrip()[: -len(" REQUIRETLS")])
            envelope = self.envelope
            if envelope is not None and envelope.mail_from is not None:
                envelope.mail_options.append("REQUIRETLS")
            return
        await super().smtp_MAIL(arg)


class MxSink:
    def __init__(self, handler: _Handler, server: asyncio.base_events.Server, host: str, port: int) -> None:
        self.handler = handler
        self.server = server
        self.host = host
        self.port = port

    @property
    def received(self) -> list[SinkMessage]:
        return self.handler.received

    @property
    def rcpt_replies(self) -> dict[str, str]:
        return self.handler.rcpt_replies

    @property
    def connections(self) -> int:
        return self.handler.connections

    @property
    def most_at_once(self) -> int:
        return self.handler.most_at_once

    @staticmethod
    async def start(host: str, port: int, cert_chain: Path | None, key: Path | None, *, hostname: str,
                    starttls: bool = True, requiretls: bool = False, smtputf8: bool = True) -> MxSink:
        ctx = None
        if starttls and cert_chain is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(cert_chain), str(key))
        handler = _Handler(requiretls)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _Smtp(handler, hostname=hostname, tls_context=ctx, require_starttls=False,
                          enable_SMTPUTF8=smtputf8, ident="test MX"), host, port)
        return MxSink(handler, server, host, port)

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


__all__ = ["MxSink", "SinkMessage"]
