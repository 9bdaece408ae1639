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
import time

from mailbastion.config.schema import Settings
from mailbastion.core import headers
from mailbastion.delivery.agent import DeliveryOutcome, TempFailed, outcome_of_reply, parse_hostport
from mailbastion.smtp.tls import client_context
from mailbastion.spool.record import QueueRecord

log = logging.getLogger("mailbastion.delivery.lmtp")

_LINE_END = re.compile(rb"\r?\n")


class LmtpProtocolError(Exception):
    """The MDA said something that is not an LMTP reply, or closed the connection."""


def prepare_message(record: QueueRecord, message: bytes) -> bytes:
    """The DATA payload: our headers on top, CRLF line ends, dot-stuffed, ending in CRLF.CRLF."""
    top = f"{headers.QUEUE_ID}: {record.queue_id}\r\n"
    if record.junk:
        top += f"{headers.JUNK}: yes\r\n"
    data = message
    if data.count(b"\n") != data.count(b"\r\n"):  # spooled mail is CRLF already: normalise only if not
        data = _LINE_END.sub(b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    # RFC 5321 §4.5.2 dot-stuffing; `top` starts with a header name, so only lines after a LF can start with "."
    return (top.encode("ascii") + data).replace(b"\n.", b"\n..") + b".\r\n"


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


class _Session:
    """One LMTP connection, greeted and LHLO'd, reusable for further transactions."""

    __slots__ = ("data_sent", "ext", "reader", "transactions", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ext: set[str]) -> None:
        self.reader, self.writer, self.ext = reader, writer, ext
        self.transactions = 0
        self.data_sent = False  # message data went out in the current transaction: never retry it

    @property
    def is_open(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 5)


class _Retry(Exception):
    """A reused session failed before any message data was sent: safe to try a fresh one."""


class LmtpDeliveryAgent:
    """Delivers to the MDA. Never raises: an unreachable MDA is TempFailed for every recipient.

    Connections are cached (Postfix's LMTP connection cache): one mutual-TLS handshake then serves up
    to `reuse_limit` transactions while it is idle for less than `idle_seconds`. A cached session the
    MDA closed meanwhile is replaced by a fresh one only when it failed before DATA, so a retry can
    never deliver a message twice."""

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
        max_idle: int = 16,
        idle_seconds: float = 10.0,
        reuse_limit: int = 100,
    ) -> None:
        self.host, self.port = host, port
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.local_hostname = local_hostname
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_idle, self.idle_seconds, self.reuse_limit = max_idle, idle_seconds, reuse_limit
        self._idle: list[tuple[float, _Session]] = []
        self.connections_opened = 0

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
            await asyncio.wait_for(self._deliver(record, message, outcomes), self.timeout * 4)
        except (OSError, TimeoutError, ssl.SSLError, LmtpProtocolError, EOFError) as exc:
            reason = str(exc) or type(exc).__name__
            log.warning("id=%s LMTP to %s:%d failed: %s", record.queue_id, self.host, self.port, reason)
            for r in record.pending:
                outcomes.setdefault(r.address, TempFailed(f"4.4.2 LMTP to {self.host}:{self.port}: {reason}"))
        return outcomes

    async def close(self) -> None:
        """Close the cached idle connections."""
        idle, self._idle = self._idle, []
        for _, session in idle:
            await session.close()

    async def _deliver(self, record: QueueRecord, message: bytes, out: dict[str, DeliveryOutcome]) -> None:
        session = self._take_idle()
        if session is not None:
            try:
                await self._use(session, record, message, out)
                return
            except _Retry:
                out.clear()  # nothing was delivered: start again on a fresh connection
        session = await self._open(out, record)
        if session is not None:
            await self._use(session, record, message, out)

    def _take_idle(self) -> _Session | None:
        now = time.monotonic()
        while self._idle:
            since, session = self._idle.pop()
            if now - since < self.idle_seconds and session.is_open:
                return session
            asyncio.ensure_future(session.close())
        return None

    async def _use(self, session: _Session, record: QueueRecord, message: bytes,
                   out: dict[str, DeliveryOutcome]) -> None:
        reusable = False
        try:
            reusable = await self._transaction(session, record, message, out)
        except (OSError, EOFError, LmtpProtocolError, ssl.SSLError) as exc:
            if session.transactions > 0 and not out and not session.data_sent:
                raise _Retry from exc
            raise
        finally:
            session.transactions += 1
            if reusable and session.is_open and session.transactions < self.reuse_limit \
                    and len(self._idle) < self.max_idle:
                self._idle.append((time.monotonic(), session))
            else:
                await session.close()

    async def _open(self, out: dict[str, DeliveryOutcome], record: QueueRecord) -> _Session | None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self.ssl_context,
                                    server_hostname=self.server_hostname,
                                    ssl_handshake_timeout=self.connect_timeout),
            self.connect_timeout)
        self.connections_opened += 1
        session = _Session(reader, writer, set())
        pending = [r.address for r in record.pending]
        try:
            code, text = await _read_reply(reader, self.timeout)
            if code != 220:
                code, text = (code if code >= 400 else 421), f"greeting: {text}"
            else:
                code, text = await self._command(session, f"LHLO {self.local_hostname}")
                if code != 250:
                    code, text = (code if code >= 400 else 421), f"LHLO: {text}"
                else:
                    session.ext = {w.split()[0].upper() for w in text.split(" ") if w}
                    return session
        except BaseException:
            await session.close()
            raise
        for a in pending:  # the MDA refused the session; it knows whether trying again can help
            out.setdefault(a, outcome_of_reply(code, text))
        await session.close()
        return None

    async def _command(self, session: _Session, line: str) -> tuple[int, str]:
        session.writer.write(line.encode("utf-8") + b"\r\n")
        await session.writer.drain()
        return await _read_reply(session.reader, self.timeout)

    async def _transaction(self, session: _Session, record: QueueRecord, message: bytes,
                           out: dict[str, DeliveryOutcome]) -> bool:
        """One MAIL..DATA transaction. Returns True when the session is clean for another one."""
        pending = [r.address for r in record.pending]
        session.data_sent = False
        params = ""
        if record.body_8bitmime and "8BITMIME" in session.ext:
            params += " BODY=8BITMIME"
        if record.smtputf8 and "SMTPUTF8" in session.ext:
            params += " SMTPUTF8"
        code, text = await self._command(session, f"MAIL FROM:<{record.sender}>{params}")
        if code == 421:
            raise LmtpProtocolError(f"MDA closing: {text}")
        if code != 250:
            for a in pending:
                out.setdefault(a, outcome_of_reply(code, text))
            return await self._rset(session)
        accepted: list[str] = []
        replies_: list[tuple[str, DeliveryOutcome]] = []
        for address in pending:
            code, text = await self._command(session, f"RCPT TO:<{address}>")
            if 200 <= code < 300:
                accepted.append(address)
            else:
                replies_.append((address, outcome_of_reply(code, text)))
        if not accepted:
            out.update(replies_)
            return await self._rset(session)
        code, text = await self._command(session, "DATA")
        out.update(replies_)
        if code != 354:
            for a in accepted:
                out[a] = outcome_of_reply(code, text)
            return await self._rset(session)
        session.data_sent = True
        session.writer.write(prepare_message(record, message))
        await session.writer.drain()
        for address in accepted:  # RFC 2033 §4.2: one reply per accepted recipient, in order
            code, text = await _read_reply(session.reader, self.timeout)
            out[address] = outcome_of_reply(code, text)
        return True

    async def _rset(self, session: _Session) -> bool:
        try:
            code, _ = await asyncio.wait_for(self._command(session, "RSET"), 5)
        except (OSError, EOFError, TimeoutError, LmtpProtocolError, ssl.SSLError):
            return False
        return code == 250
