"""LMTP delivery to the MDA (RFC 2033) over mutual TLS from the first byte.

The link is the only bridge from the DMZ inward, so it is TLS from the first byte (no STARTTLS a
man-in-the-middle could strip), the MDA's certificate must be signed by our private CA for the name
"mda", and we present the gateway client certificate. After DATA, LMTP gives one reply per accepted
recipient, in RCPT order (RFC 2033 §4.2): that is what makes per-recipient status exact.

A small client of its own: aiosmtplib speaks SMTP, where DATA has a single reply.

The delivered message gets two trusted headers on top (the MDA honours them only over this link):
    X-Mailbastion-Queue-Id: <queue id>      always
    X-Mailbastion-Junk: yes                 when the verdict put it in the Junk folder
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl

from mailbastion.config.schema import Settings
from mailbastion.core import headers
from mailbastion.delivery.agent import DeliveryOutcome, TempFailed, outcome_of_reply, parse_hostport
from mailbastion.smtp.tls import client_context
from mailbastion.spool.record import QueueRecord

log = logging.getLogger("mailbastion.delivery.lmtp")

_LINE_END = re.compile(rb"\r?\n")
_DOT_LINE = re.compile(rb"(?m)^\.")


class LmtpProtocolError(Exception):
    """The MDA said something that is not an LMTP reply, or closed the connection."""


def prepare_message(record: QueueRecord, message: bytes) -> bytes:
    """The DATA payload: our headers on top, CRLF line ends, dot-stuffed, ending in CRLF.CRLF."""
    top = f"{headers.QUEUE_ID}: {record.queue_id}\r\n"
    if record.junk:
        top += f"{headers.JUNK}: yes\r\n"
    data = _LINE_END.sub(b"\r\n", message)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return _DOT_LINE.sub(b"..", top.encode("ascii") + data) + b".\r\n"


async def _read_reply(reader: asyncio.StreamReader, timeout: float) -> tuple[int, str]:
    """One (possibly multi-line) reply: (code, text with lines joined by a space)."""
    texts: list[str] = []
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line.endswith(b"\n"):
            raise LmtpProtocolError("connection closed by the MDA")
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if len(text) < 3 or not text[:3].isdigit() or text[3:4] not in ("", " ", "-"):
            raise LmtpProtocolError(f"not an LMTP reply: {text[:80]!r}")
        texts.append(text[4:])
        if text[3:4] != "-":
            return int(text[:3]), " ".join(t for t in texts if t)


class LmtpDeliveryAgent:
    """Delivers to the MDA. Never raises: an unreachable MDA is TempFailed for every recipient."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        server_hostname: str = "mda",
        local_hostname: str = "localhost",
        timeout: float = 120.0,
        connect_timeout: float = 30.0,
    ) -> None:
        self.host, self.port = host, port
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.local_hostname = local_hostname
        self.timeout = timeout
        self.connect_timeout = connect_timeout

    @staticmethod
    def from_settings(settings: Settings) -> LmtpDeliveryAgent:
        host, port = parse_hostport(settings.lmtp.connect or settings.lmtp.listen, 24)
        t = settings.tls
        ctx = client_context(ca=settings.path(t.ca), cert=settings.path(t.gateway_client_cert),
                             key=settings.path(t.gateway_client_key), min_version=t.min_version)
        return LmtpDeliveryAgent(host, port, ssl_context=ctx, local_hostname=settings.server.hostname,
                                 timeout=settings.lmtp.timeout)

    async def deliver(self, record: QueueRecord, message: bytes) -> dict[str, DeliveryOutcome]:
        outcomes: dict[str, DeliveryOutcome] = {}
        try:
            await asyncio.wait_for(self._session(record, message, outcomes), self.timeout * 4)
        except (OSError, TimeoutError, ssl.SSLError, LmtpProtocolError, EOFError) as exc:
            reason = str(exc) or type(exc).__name__
            log.warning("id=%s LMTP to %s:%d failed: %s", record.queue_id, self.host, self.port, reason)
            for r in record.pending:
                outcomes.setdefault(r.address, TempFailed(f"4.4.2 LMTP to {self.host}:{self.port}: {reason}"))
        return outcomes

    async def _session(self, record: QueueRecord, message: bytes, out: dict[str, DeliveryOutcome]) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self.ssl_context,
                                    server_hostname=self.server_hostname,
                                    ssl_handshake_timeout=self.connect_timeout),
            self.connect_timeout)
        try:
            await self._converse(reader, writer, record, message, out)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5)

    async def _command(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       line: str) -> tuple[int, str]:
        writer.write(line.encode("utf-8") + b"\r\n")
        await writer.drain()
        return await _read_reply(reader, self.timeout)

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        record: QueueRecord, message: bytes, out: dict[str, DeliveryOutcome]) -> None:
        pending = [r.address for r in record.pending]

        def everyone(code: int, text: str) -> None:
            # The MDA refused the whole transaction; a 5xx here is still the MDA's own fault, but we
            # follow its code: it knows whether trying again can help.
            for a in pending:
                out.setdefault(a, outcome_of_reply(code, text))

        code, text = await _read_reply(reader, self.timeout)
        if code != 220:
            return everyone(code if code >= 400 else 421, f"greeting: {text}")
        code, text = await self._command(reader, writer, f"LHLO {self.local_hostname}")
        if code != 250:
            return everyone(code if code >= 400 else 421, f"LHLO: {text}")
        ext = {w.split()[0].upper() for w in text.split(" ") if w}
        params = ""
        if record.body_8bitmime and "8BITMIME" in ext:
            params += " BODY=8BITMIME"
        if record.smtputf8 and "SMTPUTF8" in ext:
            params += " SMTPUTF8"
        code, text = await self._command(reader, writer, f"MAIL FROM:<{record.sender}>{params}")
        if code != 250:
            return everyone(code, text)
        accepted: list[str] = []
        for address in pending:
            code, text = await self._command(reader, writer, f"RCPT TO:<{address}>")
            if 200 <= code < 300:
                accepted.append(address)
            else:
                out[address] = outcome_of_reply(code, text)
        if not accepted:
            with contextlib.suppress(Exception):
                await self._command(reader, writer, "QUIT")
            return None
        code, text = await self._command(reader, writer, "DATA")
        if code != 354:
            for a in accepted:
                out[a] = outcome_of_reply(code, text)
            return None
        writer.write(prepare_message(record, message))
        await writer.drain()
        for address in accepted:  # RFC 2033 §4.2: one reply per accepted recipient, in order
            code, text = await _read_reply(reader, self.timeout)
            out[address] = outcome_of_reply(code, text)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._command(reader, writer, "QUIT"), 5)
        return None
