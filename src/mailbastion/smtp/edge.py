"""What every connection of one listener set shares: configuration, the connection gate, drain.

`SmtpEdge` is the protocol factory handed to `loop.create_server`: calling it makes one
`SmtpEdgeProtocol` (smtp/server.py) per connection. It owns the set of live connections so that a
graceful drain can tell the idle ones to leave and let the busy ones finish.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mailbastion.config.schema import Settings
from mailbastion.smtp.handler import StageHandler
from mailbastion.smtp.limits import ConnectionGate, EdgeLimits, NetworkList

if TYPE_CHECKING:
    from mailbastion.smtp.commands import SmtpEdgeProtocol
    from mailbastion.smtp.server import EdgeSession

__all__ = ["EdgeConfig", "SmtpEdge"]

log = logging.getLogger("mailbastion.smtp")


@dataclass(frozen=True)
class EdgeConfig:
    """Protocol-level settings of one listener set. `tls_context` None: no STARTTLS offered."""

    hostname: str = "localhost.localdomain"
    banner: str = "ESMTP mailbastion"
    limits: EdgeLimits = field(default_factory=EdgeLimits)
    tls_context: ssl.SSLContext | None = None
    require_starttls: bool = False
    proxy_from: NetworkList = field(default_factory=NetworkList)  # empty: PROXY protocol off
    xclient_from: NetworkList = field(default_factory=NetworkList)  # empty: XCLIENT off
    relay_networks: NetworkList = field(default_factory=NetworkList)

    @classmethod
    def from_settings(cls, settings: Settings, tls_context: ssl.SSLContext | None) -> EdgeConfig:
        smtp = settings.smtp
        return cls(
            hostname=settings.server.hostname,
            banner=smtp.banner,
            limits=EdgeLimits.from_section(smtp),
            tls_context=tls_context,
            require_starttls=smtp.require_starttls and tls_context is not None,
            # PROXY is on only when enabled *and* some load balancer is trusted to send it.
            proxy_from=NetworkList(smtp.proxy_protocol_from if smtp.proxy_protocol else []),
            xclient_from=NetworkList(smtp.xclient_hosts),
            relay_networks=NetworkList(settings.relay.networks),
        )


class SmtpEdge:
    """Protocol factory and connection registry for one process.

    Contract: `begin_drain()` stops new sessions (they get 421 4.3.2) and closes idle ones; sessions
    inside a transaction finish it, then get 421 and are closed. `abort_all()` closes whatever is
    left. `with_tls(ctx)` swaps the STARTTLS context for new connections (certificate reload).
    """

    def __init__(self, handler: StageHandler, config: EdgeConfig, *, implicit_tls: bool = False) -> None:
        self.handler = handler
        self.config = config
        self.implicit_tls = implicit_tls
        self.gate = ConnectionGate(config.limits.max_connections, config.limits.max_connections_per_client)
        self.connections: set[EdgeSession] = set()
        self.draining = False
        self.background: set[asyncio.Task[None]] = set()

    def __call__(self) -> SmtpEdgeProtocol:
        from mailbastion.smtp.commands import SmtpEdgeProtocol

        return SmtpEdgeProtocol(self)

    def set_tls_context(self, ctx: ssl.SSLContext | None) -> None:
        self.config = replace(self.config, tls_context=ctx)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    @property
    def busy_connections(self) -> int:
        return sum(1 for c in self.connections if c.in_transaction)

    def begin_drain(self) -> None:
        self.draining = True
        for conn in list(self.connections):
            conn.drain()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no connection is left open, at most `timeout` seconds. True if all are gone."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return not self.connections

    def abort_all(self) -> None:
        for conn in list(self.connections):
            conn.abort()
