"""Listening sockets: start and stop SMTP servers, drain gracefully, share sockets between processes.

One process:
    listeners = Listeners([(edge, ["127.0.0.1:2525"])])
    await listeners.start()
    ...
    await listeners.stop(drain_seconds=30)      # stop accepting, let transactions finish, close

Several acceptor processes (`server.workers` > 1): the parent binds once, the children inherit the
listening sockets and each accepts on them with its own event loop and its own handler (the kernel
spreads connections over the processes that wait in accept):
    sockets = bind(["0.0.0.0:25"])
    exit_code = run_workers(4, sockets, worker)  # worker(sockets) is an async callable run per child
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mailbastion.smtp.edge import SmtpEdge

__all__ = ["Listeners", "bind", "install_uvloop", "parse_listen", "run_workers"]

log = logging.getLogger("mailbastion.smtp")


def parse_listen(spec: str) -> tuple[str, int]:
    """`"127.0.0.1:2525"`, `"[::1]:25"`, `":25"` (all IPv4 addresses) → (host, port)."""
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address must be HOST:PORT, got {spec!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host or "0.0.0.0", int(port)


def bind(specs: Sequence[str], *, backlog: int = 512) -> list[socket.socket]:
    """Bind and listen on each address; the sockets are inheritable so forked workers share them."""
    out: list[socket.socket] = []
    for spec in specs:
        host, port = parse_listen(spec)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on accepted sockets whose proto says TCP, and
        # without it a reply batch written behind an unacknowledged one waits for the delayed ACK (40 ms).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
        sock.set_inheritable(True)
        out.append(sock)
    return out


def install_uvloop() -> bool:
    """Use uvloop's event loop policy when it is installed. Returns True if it is now in use."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


@dataclass(eq=False)
class _Bound:
    edge: SmtpEdge
    server: asyncio.base_events.Server
    label: str


class Listeners:
    """The servers of one process. `groups` pairs an edge with the addresses (or sockets) it serves."""

    def __init__(self, groups: Sequence[tuple[SmtpEdge, Sequence[str | socket.socket]]]) -> None:
        self.groups = list(groups)
        self.bound: list[_Bound] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for edge, targets in self.groups:
            ssl_ctx = edge.config.tls_context if edge.implicit_tls else None
            tls_args: dict[str, Any] = {}
            if ssl_ctx is not None:
                tls_args = {"ssl": ssl_ctx, "ssl_handshake_timeout": edge.config.limits.tls_handshake_timeout}
            for target in targets:
                if isinstance(target, socket.socket):
                    server = await loop.create_server(edge, sock=target, **tls_args)
                else:
                    host, port = parse_listen(target)
                    server = await loop.create_server(edge, host, port, reuse_address=True, **tls_args)
                for sock in server.sockets:
                    name = sock.getsockname()
                    kind = edge.config.protocol + ("s" if edge.implicit_tls else "")
                    self.bound.append(_Bound(edge, server, f"{kind} {name[0]}:{name[1]}"))
                    break

    def describe(self) -> list[str]:
        """One line per listening socket: `smtp 127.0.0.1:2525`, `smtps [::1]:465`, `lmtps 127.0.0.1:2424`."""
        return [b.label for b in self.bound]

    @property
    def ports(self) -> list[int]:
        return [int(b.label.rsplit(":", 1)[1]) for b in self.bound]

    async def stop(self, drain_seconds: float = 30.0) -> None:
        """Graceful drain: stop accepting; idle sessions get 421 4.3.2 now; sessions inside a
        transaction may finish it for up to `drain_seconds`, then get 421 and are closed."""
        for b in self.bound:
            b.server.close()
        edges = {id(b.edge): b.edge for b in self.bound}.values()
        for edge in edges:
            edge.begin_drain()
        for edge in edges:
            if not await edge.wait_idle(drain_seconds):
                log.warning("drain bound reached: closing %d session(s)", len(edge.connections))
                edge.abort_all()
                await edge.wait_idle(2.0)
        for b in self.bound:
            try:
                await asyncio.wait_for(b.server.wait_closed(), 2.0)
            except TimeoutError:
                pass
        self.bound.clear()


def _child(worker: Callable[[list[socket.socket]], Awaitable[None]], sockets: list[socket.socket]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards SIGTERM; ^C reaches the parent
    install_uvloop()
    asyncio.run(worker(sockets))  # type: ignore[arg-type]


def run_workers(workers: int, sockets: list[socket.socket],
                worker: Callable[[list[socket.socket]], Awaitable[None]]) -> int:
    """Fork `workers` acceptor processes over the same listening sockets and wait for them.

    `worker(sockets)` runs in each child under its own event loop; it builds its own handler
    (pipeline, spool writer, recipient map) and serves until it receives SIGTERM, which it should
    turn into a graceful `stop(drain_seconds)`. The parent forwards SIGTERM/SIGINT/SIGHUP to the
    children. Returns 0 when every child exited cleanly, else 1.
    """
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_child, args=(worker, sockets), name=f"mailbastion-smtp-{i}", daemon=False)
             for i in range(workers)]
    for p in procs:
        p.start()

    def forward(signum: int, _frame: object) -> None:
        target = signal.SIGTERM if signum == signal.SIGINT else signum
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, target)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        for p in procs:
            p.join()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return 0 if all(p.exitcode == 0 for p in procs) else 1
