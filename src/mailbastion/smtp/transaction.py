"""The mail transaction (RFC 5321 §3.3): MAIL, RCPT, then DATA (§4.1.1.4) or BDAT chunks (RFC 3030).

Each `cmd_*` checks sequence and limits, parses its arguments (`commands.py`), asks the handler and
returns the `Reply` to send (None when it queued its replies itself). The end of a message goes to
the handler once: `on_data` (SMTP, one reply) or `on_lmtp_data` (LMTP, one reply per accepted
recipient, RFC 2033 §4.2). A message the engine refuses itself (too big, bare CR/LF, NUL, a line too
long) never reaches the handler; the engine logs one line for it.

BDAT rules (RFC 3030): a chunk is always read in full, even when refused, so the client stays in
step; DATA after BDAT in one transaction is 503; `BDAT 0 LAST` ends the message with what came
before; a chunk that would pass `max_message_size` is refused (552) and ends the transaction; a
BDAT whose size cannot be parsed cannot be skipped, so the session ends after 501.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailbastion.core import replies
from mailbastion.core.envelope import Envelope
from mailbastion.core.message import SpooledMessage
from mailbastion.core.replies import Reply
from mailbastion.smtp.commands import MailRequest, parse_bdat, parse_mail, parse_rcpt
from mailbastion.smtp.connection import SmtpConnection
from mailbastion.smtp.data import DataProblem, check_content, unstuff

if TYPE_CHECKING:
    from mailbastion.smtp.edge import SmtpEdge

__all__ = ["TransactionCommands"]

log = logging.getLogger("mailbastion.smtp")


class TransactionCommands(SmtpConnection):
    """MAIL, RCPT, DATA and BDAT of one session. The session state they share lives here."""

    def __init__(self, edge: SmtpEdge) -> None:
        super().__init__(edge)
        self.lmtp = edge.config.protocol == "lmtp"
        self.helo_name: str | None = None
        self.esmtp = False  # EHLO/LHLO said: PIPELINING and the extensions were offered
        self.mail_params: frozenset[str] = frozenset()  # MAIL parameters this session's EHLO enabled
        self.offers_dsn = False
        self.offers_chunking = False
        self.transactions = 0
        self.chunks: bytearray | None = None  # BDAT content so far; not None once a chunk came

    async def reset_transaction(self) -> None:
        self.tx = None
        self.chunks = None
        try:
            await self.edge.handler.on_reset(self.peer)
        except Exception:
            log.exception("on_reset failed session=%s", self.peer.session_id)

    # -- MAIL, RCPT ----------------------------------------------------------------------------

    async def cmd_mail(self, arg: str) -> Reply | None:
        if self.helo_name is None:
            return replies.NEED_HELO
        if self.tx is not None:
            return replies.NESTED_MAIL
        if self.transactions >= self.limits.max_transactions:
            return replies.TOO_MANY_TRANSACTIONS
        request = parse_mail(arg, allowed=self.mail_params if self.esmtp else frozenset(),
                             max_size=self.limits.max_message_size)
        if isinstance(request, Reply):
            return request
        envelope = self._envelope(request)
        reply = await self.ask(self.edge.handler.on_mail(self.peer, envelope))
        if reply.is_positive:
            self.tx = envelope
            self.chunks = None
            self.transactions += 1
        return reply

    def _envelope(self, request: MailRequest) -> Envelope:
        return Envelope(request.sender, helo=self.helo_name or "", body_8bitmime=request.body_8bitmime,
                        smtputf8=request.smtputf8, declared_size=request.size, mail_params=request.params,
                        dsn_ret=request.ret, dsn_envid=request.envid, requiretls=request.requiretls)

    async def cmd_rcpt(self, arg: str) -> Reply | None:
        tx = self.tx
        if tx is None:
            return replies.NEED_MAIL
        if self.chunks is not None:
            return replies.BAD_SEQUENCE  # RFC 3030 §3: no RCPT once the content has started
        if len(tx.recipients) >= self.limits.max_recipients:
            return replies.TOO_MANY_RECIPIENTS  # RFC 5321 §4.5.3.1.10: 452, the client retries the rest
        parsed = parse_rcpt(arg, smtputf8=tx.smtputf8, dsn=self.offers_dsn)
        if isinstance(parsed, Reply):
            return parsed
        rcpt, dsn = parsed
        reply = await self.ask(self.edge.handler.on_rcpt(self.peer, tx, rcpt))
        if reply.is_positive and self.tx is tx:
            self.tx = tx.with_recipient(rcpt, dsn)
        return reply

    # -- DATA ----------------------------------------------------------------------------------

    async def cmd_data(self, arg: str) -> Reply | None:
        tx = self.tx
        if tx is None:
            return replies.NEED_MAIL
        if self.chunks is not None:
            return replies.DATA_AFTER_BDAT  # RFC 3030 §3
        if not tx.recipients:
            return replies.NEED_RCPT
        if arg:
            return replies.PARAM_SYNTAX
        if len(self.input):
            # RFC 2920 §3.1: DATA ends a group; content sent before our 354 was sent blind.
            return self.violation("DATA")
        self.reply(replies.START_MAIL_INPUT)
        limit = self.limits.max_message_size
        if not await self.wait_input(self.input.start_data(limit), self.limits.data_timeout):
            return None
        taken = self.input.take_data()
        if taken is None:  # pragma: no cover - wait_input said it was there
            return None
        content, size = taken
        if content is None or len(content) > limit:
            await self._refuse(tx, DataProblem.TOO_BIG, size)
            return None
        problem = check_content(content, max_line=self.limits.max_line_length,
                                max_header=self.limits.max_header_size)
        if problem is not None:
            await self._refuse(tx, problem, size)
            return None
        await self._deliver(tx, unstuff(content))
        return None

    # -- BDAT ----------------------------------------------------------------------------------

    async def cmd_bdat(self, arg: str) -> Reply | None:
        parsed = parse_bdat(arg)
        if parsed is None:
            # The chunk's size is unknown, so it cannot be skipped: the stream is out of step.
            self.reply(replies.BDAT_SYNTAX)
            self.close()
            return None
        size, last = parsed
        tx = self.tx
        refusal = self._bdat_refusal(tx, size)
        if refusal is not None:
            if not await self.wait_input(self.input.start_skip(size), self.limits.data_timeout):
                return None
            # LMTP: a refused last chunk of a transaction with recipients ends it like a refused DATA, with
            # one reply per recipient (RFC 2033 §4.2), which is what the client then reads.
            for _ in range(len(tx.recipients) - 1 if self.lmtp and last and tx is not None else 0):
                self.reply(refusal, counts=False)
            if tx is not None and refusal.code >= 500:
                if refusal == replies.MESSAGE_TOO_LARGE:
                    self._log_refused(tx, DataProblem.TOO_BIG, len(self.chunks or b"") + size)
                await self.reset_transaction()  # RFC 3030 §3: a failed chunk fails the transaction
            return refusal
        assert tx is not None
        if not await self.wait_input(self.input.start_bytes(size), self.limits.data_timeout):
            return None
        chunks = self.chunks if self.chunks is not None else bytearray()
        chunks += self.input.take_bytes(size)
        self.chunks = chunks
        if not last:
            return replies.chunk_received(size)
        content = bytes(chunks)
        if content and not content.endswith(b"\r\n"):
            content += b"\r\n"  # a message ends with a line end; a last chunk may lack it
        problem = check_content(content, max_line=self.limits.max_line_length,
                                max_header=self.limits.max_header_size)
        if problem is not None:
            await self._refuse(tx, problem, len(content))
            return None
        await self._deliver(tx, content)
        return None

    def _bdat_refusal(self, tx: Envelope | None, size: int) -> Reply | None:
        if not self.offers_chunking:
            return replies.BAD_SEQUENCE
        if tx is None:
            return replies.NEED_MAIL
        if not tx.recipients:
            return replies.NO_VALID_RECIPIENTS
        if len(self.chunks or b"") + size > self.limits.max_message_size:
            return replies.MESSAGE_TOO_LARGE
        return None

    # -- the end of a message ------------------------------------------------------------------

    def _log_refused(self, tx: Envelope, problem: DataProblem, size: int) -> None:
        log.info("session=%s client=%s sender=%s recipients=%d size=%d action=reject reason=%s reply=%s",
                 self.peer.session_id, self.peer.ip, tx.sender_text or "<>", len(tx.recipients), size,
                 problem.value, problem.reply.code)

    async def _refuse(self, tx: Envelope, problem: DataProblem, size: int) -> None:
        self._log_refused(tx, problem, size)
        for _ in range(len(tx.recipients) if self.lmtp else 1):
            self.reply(problem.reply, counts=not self.lmtp)
        await self.reset_transaction()

    async def _deliver(self, tx: Envelope, content: bytes) -> None:
        message = SpooledMessage(content)
        if self.lmtp:
            for reply in await self._lmtp_replies(tx, message):
                self.reply(reply, counts=False)
        else:
            handler = self.edge.handler
            self.reply(await self.ask(handler.on_data(self.peer, tx, message)))  # type: ignore[union-attr]
        await self.reset_transaction()

    async def _lmtp_replies(self, tx: Envelope, message: SpooledMessage) -> Sequence[Reply]:
        wanted = len(tx.recipients)
        try:
            got = list(await self.edge.handler.on_lmtp_data(self.peer, tx, message))  # type: ignore[union-attr]
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("LMTP data handler failed session=%s", self.peer.session_id)
            got = []
        if len(got) != wanted or not all(isinstance(r, Reply) for r in got):
            if got:
                log.error("LMTP data handler returned %d replies for %d recipients", len(got), wanted)
            got = [r if isinstance(r, Reply) else replies.TEMP_FAILURE for r in got[:wanted]]
            got += [replies.TEMP_FAILURE] * (wanted - len(got))
        return got

    def violation(self, after: str) -> Reply:
        """Input sent ahead of a reply the client had to wait for: Postfix's answer, and close."""
        log.info("improper command pipelining after %s session=%s client=%s octets=%d", after,
                 self.peer.session_id, self.peer.ip, len(self.input))
        self.closing = True
        return replies.PROTOCOL_SYNC
