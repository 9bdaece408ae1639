"""Real servers on 127.0.0.1 for delivery tests: an LMTP 'MDA' over mutual TLS, an SMTP 'remote MX' (both
aiosmtpd), and `LineServer`, a small scripted SMTP/LMTP server whose extensions a test chooses (the link
protocol's XMAILBASTION, DSN), which aiosmtpd cannot offer because it refuses unknown MAIL/RCPT parameters.

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

from mailbastion.tls_policy import client_context


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    peer_cert_cn: str | None
    tls_version: str | None
    mail_params: list[str] = field(default_factory=list)  # LineServer only: MAIL parameters as sent
    rcpt_params: dict[str, list[str]] = field(default_factory=dict)  # LineServer only: RCPT parameters


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


def _peer_cn(writer: asyncio.StreamWriter) -> str | None:
    ssl_obj = writer.get_extra_info("ssl_object")
    cert = ssl_obj.getpeercert() if ssl_obj is not None else None
    return dict(x[0] for x in cert["subject"]).get("commonName") if cert else None


@dataclass
class LineServer:
    """A scripted SMTP (lmtp=False) or LMTP server. `extensions` are advertised after EHLO/LHLO;
    `link_only_with_cert`: XMAILBASTION is advertised only to a client whose certificate was verified, and
    XQUEUEID/XFOLDER without it get 555 (the link protocol). Replies per address as ScriptedHandler's."""

    handler: ScriptedHandler
    extensions: tuple[str, ...] = ("PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8")
    link_only_with_cert: bool = True
    port: int = 0
    server: asyncio.base_events.Server | None = None
    greeting: bytes = b"220 mda ESMTP ready\r\n"

    async def start(self, ctx: ssl.SSLContext | None) -> LineServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ctx)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cn = _peer_cn(writer)
        ssl_obj = writer.get_extra_info("ssl_object")
        link = cn is not None or not self.link_only_with_cert
        h = self.handler
        mail: tuple[str, list[str]] | None = None
        rcpts: list[tuple[str, list[str]]] = []

        def send(*lines: str) -> None:
            writer.write("".join(f"{line}\r\n" for line in lines).encode())

        writer.write(self.greeting)
        try:
            while line := await reader.readline():
                text = line.decode().rstrip("\r\n")
                verb, _, arg = text.partition(" ")
                verb = verb.upper()
                if verb in ("EHLO", "LHLO"):
                    ext = [e for e in self.extensions if e != "XMAILBASTION" or link]
                    send(*[f"250-{e}" for e in ["mda", *ext[:-1]]], f"250 {ext[-1]}" if ext else "250 mda")
                elif verb == "MAIL":
                    addr, _, params = arg[5:].partition(">")
                    ps = params.split()
                    if not link and any(p.upper().startswith(("XQUEUEID=", "XFOLDER=")) for p in ps):
                        send("555 5.5.4 unknown MAIL parameter")
                        continue
                    mail, rcpts = (addr.lstrip("<"), ps), []
                    send("250 2.1.0 ok")
                elif verb == "RCPT":
                    addr, _, params = arg[3:].partition(">")
                    addr = addr.lstrip("<")
                    if addr in h.rcpt_replies:
                        send(h.rcpt_replies[addr])
                    else:
                        rcpts.append((addr, params.split()))
                        send("250 2.1.5 ok")
                elif verb == "DATA" and mail is not None and rcpts:
                    send("354 go ahead")
                    body = bytearray()
                    while (chunk := await reader.readline()) != b".\r\n":
                        if not chunk:
                            return
                        body += chunk[1:] if chunk.startswith(b".") else chunk
                    h.received.append(Received(mail[0], [r for r, _ in rcpts], bytes(body), cn,
                                               ssl_obj.version() if ssl_obj else None, mail[1], dict(rcpts)))
                    if h.lmtp:
                        send(*[h.data_replies.get(r, f"250 2.0.0 <{r}> delivered") for r, _ in rcpts])
                    else:
                        send(h.data_replies.get("*", "250 2.0.0 Ok: queued"))
                    mail, rcpts = None, []
                elif verb == "RSET":
                    mail, rcpts = None, []
                    send("250 2.0.0 ok")
                elif verb == "QUIT":
                    send("221 2.0.0 bye")
                    await writer.drain()
                    break
                else:
                    send("503 5.5.1 bad sequence")
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
