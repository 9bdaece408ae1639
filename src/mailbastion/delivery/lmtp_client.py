"""LMTP delivery to the MDA (RFC 2033) over mutual TLS from the first byte.

The link is the only bridge from the DMZ inward, so it is TLS from the first byte (no STARTTLS a
man-in-the-middle could strip), the MDA's certificate must be signed by our private CA for the name
"mda", and we present the gateway client certificate. After DATA, LMTP gives one reply per accepted
recipient, in RCPT order (RFC 2033 §4.2): that is what makes per-recipient status exact.

The link protocol (docs/architecture.md, "The LMTP link"): when the MDA's LHLO reply lists XMAILBASTION
(it does so only to a client whose certificate our CA verified), MAIL carries

    MAIL FROM:<sender> [BODY=8BITMIME] [SMTPUTF8] XQUEUEID=<queue id> XFOLDER=INBOX|Junk
              [XBOUNCEOF=<xtext sender>,<xtext sender>...]

so that the MDA files the copy in the right folder and delivers each queue id to a mailbox once (a
resent transaction is answered 250 without a second copy). XBOUNCEOF names, for a DSN the gateway matched
to mail we sent, the envelope senders of ours it reports refused (`DeliveryRequest.bounce_of`): the
internal host counts them as signs of a hijacked account (xtext with "," escaped too, so the list splits).
The message itself is sent unchanged: no internal header stands in for the parameters. An MDA that does
not advertise XMAILBASTION (it did not verify our certificate: `lmtp.require_client_cert = false`) files
everything in INBOX, without exactly-once; a Junk verdict is then logged as lost.

A small client of its own: aiosmtplib speaks SMTP, where DATA has a single reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time

from mailbastion.config.schema import Settings
from mailbastion.core.outcome import Deferred, DeliveryOutcome, outcome_of, parse_reply
from mailbastion.core.ports import DeliveryRequest
from mailbastion.core.replies import Reply
from mailbastion.core.verdict import Folder
from mailbastion.core.xtext import xtext
from mailbastion.delivery.hostport import parse_hostport
from mailbastion.smtp.data import crlf_message
from mailbastion.tls_policy import lmtp_client_context_from_settings

log = logging.getLogger("mailbastion.delivery.lmtp")

LINK_EXTENSION = "XMAILBASTION"

# The MDA refused or dropped the connection: it is starting, restarting or was killed (fast retry).
_LINK_DOWN = (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
              ssl.SSLEOFError, ssl.SSLZeroReturnError)


class LmtpProtocolError(Exception):
    """The MDA said something that is not an LMTP reply."""


class LmtpConnectionLost(LmtpProtocolError):
    """The MDA closed the connection (or announced it with 421)."""


def prepare_message(message: bytes) -> bytes:
    """The DATA payload: CRLF line ends, dot-stuffed, ending in CRLF.CRLF."""
    data = crlf_message(message)
    # RFC 5321 §4.5.2 dot-stuffing: a line that starts with "." gets another one.
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


async def _read_reply(reader: asyncio.StreamReader, timeout: float) -> Reply:
    """One (possibly multi-line) reply, parsed into its fields."""
    texts: list[str] = []
    while True:
        async with asyncio.timeout(timeout):  # no task per line, unlike wait_for (Python 3.11)
            line = await reader.readline()
        if not line.endswith(b"\n"):
            raise LmtpConnectionLost("connection closed by the MDA")
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if len(text) < 3 or not text[:3].isdigit() or text[3:4] not in ("", " ", "-"):
            raise LmtpProtocolError(f"not an LMTP reply: {text[:80]!r}")
        texts.append(text[4:])
        if text[3:4] != "-":
            return parse_reply(int(text[:3]), texts)


class _Session:
    """One LMTP connection, greeted and LHLO'd, reusable for further transactions."""

    __slots__ = ("data_sent", "ext", "opened", "reader", "transactions", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ext: set[str]) -> None:
        self.reader, self.writer, self.ext = reader, writer, ext
        self.transactions = 0
        self.opened = time.monotonic()
        self.data_sent = False  # message data went out in the current transaction: never retry it

    @property
    def is_open(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    @property
    def speaks_link(self) -> bool:
        return LINK_EXTENSION in self.ext

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 5)


class _Retry(Exception):
    """A reused session failed before any message data was sent: safe to try a fresh one."""


class LmtpDeliveryAgent:
    """Delivers to the MDA. Never raises: an unreachable MDA is Deferred for every recipient, with
    `link_down` when it refused or dropped the connection (the queue retries within seconds).

    Connections persist (Postfix's LMTP connection cache): one mutual-TLS handshake serves every
    transaction for up to `reuse_seconds`, while idle for less than `idle_seconds`, up to `max_idle`
    sessions kept. A cached session the MDA closed meanwhile is replaced by a fresh one only when it failed
    before DATA, so a retry by this client never sends a message twice."""

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
        max_idle: int = 32,
        idle_seconds: float = 60.0,
        reuse_seconds: float = 600.0,
    ) -> None:
        self.host, self.port = host, port
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.local_hostname = local_hostname
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_idle, self.idle_seconds, self.reuse_seconds = max_idle, idle_seconds, reuse_seconds
        self._idle: list[tuple[float, _Session]] = []
        self.connections_opened = 0

    @staticmethod
    def from_settings(settings: Settings) -> LmtpDeliveryAgent:
        host, port = parse_hostport(settings.lmtp.connect or settings.lmtp.listen, 24)
        ctx = lmtp_client_context_from_settings(settings)
        # Keep a session for every delivery that may run at once: none waits for a handshake.
        return LmtpDeliveryAgent(host, port, ssl_context=ctx, local_hostname=settings.server.hostname,
                                 timeout=settings.lmtp.timeout,
                                 max_idle=max(8, settings.spool.delivery_concurrency))

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    async def deliver(self, request: DeliveryRequest) -> dict[str, DeliveryOutcome]:
        outcomes: dict[str, DeliveryOutcome] = {}
        try:
            await asyncio.wait_for(self._deliver(request, outcomes), self.timeout * 4)
        except (OSError, TimeoutError, LmtpProtocolError, EOFError) as exc:  # ssl.SSLError is an OSError
            reason = str(exc) or type(exc).__name__
            link_down = isinstance(exc, (*_LINK_DOWN, LmtpConnectionLost))
            log.warning("id=%s LMTP to %s failed%s: %s", request.queue_id, self.where,
                        " (MDA not reachable: retrying soon)" if link_down else "", reason)
            failure = Deferred(Reply(451, "4.4.2" if link_down else "4.4.1", f"LMTP to {self.where}: {reason}"),
                               link_down=link_down)
            for address in request.addresses:
                outcomes.setdefault(address, failure)
        return outcomes

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until the MDA answers (greeting and LHLO over mutual TLS), at most `timeout` seconds; the
        session is kept for the first delivery. True when it answered."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            try:
                session = await asyncio.wait_for(self._open(), max(0.1, min(self.connect_timeout,
                                                                            deadline - time.monotonic())))
            except (OSError, TimeoutError, LmtpProtocolError, EOFError):
                session = None
            if isinstance(session, _Session):
                self._idle.append((time.monotonic(), session))
                return True
            if time.monotonic() + delay > deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def close(self) -> None:
        """Close the cached idle connections."""
        idle, self._idle = self._idle, []
        for _, session in idle:
            await session.close()

    async def _deliver(self, request: DeliveryRequest, out: dict[str, DeliveryOutcome]) -> None:
        session = self._take_idle()
        if session is not None:
            try:
                await self._use(session, request, out)
                return
            except _Retry:
                out.clear()  # nothing was delivered: start again on a fresh connection
        opened = await self._open()
        if isinstance(opened, Reply):  # the MDA refused the session; it knows whether trying again helps
            for a in request.addresses:
                out.setdefault(a, self._outcome(opened))
            return
        await self._use(opened, request, out)

    def _outcome(self, reply: Reply) -> DeliveryOutcome:
        # The MDA is named by its certificate name, not its address: a DSN to an outside sender names the
        # reporting host, never the inner network's addresses.
        outcome = outcome_of(reply, remote=self.server_hostname)
        if reply.code == 421 and isinstance(outcome, Deferred):  # our MDA is stopping: a restart, not a fault
            return Deferred(reply, self.server_hostname, link_down=True)
        return outcome

    def _take_idle(self) -> _Session | None:
        now = time.monotonic()
        while self._idle:
            since, session = self._idle.pop()
            if now - since < self.idle_seconds and now - session.opened < self.reuse_seconds and session.is_open:
                return session
            asyncio.ensure_future(session.close())
        return None

    async def _use(self, session: _Session, request: DeliveryRequest, out: dict[str, DeliveryOutcome]) -> None:
        reusable = False
        try:
            reusable = await self._transaction(session, request, out)
        except (OSError, EOFError, LmtpProtocolError) as exc:
            # A cached session the MDA closed meanwhile: try a fresh one, unless the message may have gone
            # through (a resend is harmless only where the MDA delivers each queue id once: the link).
            if session.transactions > 0 and not out and (not session.data_sent or session.speaks_link):
                raise _Retry from exc
            raise
        finally:
            session.transactions += 1
            if reusable and session.is_open and len(self._idle) < self.max_idle:
                self._idle.append((time.monotonic(), session))
            else:
                await session.close()

    async def _open(self) -> _Session | Reply:
        """A greeted, LHLO'd session, or the refusing reply of an MDA that would not take one."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self.ssl_context,
                                    server_hostname=self.server_hostname,
                                    ssl_handshake_timeout=self.connect_timeout),
            self.connect_timeout)
        self.connections_opened += 1
        session = _Session(reader, writer, set())
        try:
            reply = await _read_reply(reader, self.timeout)
            if reply.code == 220:
                reply = await self._command(session, f"LHLO {self.local_hostname}")
                if reply.code == 250:
                    session.ext = {line.split(" ")[0].upper() for line in reply.text.split("\n")[1:] if line}
                    return session
        except BaseException:
            await session.close()
            raise
        await session.close()
        return reply if reply.code >= 400 else Reply(421, "4.4.0", f"unexpected reply from the MDA: {reply.text}")

    async def _command(self, session: _Session, line: str) -> Reply:
        session.writer.write(line.encode("utf-8") + b"\r\n")
        await session.writer.drain()
        return await _read_reply(session.reader, self.timeout)

    def _mail_params(self, session: _Session, request: DeliveryRequest) -> str:
        params = ""
        if request.body_8bitmime and "8BITMIME" in session.ext:
            params += " BODY=8BITMIME"
        if request.smtputf8 and "SMTPUTF8" in session.ext:
            params += " SMTPUTF8"
        if session.speaks_link:
            params += f" XQUEUEID={request.queue_id} XFOLDER={request.folder.value}"
            if request.bounce_of:
                params += " XBOUNCEOF=" + ",".join(xtext(s, also=",") for s in request.bounce_of)
        elif request.folder is Folder.JUNK:
            log.warning("id=%s the MDA does not speak the link protocol (our certificate unverified?): the "
                        "Junk verdict cannot reach it; the copy goes to INBOX", request.queue_id)
        return params

    async def _transaction(self, session: _Session, request: DeliveryRequest,
                           out: dict[str, DeliveryOutcome]) -> bool:
        """One MAIL..DATA transaction. Returns True when the session is clean for another one."""
        pending = list(request.addresses)
        session.data_sent = False
        mail = f"MAIL FROM:<{request.sender}>{self._mail_params(session, request)}"
        if session.speaks_link and {"PIPELINING", "CHUNKING"} <= session.ext:
            return await self._chunked(session, request, mail, pending, out)
        if "PIPELINING" in session.ext:  # every LMTP server must offer it (RFC 2033 §4.1)
            return await self._pipelined(session, request, mail, pending, out)
        reply = await self._command(session, mail)
        if reply.code == 421:
            raise LmtpConnectionLost(f"MDA closing: {reply.text}")
        if reply.code != 250:
            for a in pending:
                out.setdefault(a, self._outcome(reply))
            return await self._rset(session)
        accepted: list[str] = []
        refused: list[tuple[str, DeliveryOutcome]] = []
        for address in pending:
            reply = await self._command(session, f"RCPT TO:<{address}>")
            if 200 <= reply.code < 300:
                accepted.append(address)
            else:
                refused.append((address, self._outcome(reply)))
        if not accepted:
            out.update(refused)
            return await self._rset(session)
        reply = await self._command(session, "DATA")
        out.update(refused)
        if reply.code != 354:
            for a in accepted:
                out[a] = self._outcome(reply)
            return await self._rset(session)
        return await self._data(session, request, accepted, out)

    async def _group(self, session: _Session, mail: str, pending: list[str], last: str, payload: bytes = b""
                     ) -> tuple[Reply, list[str], list[tuple[str, DeliveryOutcome]]]:
        """Write MAIL, every RCPT and `last` (then `payload`) at once, and read the replies to MAIL and to each
        RCPT: (MAIL's reply, the recipients accepted, the refused with their outcomes). After a refused MAIL
        the RCPT replies (503) are read and ignored: the MAIL reply is the answer."""
        lines = [mail, *(f"RCPT TO:<{address}>" for address in pending), last]
        session.writer.write("".join(f"{line}\r\n" for line in lines).encode("utf-8") + payload)
        await session.writer.drain()
        mail_reply = await _read_reply(session.reader, self.timeout)
        if mail_reply.code == 421:
            raise LmtpConnectionLost(f"MDA closing: {mail_reply.text}")
        accepted: list[str] = []
        refused: list[tuple[str, DeliveryOutcome]] = []
        for address in pending:
            reply = await _read_reply(session.reader, self.timeout)
            if mail_reply.code != 250:
                continue
            if 200 <= reply.code < 300:
                accepted.append(address)
            else:
                refused.append((address, self._outcome(reply)))
        return mail_reply, accepted, refused

    async def _pipelined(self, session: _Session, request: DeliveryRequest, mail: str, pending: list[str],
                         out: dict[str, DeliveryOutcome]) -> bool:
        """`_transaction` with MAIL, every RCPT and DATA in one write (RFC 2920), their replies read in
        order: one round trip (one TLS record each way) instead of 2 + recipients. The outcomes are those
        of the step-by-step exchange: a refused MAIL is every recipient's reply, DATA goes out only to
        recipients the MDA accepted (a server that answers DATA without any gives 503/554)."""
        mail_reply, accepted, refused = await self._group(session, mail, pending, "DATA")
        reply = await _read_reply(session.reader, self.timeout)
        if mail_reply.code != 250:
            for a in pending:
                out.setdefault(a, self._outcome(mail_reply))
            return reply.code != 354 and await self._rset(session)
        out.update(refused)
        if reply.code != 354:
            for a in accepted:
                out[a] = self._outcome(reply)
            return await self._rset(session)
        if not accepted:
            return False  # 354 with no recipient accepted: no reply to expect after the data; drop the session
        return await self._data(session, request, accepted, out)

    async def _chunked(self, session: _Session, request: DeliveryRequest, mail: str, pending: list[str],
                       out: dict[str, DeliveryOutcome]) -> bool:
        """`_transaction` to our own MDA as a single write: MAIL, every RCPT and `BDAT <size> LAST` with the
        message (RFC 3030, pipelined as RFC 2920 allows), then the replies in order: MAIL's, each RCPT's, and
        after the chunk one per accepted recipient (RFC 2033 §4.2), or a single one when the MDA refused the
        chunk as a whole (no recipient accepted, MAIL refused). Half the round trips of DATA (whose 354 must
        be awaited) and no dot-stuffing. Only on the link (XMAILBASTION): our MDA answers a refused last
        chunk with a recipient's count of replies, like a refused DATA, and exactly-once makes a resend after
        a broken session harmless."""
        body = crlf_message(request.message)
        session.data_sent = True
        mail_reply, accepted, refused = await self._group(session, mail, pending, f"BDAT {len(body)} LAST", body)
        out.update(refused)
        if mail_reply.code != 250 or not accepted:
            reply = await _read_reply(session.reader, self.timeout)  # the chunk's one refusal
            for a in pending:
                out.setdefault(a, self._outcome(mail_reply if mail_reply.code != 250 else reply))
            return await self._rset(session)
        for address in accepted:
            out[address] = self._outcome(await _read_reply(session.reader, self.timeout))
        return True

    async def _data(self, session: _Session, request: DeliveryRequest, accepted: list[str],
                    out: dict[str, DeliveryOutcome]) -> bool:
        """After 354: the message, then one reply per accepted recipient, in order (RFC 2033 §4.2)."""
        session.data_sent = True
        session.writer.write(prepare_message(request.message))
        await session.writer.drain()
        for address in accepted:
            out[address] = self._outcome(await _read_reply(session.reader, self.timeout))
        return True

    async def _rset(self, session: _Session) -> bool:
        try:
            reply = await asyncio.wait_for(self._command(session, "RSET"), 5)
        except (OSError, EOFError, TimeoutError, LmtpProtocolError):
            return False
        return reply.code == 250


__all__ = ["LINK_EXTENSION", "LmtpConnectionLost", "LmtpDeliveryAgent", "LmtpProtocolError", "prepare_message"]
