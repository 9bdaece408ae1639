"""The SMTP edge: one aiosmtpd `SMTP` protocol per connection that speaks protocol only.

We subclass aiosmtpd's `SMTP` for its connection plumbing (stream reader/writer, idle timer, the
STARTTLS transport swap with the RFC 3207 §4.2 buffer discard) and replace its command loop, so that
every reply comes from `core/replies.py`, every limit from `SmtpSection`, and every decision from the
`StageHandler`. `EdgeSession` here is the session plumbing; the commands live in its subclass
`smtp.commands.SmtpEdgeProtocol`, which is what `SmtpEdge()` creates per connection.

Limits enforced here (each with its RFC):
  command line > max_command_length      500 5.5.2 (RFC 5321 §4.5.3.1.4)
  bare CR/LF in a command line           500 5.5.2 (RFC 5321 §2.3.8)
  unknown commands > max_unknown         421 4.7.0 and close
  error replies >= max_errors            421 4.7.0 and close
  idle > idle_timeout                    421 4.4.2 and close (RFC 5321 §4.5.3.2.7)
  too many connections                   421 4.7.0 at connect
  unexpected exception anywhere          451 4.3.0, never a traceback to the client
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from ipaddress import ip_address
from typing import TYPE_CHECKING

from aiosmtpd import __version__ as _AIOSMTPD_VERSION
from aiosmtpd.proxy_protocol import get_proxy
from aiosmtpd.smtp import SMTP

from mailbastion.core import replies
from mailbastion.core.envelope import Envelope
from mailbastion.core.peer import PeerInfo
from mailbastion.core.replies import Reply
from mailbastion.smtp.tls import tls_info

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from mailbastion.smtp.edge import SmtpEdge

__all__ = ["EdgeSession"]

log = logging.getLogger("mailbastion.smtp")

# aiosmtpd logs three INFO lines per connection under "mail.log" (peer, AUTH mechanisms, loss); our one
# line per message says more. Quiet it unless a site has set that logger's level itself.
if logging.getLogger("mail.log").level == logging.NOTSET:
    logging.getLogger("mail.log").setLevel(logging.WARNING)


class _NoHooks:
    """aiosmtpd looks for `handle_*`/`auth_*` on its handler; ours lives apart, behind a Protocol."""


_NO_HOOKS = _NoHooks()
_PLUMBING_FOR = "1.4.6"  # the aiosmtpd whose connection state `_init_plumbing` reproduces


def _plain_ip(raw: str) -> str:
    addr = ip_address(raw.split("%", 1)[0])
    mapped = getattr(addr, "ipv4_mapped", None)
    return str(mapped or addr)


class EdgeSession(SMTP):
    """One SMTP session's plumbing: lifecycle, limits, replies, the command loop. See smtp/handler.py
    for the calls it makes and smtp/commands.py for the commands (`dispatch`)."""

    def __init__(self, edge: SmtpEdge) -> None:
        cfg = edge.config
        loop = asyncio.get_running_loop()
        # aiosmtpd sizes its StreamReader from this attribute; read before SMTP.__init__ uses it.
        self.line_length_limit = cfg.limits.reader_limit
        if _AIOSMTPD_VERSION == _PLUMBING_FOR:
            self._init_plumbing(cfg.hostname, cfg.limits.idle_timeout, loop)
        else:  # pragma: no cover - another aiosmtpd: let it build its own state, slower but safe
            super().__init__(
                _NO_HOOKS, data_size_limit=cfg.limits.max_message_size, enable_SMTPUTF8=True,
                hostname=cfg.hostname, ident=cfg.banner, tls_context=None, timeout=cfg.limits.idle_timeout,
                auth_exclude_mechanism=("LOGIN", "PLAIN"), loop=loop,
            )
        self.edge = edge
        self.cfg = cfg
        self.stage = edge.handler
        self.peer = PeerInfo(ip="0.0.0.0", session_id=secrets.token_hex(6))
        self.socket_ip = "0.0.0.0"
        self.esmtp = False
        self.helo_name: str | None = None
        self.xclient_helo: str | None = None
        self.tx: Envelope | None = None
        self.transactions = 0
        self.errors = 0
        self.unknown = 0
        self._admitted = False
        self._gone = False
        self._waiting_command = False
        self._closing = False

    def _init_plumbing(self, hostname: str, idle_timeout: float, loop: asyncio.AbstractEventLoop) -> None:
        """The state aiosmtpd 1.4.6's connection_made/connection_lost/eof_received use, without
        SMTP.__init__'s per-connection `inspect.getmembers` scans of AUTH and hook methods (about a
        quarter of our per-message cost; we use neither). Anything else of SMTP's is not reached:
        the command loop and every command are ours."""
        asyncio.StreamReaderProtocol.__init__(
            self, asyncio.StreamReader(loop=loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected, loop=loop)
        self.loop = loop
        self.event_handler = _NO_HOOKS
        self.hostname = hostname
        self.tls_context = None
        self.require_starttls = False
        self._timeout_duration = idle_timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._handle_hooks = {}
        self._auth_methods = {}
        self._smtp_methods = {}
        self._decode_data = False
        self.data_size_limit = None
        self.enable_SMTPUTF8 = True

    # -- connection lifecycle ------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return self.tx is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        upgrading = self.transport is not None and self._original_transport is not None
        super().connection_made(transport)
        if upgrading:
            # RFC 3207 §4.2: forget everything learnt before TLS; the client must EHLO again.
            self.peer = self.peer.evolve(tls=tls_info(transport.get_extra_info("ssl_object")), helo="")
            self.helo_name = None
            self.esmtp = False
            self.tx = None
            return
        peername = transport.get_extra_info("peername") or ("0.0.0.0", 0)
        self.socket_ip = _plain_ip(str(peername[0]))
        tls = tls_info(transport.get_extra_info("ssl_object")) if self.edge.implicit_tls else None
        self.peer = self.peer.evolve(ip=self.socket_ip, port=int(peername[1]), tls=tls,
                                     is_relay_network=self.socket_ip in self.cfg.relay_networks)
        exempt = self.socket_ip in self.cfg.proxy_from or self.socket_ip in self.cfg.xclient_from
        self._admitted = not self.edge.draining and self.edge.gate.admit(self.socket_ip, exempt=exempt)
        self.edge.connections.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.forget()

    def forget(self) -> None:
        """Leave the connection registry and free the client's slot, once. Called by connection_lost,
        and after a failed STARTTLS handshake, after which asyncio never calls connection_lost."""
        self.edge.connections.discard(self)
        if self._admitted:
            self._admitted = False
            self.edge.gate.release(self.socket_ip)
        if not self._gone:
            self._gone = True
            self.edge.spawn(self._say_goodbye())

    def eof_received(self) -> bool:
        # The client closed its side: nothing more can come. aiosmtpd cancels the session task and
        # keeps the socket half-open; a task cancelled before it first ran never closes it, so the
        # session would hold its connection slot (and block a drain) forever. Close our side too.
        super().eof_received()
        return False

    async def _say_goodbye(self) -> None:
        try:
            await self.stage.on_disconnect(self.peer)
        except Exception:
            log.exception("on_disconnect failed session=%s", self.peer.session_id)

    def _timeout_cb(self) -> None:
        log.info("idle timeout session=%s client=%s", self.peer.session_id, self.peer.ip)
        self._write_now(replies.IDLE_TIMEOUT)

    def _write_now(self, reply: Reply) -> None:
        """Send a final reply without waiting and close (timeouts, drain, abort)."""
        self._closing = True
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.transport.write(str(reply).encode("utf-8") + b"\r\n")  # type: ignore[attr-defined,unused-ignore]
            except (ConnectionError, RuntimeError):
                pass
            self.transport.close()

    def drain(self) -> None:
        """Graceful stop: an idle session is told 421 now; a busy one finishes its transaction."""
        if self._waiting_command and self.tx is None:
            self._write_now(replies.SHUTTING_DOWN)

    def abort(self) -> None:
        self._write_now(replies.SHUTTING_DOWN)

    # -- replies -------------------------------------------------------------------------------

    async def send(self, reply: Reply) -> None:
        """Send one reply. Error replies are counted; 421 closes the connection (RFC 5321 §3.8)."""
        self._writer.write(str(reply).encode("utf-8") + b"\r\n")
        if reply.code >= 400 and reply.code != 421:
            self.errors += 1
            if self.errors >= self.cfg.limits.max_errors:
                self._writer.write(str(replies.TOO_MANY_ERRORS).encode() + b"\r\n")
                reply = replies.TOO_MANY_ERRORS
        await self._writer.drain()
        if reply.code == 421:
            self.close()

    def close(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.close()

    async def ask(self, call: Awaitable[Reply]) -> Reply:
        """Await a StageHandler call; an exception becomes 451 4.3.0 and a log entry, never a traceback."""
        try:
            reply = await call
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("stage handler failed session=%s client=%s", self.peer.session_id, self.peer.ip)
            return replies.TEMP_FAILURE
        if not isinstance(reply, Reply):
            log.error("stage handler returned %r, not a Reply", reply)
            return replies.TEMP_FAILURE
        return reply

    # -- the command loop ----------------------------------------------------------------------

    async def _handle_client(self) -> None:
        try:
            await self._serve()
            # The loop ended (EOF from a client that half-closed, QUIT, 421): close our side too, or a
            # half-closed transport would stay open forever and hold its connection slot.
            self.close()
        except asyncio.CancelledError:
            self._writer.close()
            raise
        except (ConnectionError, asyncio.IncompleteReadError):
            self.close()
        except Exception:
            log.exception("session failed session=%s client=%s", self.peer.session_id, self.peer.ip)
            self._write_now(replies.TEMP_FAILURE)

    async def _serve(self) -> None:
        if not self._admitted:
            await self.send(replies.SHUTTING_DOWN if self.edge.draining else replies.TOO_MANY_CONNECTIONS)
            return
        if self.socket_ip in self.cfg.proxy_from and not await self._read_proxy_header():
            self.close()
            return
        reply = await self.ask(self.stage.on_connect(self.peer))
        if not reply.is_positive:
            await self.send(reply)
            self.close()
            return
        await self.send(self.greeting())
        while self.transport is not None and not self._closing:
            line = await self._read_line()
            if line is None:
                return
            if isinstance(line, Reply):
                await self.send(line)
                continue
            self._reset_timeout()
            await self.dispatch(line)
            if self.edge.draining and self.tx is None and not self._closing:
                await self.send(replies.SHUTTING_DOWN)

    async def dispatch(self, line: bytes) -> None:
        """Handle one command line (without CRLF). Implemented by smtp.commands.SmtpEdgeProtocol."""
        raise NotImplementedError

    def greeting(self) -> Reply:
        # RFC 2034 §3: no enhanced status code in the greeting.
        return Reply(220, "", f"{self.cfg.hostname} {self.cfg.banner}")

    async def _read_line(self) -> bytes | Reply | None:
        """One command line without its CRLF; a Reply when the line is refused; None at EOF."""
        self._waiting_command = True
        try:
            line = await self._reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as exc:
            await self._reader.read(exc.consumed)
            while True:  # read to the end of the over-long line, then refuse it
                try:
                    await self._reader.readuntil(b"\r\n")
                    break
                except asyncio.LimitOverrunError as more:
                    await self._reader.read(more.consumed)
            return replies.LINE_TOO_LONG
        except asyncio.IncompleteReadError:
            return None
        finally:
            self._waiting_command = False
        if len(line) > self.cfg.limits.max_command_length + (64 if self.esmtp else 0):
            # RFC 1870 §3 / RFC 6531 §3.4: ESMTP parameters may lengthen MAIL and RCPT a little.
            return replies.LINE_TOO_LONG
        line = line[:-2]
        if b"\r" in line or b"\n" in line:
            return replies.BARE_NEWLINE_IN_COMMAND
        return line

    async def _read_proxy_header(self) -> bool:
        """PROXY v1/v2 from a trusted load balancer (aiosmtpd's parser). False: close silently."""
        self._reset_timeout(self.cfg.limits.proxy_timeout)
        data = await get_proxy(self._reader)
        self._reset_timeout()
        if not data.valid:
            log.warning("invalid PROXY header from %s: %s", self.socket_ip, data.error)
            return False
        if data.src_addr is not None:  # None for LOCAL/UNSPEC: a health check; keep the socket peer
            ip = _plain_ip(str(data.src_addr))
            self.peer = self.peer.evolve(ip=ip, port=int(data.src_port or 0),
                                         is_relay_network=ip in self.cfg.relay_networks)
        return True
