"""The SMTP/LMTP session (RFC 5321 §4.1, RFC 2033): its life, the command loop, the session commands.

`SmtpSession` is what `SmtpEdge()` makes per connection. Its task (`_run`) goes:

    admitted? (connection gate, drain)  ──no──▶ 421 and close
    PROXY header (from trusted balancers only, `proxy.py`)
    handler.on_connect ──refused──▶ its reply and close
    early talker? (bytes before the greeting, after an optional `greet_pause`) ──▶ 554 5.5.0 and close
    220 greeting, then commands until QUIT, 421, EOF or a timeout
    handler.on_disconnect, exactly once

Refused as Postfix refuses them (`smtpd_forbid_unauth_pipelining`, postscreen's pregreet test):
a client that talks before the greeting, and one that sends commands ahead of their replies when it
was not offered PIPELINING (before EHLO, after HELO, after STARTTLS until the next EHLO), get
`554 5.5.0 Error: SMTP protocol synchronization` and are disconnected. After EHLO, pipelining is
allowed (RFC 2920), except content sent before the 354 of DATA (`transaction.py`).

Limits (each from `EdgeLimits`): command line > max_command_length (+64 for ESMTP parameters)
500 5.5.2; bare CR/LF in a command 500 5.5.2; NUL in a command 500 5.5.2; unknown commands >=
max_unknown 421 4.7.0; error replies >= max_errors 421 4.7.0 (452 4.5.3 "too many recipients"
excepted); idle > idle_timeout 421 4.4.2; any unexpected exception 451 4.3.0, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mailbastion.core import replies
from mailbastion.core.replies import Reply
from mailbastion.smtp.connection import plain_ip
from mailbastion.smtp.proxy import ProxyError, parse_proxy
from mailbastion.smtp.sasl import read_credentials
from mailbastion.smtp.transaction import TransactionCommands
from mailbastion.smtp.xclient import XclientError, parse_xclient

__all__ = ["SmtpSession"]

log = logging.getLogger("mailbastion.smtp")

Command = Callable[["SmtpSession", str], Awaitable[Reply | None]]
_BEFORE_TLS = {b"EHLO", b"HELO", b"LHLO", b"STARTTLS", b"NOOP", b"QUIT", b"RSET"}  # RFC 3207 §4
_KNOWN_VERBS = frozenset({  # named in the log when refused; any other unknown line is not
    b"HELO", b"EHLO", b"LHLO", b"MAIL", b"RCPT", b"DATA", b"BDAT", b"RSET", b"NOOP", b"QUIT", b"VRFY", b"EXPN",
    b"HELP", b"STARTTLS", b"AUTH", b"XCLIENT", b"ETRN", b"TURN", b"ATRN", b"BURL", b"SEND", b"SOML", b"SAML",
    b"XFORWARD", b"XEXCH50", b"PROXY", b"GET", b"POST", b"HEAD", b"CONNECT", b"USER", b"PASS",
})


class SmtpSession(TransactionCommands):
    """One SMTP or LMTP session: the conversation of one connection (see the module docstring)."""

    xclient_helo: str | None = None
    unknown = 0

    # -- the conversation ----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._converse()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session failed session=%s client=%s", self.peer.session_id, self.peer.ip)
            if not self.closing:
                self.send_now(replies.TEMP_FAILURE)
        finally:
            self.finish()
            try:
                await self.edge.handler.on_disconnect(self.peer)
            except Exception:
                log.exception("on_disconnect failed session=%s", self.peer.session_id)

    async def _converse(self) -> None:
        if not self._admitted:
            self.reply(replies.SHUTTING_DOWN if self.edge.draining else replies.TOO_MANY_CONNECTIONS)
            return
        if self.socket_ip in self.cfg.proxy_from and not await self._read_proxy():
            return
        reply = await self.ask(self.edge.handler.on_connect(self.peer))
        if not reply.is_positive:
            self.reply(reply)
            return
        if not await self._may_greet():
            return
        self.reply(self.greeting())
        await self._commands()

    def greeting(self) -> Reply:
        return Reply(220, "", f"{self.cfg.hostname} {self.cfg.banner}")  # RFC 2034 §3: no enhanced code

    async def _may_greet(self) -> bool:
        """RFC 5321 §4.3.1: the client waits for the greeting. Postscreen's pregreet test: wait
        `greet_pause` (not for our relay networks and XCLIENT front ends) and refuse a client that
        spoke meanwhile; without a pause, what arrived during on_connect is caught the same way."""
        pause = self.cfg.greet_pause
        if pause > 0 and not self.peer.is_relay_network and self.socket_ip not in self.cfg.xclient_from:
            await self.wait_input(self.input.start_any(), pause, expire_closes=False)
        if self._lost:
            return False
        if len(self.input):
            log.info("early talker (pregreet) session=%s client=%s octets=%d", self.peer.session_id,
                     self.peer.ip, len(self.input))
            self.reply(replies.PROTOCOL_SYNC)
            return False
        return True

    async def _read_proxy(self) -> bool:
        """A PROXY v1/v2 header from a trusted balancer, within `proxy_timeout`. False: close silently."""
        deadline = self.loop.time() + self.limits.proxy_timeout
        while True:
            try:
                header = parse_proxy(self.input.buf)
            except ProxyError as exc:
                log.warning("invalid PROXY header from %s: %s", self.socket_ip, exc)
                return False
            if header is not None:
                break
            left = deadline - self.loop.time()
            if left <= 0 or not await self.wait_input(self.input.start_more(), left, expire_closes=False):
                log.warning("no PROXY header from %s", self.socket_ip)
                return False
        del self.input.buf[: header.consumed]
        if header.source is not None:  # None: LOCAL/UNKNOWN, a health check; keep the socket peer
            ip = plain_ip(header.source)
            self.peer = self.peer.evolve(ip=ip, port=header.source_port,
                                         is_relay_network=ip in self.cfg.relay_networks)
        return True

    async def _commands(self) -> None:
        buffer = self.input
        while not self.closing:
            line = buffer.take_line()
            if line is None:
                if buffer.line_overflow:
                    if not await self.wait_input(buffer.start_discard(), self.limits.idle_timeout):
                        return
                    self.reply(replies.LINE_TOO_LONG)
                    continue
                self.idle = self.tx is None
                ready = await self.wait_input(buffer.start_line(), self.limits.idle_timeout)
                self.idle = False
                if not ready:
                    return
                continue
            writes = self.writes
            pending = self._dispatch(line)
            if pending is not None:
                reply = await pending
                if reply is not None:
                    self.reply(reply)
            if self.closing:
                return
            if not self.esmtp and len(buffer) and self.writes == writes:
                # Sent ahead of our reply without PIPELINING offered (RFC 2920 §3.1, RFC 5321 §4.3.1).
                # (A command that answered mid-way, as STARTTLS and AUTH do, was waited for.)
                self.reply(self.violation("a command without PIPELINING"))
                return
            if self.edge.draining and self.tx is None:
                self.reply(replies.SHUTTING_DOWN)
                return

    def _dispatch(self, line: bytes) -> Awaitable[Reply | None] | None:
        """Handle one command line (without its CRLF). What needs no handler (refusals, NOOP, QUIT,
        ...) is answered here, synchronously; otherwise the command's coroutine is returned to await."""
        if len(line) + 2 > self.limits.max_command_length + (64 if self.esmtp else 0):
            # RFC 1870 §3 / RFC 6531 §3.4: ESMTP parameters may lengthen MAIL and RCPT a little.
            self.reply(replies.LINE_TOO_LONG)
            return None
        if b"\r" in line or b"\n" in line:
            self.reply(replies.BARE_NEWLINE_IN_COMMAND)
            return None
        if b"\x00" in line:
            self.reply(replies.NUL_IN_COMMAND)
            return None
        verb, _, raw = line.partition(b" ")
        verb = verb.upper()
        command = (_LMTP if self.lmtp else _SMTP).get(verb)
        local = _LOCAL.get(verb) if command is None else None
        if command is None and local is None:
            self.unknown += 1
            # Only a verb we know of is named: an unknown line may be a SASL response sent blind
            # (a client pipelining AUTH LOGIN in clear text), i.e. a password in base64.
            named = verb.decode("ascii") if verb in _KNOWN_VERBS else f"<{len(line)} octets>"
            log.info("unknown command session=%s client=%s verb=%s", self.peer.session_id, self.peer.ip, named)
            over = self.unknown >= self.limits.max_unknown_commands
            self.reply(replies.TOO_MANY_ERRORS if over else replies.UNKNOWN_COMMAND)
            return None
        if self.cfg.require_starttls and self.peer.tls is None and verb not in _BEFORE_TLS:
            self.reply(replies.ENCRYPTION_REQUIRED)
            return None
        # Arguments may be UTF-8 (RFC 6531), and nothing else: other 8-bit bytes would travel on
        # as undecodable text into the spool, the logs and the next hop.
        try:
            arg = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            self.reply(replies.PARAM_SYNTAX.with_text("Invalid UTF-8 in command (RFC 6531)"))
            return None
        if local is not None:
            reply = local(self, arg)
            if reply is not None:
                self.reply(reply)
            return None
        assert command is not None
        return command(self, arg)

    # -- HELO, EHLO, LHLO ----------------------------------------------------------------------

    async def cmd_helo(self, arg: str) -> Reply | None:
        return await self._hello(arg, esmtp=False)

    async def cmd_ehlo(self, arg: str) -> Reply | None:
        return await self._hello(arg, esmtp=True)

    async def _hello(self, arg: str, *, esmtp: bool) -> Reply | None:
        if not arg:
            return replies.BAD_HELO
        await self.reset_transaction()  # RFC 5321 §4.1.4: EHLO also resets the transaction
        name = self.xclient_helo or arg
        peer = self.peer.evolve(helo=name)
        reply = await self.ask(self.edge.handler.on_helo(peer, name))
        if not reply.is_positive:
            return reply
        self.peer, self.helo_name, self.esmtp = peer, name, esmtp
        if not esmtp:
            self.mail_params, self.offers_dsn, self.offers_chunking = frozenset(), False, False
            return Reply(250, "", self.cfg.hostname)
        return Reply(250, "", "\n".join([self.cfg.hostname, *self._offer()]))  # RFC 2034 §3: no enhanced code

    def _offer(self) -> list[str]:
        """The EHLO/LHLO keywords for this session now, and the MAIL parameters they enable."""
        cfg = self.edge.config  # read live: a certificate reload may have added STARTTLS
        tls = self.peer.tls is not None
        lines = ["PIPELINING", f"SIZE {self.limits.max_message_size}", "8BITMIME", "SMTPUTF8"]
        params = {"SIZE", "BODY", "SMTPUTF8"}
        if cfg.offer_chunking:
            lines.append("CHUNKING")
        if cfg.offer_dsn:
            lines.append("DSN")
            params |= {"RET", "ENVID"}
        if cfg.tls_context is not None and not tls and not self.lmtp:
            lines.append("STARTTLS")
        if cfg.offer_requiretls and tls:
            lines.append("REQUIRETLS")  # RFC 8689 §4: only on a TLS-protected session
            params.add("REQUIRETLS")
        mechanisms = self.edge.handler.auth_mechanisms
        if mechanisms and tls:
            lines.append("AUTH " + " ".join(mechanisms))
            params.add("AUTH")  # RFC 4954 §5
        if self.socket_ip in cfg.xclient_from:
            lines.append("XCLIENT NAME ADDR PORT PROTO HELO")
        try:
            extra = dict(self.edge.handler.extensions(self.peer))
        except Exception:
            log.exception("handler extensions failed session=%s", self.peer.session_id)
            extra = {}
        for keyword, enabled in extra.items():
            lines.append(keyword)
            params |= enabled
        lines.append("ENHANCEDSTATUSCODES")
        self.mail_params = frozenset(params)
        self.offers_dsn, self.offers_chunking = cfg.offer_dsn, cfg.offer_chunking
        return lines

    # -- small commands ------------------------------------------------------------------------

    async def cmd_rset(self, arg: str) -> Reply | None:
        if arg:
            return replies.PARAM_SYNTAX
        await self.reset_transaction()
        return replies.OK

    # Synchronous: answered while parsing the batch, no coroutine (see `_LOCAL`).

    def cmd_noop(self, arg: str) -> Reply | None:
        return replies.OK

    def cmd_quit(self, arg: str) -> Reply | None:
        self.reply(replies.CLOSING)
        self.close()
        return None

    def cmd_vrfy(self, arg: str) -> Reply | None:
        # RFC 5321 §3.5.3: 252 without disclosing whether the mailbox exists.
        return replies.CANNOT_VRFY if arg else replies.PARAM_SYNTAX

    def cmd_expn(self, arg: str) -> Reply | None:
        return replies.NOT_IMPLEMENTED

    def cmd_help(self, arg: str) -> Reply | None:
        return replies.HELP

    # -- STARTTLS, XCLIENT, AUTH ---------------------------------------------------------------

    async def cmd_starttls(self, arg: str) -> Reply | None:
        context = self.edge.config.tls_context
        if context is None or self.lmtp:
            return replies.NOT_IMPLEMENTED
        if arg:
            return replies.PARAM_SYNTAX
        if self.peer.tls is not None:
            return replies.BAD_SEQUENCE
        self.reply(replies.READY_FOR_TLS)
        if not await self.upgrade_tls(context):
            return None
        # RFC 3207 §4.2: forget everything learnt before TLS; the client must EHLO again.
        await self.reset_transaction()
        self.peer = self.peer.evolve(helo="")
        self.helo_name, self.esmtp, self.mail_params = None, False, frozenset()
        return None

    async def cmd_xclient(self, arg: str) -> Reply | None:
        # Postfix XCLIENT: only from the socket address of a trusted front end, never from a
        # client that merely claims to be one.
        if self.socket_ip not in self.cfg.xclient_from:
            return replies.XCLIENT_DENIED
        if self.tx is not None:
            return replies.BAD_SEQUENCE
        try:
            request = parse_xclient(arg)
        except XclientError as exc:
            return replies.PARAM_SYNTAX.with_text(f"Bad XCLIENT: {exc}")
        changes: dict[str, Any] = {}
        if request.addr is not None:
            changes.update(ip=request.addr, is_relay_network=request.addr in self.cfg.relay_networks)
        if request.port is not None:
            changes["port"] = request.port
        if "NAME=" in arg.upper():
            changes["hostname"] = request.name
        self.peer = self.peer.evolve(helo="", authenticated_as=None, **changes)
        self.xclient_helo = request.helo
        self.helo_name, self.esmtp = None, False  # the client says EHLO again; it reports as `xclient_helo`
        await self.reset_transaction()
        reply = await self.ask(self.edge.handler.on_connect(self.peer))
        if not reply.is_positive:
            self.reply(reply)
            self.close()
            return None
        return self.greeting()

    async def cmd_auth(self, arg: str) -> Reply | None:
        mechanisms = self.edge.handler.auth_mechanisms
        if not mechanisms or self.lmtp:
            return replies.NOT_IMPLEMENTED  # a role that authenticates nobody (the MX) offers no AUTH
        if self.peer.tls is None:
            return replies.AUTH_NEEDS_TLS  # RFC 4954 §4: never a password in clear text
        if not self.esmtp:
            return replies.NEED_HELO
        if self.peer.authenticated_as is not None:
            return replies.AUTH_ALREADY
        if self.tx is not None:
            return replies.BAD_SEQUENCE
        result = await read_credentials(arg, mechanisms, self._sasl_prompt)
        if result is None:
            self.closing = True
            return None
        if isinstance(result, Reply):
            return result
        reply = await self.ask(self.edge.handler.on_auth(self.peer, result.mechanism, result.authzid,
                                                         result.authcid, result.password))
        if reply.code == 235:
            self.peer = self.peer.evolve(authenticated_as=result.authzid or result.authcid)
        log.info("auth session=%s client=%s mechanism=%s user=%r reply=%d", self.peer.session_id, self.peer.ip,
                 result.mechanism, result.authcid[:64], reply.code)
        return reply

    async def _sasl_prompt(self, challenge: bytes) -> bytes | None:
        """Send `334 <challenge>` and return the client's response line (never logged)."""
        self._out.append(b"334 " + challenge + b"\r\n")
        buffer = self.input
        while True:
            line = buffer.take_line()
            if line is not None:
                return line
            if buffer.line_overflow:
                if not await self.wait_input(buffer.start_discard(), self.limits.idle_timeout):
                    return None
                return b"\x00"  # not base64: refused as undecodable
            if not await self.wait_input(buffer.start_line(), self.limits.idle_timeout):
                return None


_LOCAL: dict[bytes, Callable[[SmtpSession, str], Reply | None]] = {
    b"NOOP": SmtpSession.cmd_noop, b"QUIT": SmtpSession.cmd_quit, b"VRFY": SmtpSession.cmd_vrfy,
    b"EXPN": SmtpSession.cmd_expn, b"HELP": SmtpSession.cmd_help,
}
_COMMON: dict[bytes, Command] = {
    b"MAIL": SmtpSession.cmd_mail, b"RCPT": SmtpSession.cmd_rcpt, b"DATA": SmtpSession.cmd_data,
    b"BDAT": SmtpSession.cmd_bdat, b"RSET": SmtpSession.cmd_rset,
}
_SMTP: dict[bytes, Command] = {
    **_COMMON, b"HELO": SmtpSession.cmd_helo, b"EHLO": SmtpSession.cmd_ehlo,
    b"STARTTLS": SmtpSession.cmd_starttls, b"XCLIENT": SmtpSession.cmd_xclient, b"AUTH": SmtpSession.cmd_auth,
}
_LMTP: dict[bytes, Command] = {**_COMMON, b"LHLO": SmtpSession.cmd_ehlo}  # RFC 2033 §4.1: LHLO only
