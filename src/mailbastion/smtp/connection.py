"""One connection's plumbing on `asyncio.Protocol`: bytes in, replies out, timers, TLS upgrade, close.

`SmtpConnection` is the base of the session (`transaction.py`, `session.py`). It owns the transport
and the input buffer, and one task per connection that runs the conversation (`_run`, in
`session.py`). The transport calls `data_received`; the buffer (`reader.py`) says whether what the
task waits for is complete, and only then is the task woken: a batch of pipelined commands, a DATA
section or a BDAT chunk costs one wake-up, not one per line.

Replies are queued (`reply`) and written in one `transport.write` per batch (`flush`), which happens
whenever the task is about to wait for input (RFC 2920 §3.1: never wait with replies unsent) and
when the connection closes.

Flow control: a client that sends while the task is busy is paused once a few hundred KiB are
buffered; a client that does not read its replies is not read from until it does.

Timeouts are one timer per connection, checked lazily (no re-arming per read): `idle_timeout` while
waiting for a command, `data_timeout` while waiting for message content; they count only while the
session waits for the client, never while a handler works.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from collections.abc import Awaitable
from dataclasses import replace
from ipaddress import ip_address
from typing import TYPE_CHECKING

from mailbastion.core import replies
from mailbastion.core.envelope import Envelope
from mailbastion.core.peer import PeerInfo, TlsInfo
from mailbastion.core.replies import Reply
from mailbastion.smtp.reader import InputBuffer, Want

if TYPE_CHECKING:
    from mailbastion.smtp.edge import SmtpEdge

__all__ = ["SmtpConnection", "plain_ip", "tls_of", "wire"]

log = logging.getLogger("mailbastion.smtp")

_PAUSE_ABOVE = 256 * 1024  # buffered input while the session is busy, before reading pauses
_WIRE: dict[Reply, bytes] = {}


def wire(reply: Reply) -> bytes:
    """A reply as sent, CRLF included. The catalogue's replies are encoded once."""
    data = _WIRE.get(reply)
    if data is None:
        data = (str(reply) + "\r\n").encode("utf-8")
        if len(_WIRE) >= 1024:
            _WIRE.clear()  # replies made per message (queue ids) must not fill it for good
        _WIRE[reply] = data
    return data


def plain_ip(raw: str) -> str:
    """A peer address without scope, an IPv4-mapped IPv6 address as IPv4."""
    addr = ip_address(raw.split("%", 1)[0])
    mapped = getattr(addr, "ipv4_mapped", None)
    return str(mapped or addr)


def tls_info(obj: ssl.SSLObject | ssl.SSLSocket | None) -> TlsInfo | None:
    """What a Received header and the log line need to know about an established TLS session."""
    if obj is None:
        return None
    cipher = obj.cipher()
    if cipher is None:
        return None
    subject = None
    try:
        peer = obj.getpeercert()
    except (ValueError, ssl.SSLError):
        peer = None
    if peer:
        rdns: tuple[tuple[tuple[str, str], ...], ...] = peer.get("subject", ())  # type: ignore[assignment]
        parts = [v for rdn in rdns for (k, v) in rdn if k == "commonName"]
        subject = parts[0] if parts else None
    return TlsInfo(version=str(obj.version()), cipher=cipher[0], bits=int(cipher[2] or 0), peer_cert_subject=subject)


def tls_of(transport: asyncio.BaseTransport) -> TlsInfo | None:
    """The TLS session of a transport, with whether the client's certificate was verified (an
    `ssl_object` returns a non-empty peer certificate only when it validated it)."""
    obj = transport.get_extra_info("ssl_object")
    info = tls_info(obj)
    if info is None:
        return None
    try:
        verified = bool(obj.getpeercert())
    except (ValueError, ssl.SSLError):
        verified = False
    return replace(info, client_verified=verified)


class SmtpConnection(asyncio.Protocol):
    """Transport plumbing of one session. See the module docstring; the conversation is `_run`."""

    def __init__(self, edge: SmtpEdge) -> None:
        self.edge = edge
        self.cfg = edge.config
        self.limits = edge.config.limits
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.input = InputBuffer(self.limits.command_limit)
        self.peer = PeerInfo(ip="0.0.0.0", session_id=secrets.token_hex(6))
        self.socket_ip = "0.0.0.0"
        self.tx: Envelope | None = None
        self.errors = 0
        self.closing = False  # no more commands: a 421 was queued, QUIT, or the client is gone
        self.idle = False  # waiting for a command outside a transaction (a drain may end it now)
        self.writes = 0  # flushes that wrote something: input after one of them answers a reply
        self._out: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._span = self.limits.idle_timeout
        self._since = 0.0
        self._last_input = 0.0
        self._expired = False
        self._expire_closes = True
        self._lost = False
        self._eof = False
        self._read_paused = False
        self._write_paused = False
        self._admitted = False
        self._task: asyncio.Task[None] | None = None

    @property
    def in_transaction(self) -> bool:
        return self.tx is not None

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport
        peername = transport.get_extra_info("peername") or ("0.0.0.0", 0)
        self.socket_ip = plain_ip(str(peername[0]))
        tls = tls_of(transport) if self.edge.implicit_tls else None
        self.peer = self.peer.evolve(ip=self.socket_ip, port=int(peername[1]), tls=tls,
                                     is_relay_network=self.socket_ip in self.cfg.relay_networks)
        exempt = self.socket_ip in self.cfg.proxy_from or self.socket_ip in self.cfg.xclient_from
        self._admitted = not self.edge.draining and self.edge.gate.admit(self.socket_ip, exempt=exempt)
        self.edge.connections.add(self)
        self.edge.sessions_opened += 1
        self._task = self.loop.create_task(self._run())

    def data_received(self, data: bytes) -> None:
        self._last_input = self.loop.time()
        waiter = self._waiter
        if self.input.feed(data):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif waiter is None and len(self.input) > _PAUSE_ABOVE and not self._read_paused:
            self._pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        # Keep our side open to answer what was already sent (a client may half-close after QUIT);
        # the session closes when it has read everything. TLS transports cannot half-close.
        return self.transport is not None and self.transport.get_extra_info("ssl_object") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.closing = True
        self._wake()
        self._release()

    def pause_writing(self) -> None:
        # The client does not read its replies: stop reading its commands until it does.
        self._write_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._resume_reading()

    # -- waiting for input ---------------------------------------------------------------------

    async def wait_input(self, ready: bool, timeout: float, *, expire_closes: bool = True) -> bool:
        """Wait until the buffer holds what was asked for (`ready` is the answer of the `start_*`
        call that asked). Flushes queued replies first. False when the client is gone, the wait
        timed out (a timeout that `expire_closes` also sends 421 4.4.2 and closes), or the
        connection is closing."""
        self.flush()
        if ready or self._lost or self._eof or self.closing:
            self.input.want = Want.NOTHING
            return ready
        self._resume_reading()
        now = self.loop.time()
        self._span, self._since, self._expired = timeout, now, False
        self._expire_closes = expire_closes
        if self._timer is None or self._timer.when() > now + timeout:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_at(now + timeout, self._on_timer)
        waiter = self._waiter = self.loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None
        # Woken by the input asked for, or by an EOF, a close or a timeout before it came.
        ok = not (self._expired or self._lost or self.closing) and self.input.ready()
        self.input.want = Want.NOTHING
        return ok

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_timer(self) -> None:
        self._timer = None
        if self._waiter is None or self._lost:
            return  # not waiting for the client now; the next wait arms the timer again
        now = self.loop.time()
        due = max(self._since, self._last_input) + self._span
        if now < due:
            self._timer = self.loop.call_at(due, self._on_timer)
            return
        self._expired = True
        if self._expire_closes:
            log.info("timeout session=%s client=%s", self.peer.session_id, self.peer.ip)
            self.send_now(replies.IDLE_TIMEOUT)
        self._wake()

    def _pause_reading(self) -> None:
        if not self._read_paused and self.transport is not None and not self.transport.is_closing():
            self._read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and not self._write_paused and self.transport is not None \
                and not self.transport.is_closing():
            self._read_paused = False
            self.transport.resume_reading()

    # -- replies -------------------------------------------------------------------------------

    def reply(self, reply: Reply, *, counts: bool = True) -> None:
        """Queue one reply. Error replies count towards `max_errors` (but not 452 4.5.3: a client that
        pipelines more recipients than we take must not lose its transaction); 421 closes
        (RFC 5321 §3.8)."""
        self._out.append(wire(reply))
        if reply.code == 421:
            self.closing = True
        elif counts and reply.code >= 400 and reply != replies.TOO_MANY_RECIPIENTS:
            self.errors += 1
            if self.errors >= self.limits.max_errors:
                self._out.append(wire(replies.TOO_MANY_ERRORS))
                self.closing = True

    def flush(self) -> None:
        """Write every queued reply in one `transport.write`."""
        if not self._out:
            return
        data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        self._out.clear()
        self.writes += 1
        transport = self.transport
        if transport is not None and not transport.is_closing():
            try:
                transport.write(data)
            except (ConnectionError, RuntimeError):
                pass

    def close(self) -> None:
        """Send what is queued, then close (asyncio writes the buffer out before closing)."""
        self.flush()
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self._wake()

    def send_now(self, reply: Reply) -> None:
        """A last reply now, whatever the session is doing, then close (timeouts, drain, abort)."""
        self._out.append(wire(reply))
        self.close()

    def drain(self) -> None:
        """Graceful stop: an idle session is told 421 now; a busy one finishes its transaction
        (the session then says 421 itself, `session.py`)."""
        if self.idle and self.tx is None:
            self.send_now(replies.SHUTTING_DOWN)

    def abort(self) -> None:
        self.send_now(replies.SHUTTING_DOWN)

    async def ask(self, call: Awaitable[Reply]) -> Reply:
        """Await a handler call; an exception becomes 451 4.3.0 and a log entry, never a traceback."""
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

    # -- TLS -----------------------------------------------------------------------------------

    async def upgrade_tls(self, context: ssl.SSLContext) -> bool:
        """STARTTLS after the 220 was queued: send it, drop any plaintext the client sent after
        STARTTLS (RFC 3207 §4.2: the command-injection fix), and hand the socket to TLS with
        `loop.start_tls`. False (and the connection closed) when the handshake fails."""
        self.flush()
        dropped = self.input.clear()
        if dropped:
            log.warning("STARTTLS: %d plaintext octets sent after STARTTLS discarded session=%s client=%s",
                        dropped, self.peer.session_id, self.peer.ip)
        assert self.transport is not None
        self._read_paused = False  # start_tls pauses and resumes the socket itself
        try:
            transport = await self.loop.start_tls(self.transport, self, context, server_side=True,
                                                  ssl_handshake_timeout=self.limits.tls_handshake_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed handshake ends the session
            log.info("TLS handshake failed session=%s client=%s: %s", self.peer.session_id, self.peer.ip, exc)
            self.closing = True
            self._release()  # the TLS layer reports no connection_lost for a handshake that failed
            return False
        if transport is None:
            self.closing = True
            return False
        self.transport = transport
        self.peer = self.peer.evolve(tls=tls_of(transport))
        return True

    # -- the end -------------------------------------------------------------------------------

    def _release(self) -> None:
        """Free the client's slot in the connection gate, once."""
        if self._admitted:
            self._admitted = False
            self.edge.gate.release(self.socket_ip)

    def finish(self) -> None:
        """The conversation is over: close, free the slot, leave the registry."""
        self.close()
        self._release()
        self.edge.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _run(self) -> None:
        raise NotImplementedError  # session.py
