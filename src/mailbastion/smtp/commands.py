"""The SMTP commands of the edge (RFC 5321 §4.1): `SmtpEdgeProtocol`, one per connection.

Each `cmd_*` parses its arguments, checks sequence and limits, asks the StageHandler and returns the
`Reply` to send (None when it has already answered, as STARTTLS and refusals that close do). None of
them decides policy: that is the handler's job.
"""

from __future__ import annotations

import asyncio
import logging
import re
from asyncio import sslproto
from typing import Any

from mailbastion.core import replies
from mailbastion.core.address import AddressError, parse_path
from mailbastion.core.envelope import Envelope
from mailbastion.core.message import SpooledMessage
from mailbastion.core.replies import Reply
from mailbastion.smtp.data import read_data
from mailbastion.smtp.server import EdgeSession
from mailbastion.smtp.xclient import XclientError, parse_xclient

__all__ = ["SmtpEdgeProtocol", "split_path"]

log = logging.getLogger("mailbastion.smtp")

_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")  # RFC 5321 §4.1.2 esmtp-keyword
_BEFORE_TLS = {"EHLO", "HELO", "STARTTLS", "NOOP", "QUIT", "RSET"}  # RFC 3207 §4
_COMMANDS = {
    "HELO": "cmd_helo", "EHLO": "cmd_ehlo", "MAIL": "cmd_mail", "RCPT": "cmd_rcpt", "DATA": "cmd_data",
    "RSET": "cmd_rset", "NOOP": "cmd_noop", "QUIT": "cmd_quit", "VRFY": "cmd_vrfy", "EXPN": "cmd_expn",
    "HELP": "cmd_help", "STARTTLS": "cmd_starttls", "XCLIENT": "cmd_xclient", "AUTH": "cmd_expn",
}
_TLS_HANDSHAKE_TIMEOUT = 30.0


def split_path(arg: str, keyword: str) -> tuple[str, list[str]] | None:
    """`FROM:<a@b> SIZE=10` → (`<a@b>`, [`SIZE=10`]). Tolerates a space after the colon (common,
    though RFC 5321 has none). A `>` inside a quoted local part does not end the path. None: syntax."""
    if arg[: len(keyword)].upper() != keyword:
        return None
    rest = arg[len(keyword):].lstrip()
    if not rest.startswith("<"):
        path, _, params = rest.partition(" ")
        return (path, params.split()) if path else None
    i, quoted = 1, False
    while i < len(rest):
        c = rest[i]
        if quoted and c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == ">" and not quoted:
            tail = rest[i + 1:]
            if tail and not tail.startswith(" "):
                return None
            return rest[: i + 1], tail.split()
        i += 1
    return None


def _params(items: list[str]) -> dict[str, str | bool] | None:
    out: dict[str, str | bool] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not _KEYWORD.match(key) or (eq and not value):
            return None
        out[key.upper()] = value if eq else True
    return out


class SmtpEdgeProtocol(EdgeSession):
    """The SMTP session the edge runs per connection. Created by `SmtpEdge()` (smtp/edge.py)."""

    async def dispatch(self, line: bytes) -> None:
        verb_b, _, arg_b = line.partition(b" ")
        try:
            verb = verb_b.decode("ascii").upper()
        except UnicodeDecodeError:
            verb = ""
        name = _COMMANDS.get(verb)
        if name is None:
            self.unknown += 1
            log.info("unknown command session=%s client=%s verb=%r", self.peer.session_id, self.peer.ip,
                     verb_b[:32])
            over = self.unknown >= self.cfg.limits.max_unknown_commands
            await self.send(replies.TOO_MANY_ERRORS if over else replies.UNKNOWN_COMMAND)
            return
        if self.cfg.require_starttls and self.peer.tls is None and verb not in _BEFORE_TLS:
            await self.send(replies.ENCRYPTION_REQUIRED)
            return
        # Arguments may be UTF-8 (RFC 6531), and nothing else: other 8-bit bytes would travel on
        # as undecodable text into the spool, the logs and the next hop.
        try:
            arg = arg_b.decode("utf-8").strip()
        except UnicodeDecodeError:
            await self.send(replies.PARAM_SYNTAX.with_text("Invalid UTF-8 in command (RFC 6531)"))
            return
        reply = await getattr(self, name)(arg)
        if reply is not None:
            await self.send(reply)

    async def reset_transaction(self) -> None:
        self.tx = None
        try:
            await self.stage.on_reset(self.peer)
        except Exception:
            log.exception("on_reset failed session=%s", self.peer.session_id)

    def extensions(self) -> list[str]:
        ext = ["PIPELINING", f"SIZE {self.cfg.limits.max_message_size}", "8BITMIME", "SMTPUTF8"]
        if self.edge.config.tls_context is not None and self.peer.tls is None:
            ext.append("STARTTLS")
        if self.socket_ip in self.cfg.xclient_from:
            ext.append("XCLIENT NAME ADDR PORT PROTO HELO")
        ext.append("ENHANCEDSTATUSCODES")
        return ext

    # -- session commands ----------------------------------------------------------------------

    async def cmd_helo(self, arg: str) -> Reply | None:
        return await self._greet(arg, esmtp=False)

    async def cmd_ehlo(self, arg: str) -> Reply | None:
        return await self._greet(arg, esmtp=True)

    async def _greet(self, arg: str, *, esmtp: bool) -> Reply | None:
        if not arg:
            return replies.BAD_HELO
        await self.reset_transaction()  # RFC 5321 §4.1.4: EHLO also resets the transaction
        name = self.xclient_helo or arg
        peer = self.peer.evolve(helo=name)
        reply = await self.ask(self.stage.on_helo(peer, name))
        if not reply.is_positive:
            return reply
        self.peer, self.helo_name, self.esmtp = peer, name, esmtp
        lines = [self.cfg.hostname, *self.extensions()] if esmtp else [self.cfg.hostname]
        return Reply(250, "", "\n".join(lines))  # RFC 2034 §3: no enhanced code on EHLO replies

    async def cmd_rset(self, arg: str) -> Reply | None:
        if arg:
            return replies.PARAM_SYNTAX
        await self.reset_transaction()
        return replies.OK

    async def cmd_noop(self, arg: str) -> Reply | None:
        return replies.OK

    async def cmd_quit(self, arg: str) -> Reply | None:
        await self.send(replies.CLOSING)
        self.close()
        return None

    async def cmd_vrfy(self, arg: str) -> Reply | None:
        # RFC 5321 §3.5.3: 252 without disclosing whether the mailbox exists.
        return replies.CANNOT_VRFY if arg else replies.PARAM_SYNTAX

    async def cmd_expn(self, arg: str) -> Reply | None:
        return replies.NOT_IMPLEMENTED  # EXPN, and AUTH: the MX gateway authenticates nobody

    async def cmd_help(self, arg: str) -> Reply | None:
        return replies.HELP

    async def cmd_starttls(self, arg: str) -> Reply | None:
        ctx = self.edge.config.tls_context
        if ctx is None:
            return replies.NOT_IMPLEMENTED
        if arg:
            return replies.PARAM_SYNTAX
        if self.peer.tls is not None:
            return replies.BAD_SEQUENCE
        await self.send(replies.READY_FOR_TLS)
        # The transport swap aiosmtpd does; connection_made() then clears any plaintext already
        # buffered (RFC 3207 §4.2, the STARTTLS command-injection fix) and records the TLS session.
        waiter = self.loop.create_future()
        tls_protocol = sslproto.SSLProtocol(self.loop, self, ctx, waiter, server_side=True)
        self._tls_protocol = tls_protocol
        self._original_transport = self.transport
        assert self._original_transport is not None
        self._original_transport.set_protocol(tls_protocol)
        self.transport = tls_protocol._app_transport
        tls_protocol.connection_made(self._original_transport)
        try:
            await asyncio.wait_for(waiter, _TLS_HANDSHAKE_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed handshake ends the session
            log.info("TLS handshake failed session=%s client=%s: %s", self.peer.session_id, self.peer.ip, exc)
            self._closing = True
            self._original_transport.close()
            self.forget()  # SSLProtocol only reports connection_lost to an app whose handshake succeeded
        return None

    async def cmd_xclient(self, arg: str) -> Reply | None:
        # Postfix XCLIENT: only from the socket address of a trusted front end, never from a
        # client that merely claims to be one.
        if self.socket_ip not in self.cfg.xclient_from:
            return replies.XCLIENT_DENIED
        if self.tx is not None:
            return replies.BAD_SEQUENCE
        try:
            req = parse_xclient(arg)
        except XclientError as exc:
            return replies.PARAM_SYNTAX.with_text(f"Bad XCLIENT: {exc}")
        changes: dict[str, Any] = {}
        if req.addr is not None:
            changes.update(ip=req.addr, is_relay_network=req.addr in self.cfg.relay_networks)
        if req.port is not None:
            changes["port"] = req.port
        if "NAME=" in arg.upper():
            changes["hostname"] = req.name
        self.peer = self.peer.evolve(helo="", **changes)
        self.xclient_helo = req.helo
        self.helo_name = None  # the client says EHLO again; it reports as `xclient_helo`
        await self.reset_transaction()
        reply = await self.ask(self.stage.on_connect(self.peer))
        if not reply.is_positive:
            await self.send(reply)
            self.close()
            return None
        return self.greeting()

    # -- the transaction -----------------------------------------------------------------------

    async def cmd_mail(self, arg: str) -> Reply | None:
        if self.helo_name is None:
            return replies.NEED_HELO
        if self.tx is not None:
            return replies.NESTED_MAIL
        if self.transactions >= self.cfg.limits.max_transactions:
            return replies.TOO_MANY_TRANSACTIONS
        split = split_path(arg, "FROM:")
        if split is None:
            return replies.PARAM_SYNTAX
        path, raw_params = split
        params = _params(raw_params)
        if params is None or (raw_params and not self.esmtp):
            return replies.PARAM_SYNTAX
        body = params.pop("BODY", "7BIT")
        if not isinstance(body, str) or body.upper() not in ("7BIT", "8BITMIME"):
            return replies.PARAM_SYNTAX.with_text("BODY must be 7BIT or 8BITMIME")
        smtputf8 = params.pop("SMTPUTF8", False)
        if smtputf8 is not False and smtputf8 is not True:
            return replies.PARAM_SYNTAX.with_text("SMTPUTF8 takes no value")
        size = params.pop("SIZE", None)
        if size is not None:
            if not isinstance(size, str) or not size.isdigit() or len(size) > 20:
                return replies.PARAM_SYNTAX.with_text("SIZE must be a number")
            if int(size) > self.cfg.limits.max_message_size:
                return replies.MESSAGE_TOO_LARGE  # RFC 1870 §6.1
        if params:
            return replies.PARAM_NOT_RECOGNIZED
        try:
            sender = parse_path(path, allow_utf8=smtputf8, allow_null=True)
        except AddressError as exc:
            return replies.BAD_SENDER_SYNTAX.with_text(f"Bad sender address syntax: {exc}")
        env = Envelope(sender, helo=self.helo_name, body_8bitmime=body.upper() == "8BITMIME",
                       smtputf8=smtputf8, declared_size=int(size) if size else None,
                       mail_params=tuple((p.partition("=")[0].upper(), p.partition("=")[2]) for p in raw_params))
        reply = await self.ask(self.stage.on_mail(self.peer, env))
        if reply.is_positive:
            self.tx = env
            self.transactions += 1
        return reply

    async def cmd_rcpt(self, arg: str) -> Reply | None:
        if self.tx is None:
            return replies.NEED_MAIL
        if len(self.tx.recipients) >= self.cfg.limits.max_recipients:
            return replies.TOO_MANY_RECIPIENTS  # RFC 5321 §4.5.3.1.10: 452, the client retries the rest
        split = split_path(arg, "TO:")
        if split is None:
            return replies.PARAM_SYNTAX
        path, raw_params = split
        if raw_params:
            return replies.PARAM_NOT_RECOGNIZED  # no RCPT extensions (DSN) are offered
        try:
            rcpt = parse_path(path, allow_utf8=self.tx.smtputf8)
        except AddressError as exc:
            return replies.BAD_RECIPIENT_SYNTAX.with_text(f"Bad recipient address syntax: {exc}")
        assert rcpt is not None
        reply = await self.ask(self.stage.on_rcpt(self.peer, self.tx, rcpt))
        if reply.is_positive and self.tx is not None:
            self.tx = self.tx.with_recipient(rcpt)
        return reply

    async def cmd_data(self, arg: str) -> Reply | None:
        if self.tx is None:
            return replies.NEED_MAIL
        if not self.tx.recipients:
            return replies.NEED_RCPT
        if arg:
            return replies.PARAM_SYNTAX
        await self.send(replies.START_MAIL_INPUT)
        limits = self.cfg.limits
        self._reset_timeout(limits.data_timeout)
        result = await read_data(self._reader, max_size=limits.max_message_size, max_line=limits.max_line_length)
        env = self.tx
        if result.problem is not None:
            reply = result.problem.reply
            log.info("session=%s client=%s sender=%s recipients=%d size=%d action=reject reason=%s reply=%s",
                     self.peer.session_id, self.peer.ip, env.sender_text or "<>", len(env.recipients),
                     result.size, result.problem.value, reply.code)
        else:
            self._reset_timeout(limits.data_timeout)  # checks run under their own timeouts
            reply = await self.ask(self.stage.on_data(self.peer, env, SpooledMessage(result.content)))
        await self.reset_transaction()
        self._reset_timeout()
        return reply
