"""What every connection of one listener set shares: configuration, handler, connection gate, drain.

`SmtpEdge` is the protocol factory handed to `loop.create_server`: calling it makes one
`SmtpSession` (`session.py`) per connection. It owns the set of live connections so that a graceful
drain can tell the idle ones to leave and let the busy ones finish. The roles build `EdgeConfig`
from their settings in `apps/` (the engine reads no configuration file).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from mailbastion.smtp.handler import LmtpStageHandler, StageHandler
from mailbastion.smtp.limits import ConnectionGate, EdgeLimits, NetworkList

if TYPE_CHECKING:
    from mailbastion.smtp.connection import SmtpConnection
    from mailbastion.smtp.session import SmtpSession

__all__ = ["EdgeConfig", "SmtpEdge"]

log = logging.getLogger("mailbastion.smtp")


@dataclass(frozen=True)
class EdgeConfig:
    """Protocol-level settings of one listener set. `tls_context` None: no STARTTLS offered."""

    hostname: str = "localhost.localdomain"
    banner: str = "ESMTP mailbastion"
    protocol: Literal["smtp", "lmtp"] = "smtp"
    limits: EdgeLimits = field(default_factory=EdgeLimits)
    tls_context: ssl.SSLContext | None = None
    require_starttls: bool = False
    proxy_from: NetworkList = field(default_factory=NetworkList)  # empty: PROXY protocol off
    xclient_from: NetworkList = field(default_factory=NetworkList)  # empty: XCLIENT off
    relay_networks: NetworkList = field(default_factory=NetworkList)
    greet_pause: float = 0.0  # seconds to wait for an early talker before the greeting (0: none)
    offer_dsn: bool = True  # RFC 3461
    offer_chunking: bool = True  # RFC 3030
    offer_requiretls: bool = True  # RFC 8689, under TLS only


class SmtpEdge:
    """Protocol factory and connection registry for one process.

    Contract: `begin_drain()` stops new sessions (they get 421 4.3.2) and closes idle ones; sessions
    inside a transaction finish it, then get 421 and are closed. `abort_all()` closes whatever is
    left. `set_tls_context(ctx)` swaps the STARTTLS context for new sessions (certificate reload).
    """

    def __init__(self, handler: StageHandler | LmtpStageHandler, config: EdgeConfig, *,
                 implicit_tls: bool = False) -> None:
        if config.protocol == "lmtp" and not isinstance(handler, LmtpStageHandler):
            raise TypeError("an LMTP listener needs a handler with on_lmtp_data")
        if config.protocol == "smtp" and not isinstance(handler, StageHandler):
            raise TypeError("an SMTP listener needs a handler with on_data")
        self.handler = handler
        self.config = config
        self.implicit_tls = implicit_tls
        self.gate = ConnectionGate(config.limits.max_connections, config.limits.max_connections_per_client)
        self.connections: set[SmtpConnection] = set()
        self.draining = False
        self.sessions_opened = 0  # connections that reached the protocol (after an implicit-TLS handshake)

    def __call__(self) -> SmtpSession:
        from mailbastion.smtp.session import SmtpSession

        return SmtpSession(self)

    def set_tls_context(self, ctx: ssl.SSLContext | None) -> None:
        self.config = replace(self.config, tls_context=ctx)

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
