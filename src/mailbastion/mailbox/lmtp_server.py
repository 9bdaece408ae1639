"""The MDA role's listener: LMTP (RFC 2033) over implicit TLS on the protocol engine of `smtp/`.

- TLS starts with the first byte; with `require_client_cert` the handshake itself fails for a client
  without a certificate from our CA, so nothing but the gateway can speak LMTP here.
- The conversation is the engine's (LHLO, PIPELINING, SIZE, 8BITMIME, SMTPUTF8, CHUNKING,
  ENHANCEDSTATUSCODES; DATA and BDAT; one reply per recipient); the decisions are `LmtpHandler`'s
  (`lmtp_handler.py`), which also adds `XMAILBASTION` for a verified client.
- `stop()` stops accepting; an idle session is told 421 at once, a transaction in progress finishes
  (its copies are written and acknowledged) for up to `drain_timeout` seconds, then what is left is
  closed.

    server = MdaServer(handler, ssl_context, listen="127.0.0.1:2424", hostname="mda.example.org",
                       limits=EdgeLimits(...))
    await server.start()        # port 0 picks one: see `port`
    await server.stop()
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import replace

from mailbastion.mailbox.lmtp_handler import LmtpHandler
from mailbastion.smtp.edge import EdgeConfig, SmtpEdge
from mailbastion.smtp.limits import EdgeLimits
from mailbastion.smtp.listeners import Listeners

__all__ = ["MdaServer"]

log = logging.getLogger("mailbastion.mda")


class MdaServer:
    """The LMTP listener of the MDA. `ssl_context` is live: a reload of its certificate (SIGHUP)
    applies to the next handshakes."""

    def __init__(self, handler: LmtpHandler, ssl_context: ssl.SSLContext, *, listen: str,
                 hostname: str = "localhost", limits: EdgeLimits | None = None, drain_timeout: float = 30.0) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.listen = listen
        self.drain_timeout = drain_timeout
        config = EdgeConfig(hostname=hostname, banner="LMTP mailbastion", protocol="lmtp",
                            limits=limits or EdgeLimits(), tls_context=ssl_context,
                            offer_dsn=False, offer_requiretls=False, offer_chunking=True)
        self.edge = SmtpEdge(handler, config, implicit_tls=True)
        self.port = 0
        self._listeners: Listeners | None = None

    @property
    def sessions_opened(self) -> int:
        """LMTP sessions after a completed TLS handshake (a refused client never gets one)."""
        return self.edge.sessions_opened

    @property
    def data_size_limit(self) -> int:
        return self.edge.config.limits.max_message_size

    @data_size_limit.setter
    def data_size_limit(self, size: int) -> None:
        """The largest message accepted, for sessions that start from now on."""
        config = self.edge.config
        self.edge.config = replace(config, limits=replace(config.limits, max_message_size=size))

    async def start(self) -> None:
        self._listeners = Listeners([(self.edge, [self.listen])])
        await self._listeners.start()
        self.port = self._listeners.ports[0]
        log.info("mda listening on %s (LMTP, implicit TLS)", self._listeners.describe()[0].split(" ", 1)[1])

    async def stop(self) -> None:
        if self._listeners is None:
            return
        await self._listeners.stop(self.drain_timeout)
        self._listeners = None
        self.handler.close()
        log.info("mda stopped")
