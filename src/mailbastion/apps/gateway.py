"""The gateway role's SMTP side: wiring of handler, edge and listeners. No decisions here.

    server = build_gateway(settings, pipeline=pipeline, recipients=recipient_map, spool=spool,
                           quarantine=quarantine)
    await server.start()                  # binds smtp.listen (+ smtp.implicit_tls_listen)
    print(server.describe())              # ["127.0.0.1:2525", "127.0.0.1:4650 (implicit TLS)"]
    server.reload_tls()                   # SIGHUP: new certificate for new connections
    server.reload(new_settings, pipeline) # SIGHUP: new scores/checks and certificate
    await server.stop(drain_seconds=30)   # graceful drain

Several acceptor processes (`server.workers` > 1): bind in the parent with
`mailbastion.smtp.listeners.bind(settings.smtp.listen)`, then `run_workers(n, sockets, worker)`
where `worker(sockets)` builds its own collaborators and calls `build_gateway(...).start(sockets=...)`.

The relay listener for the internal host (`[relay_in]`, gateway/relay_handler.py) runs in the process of the
queue manager:

    relay = build_relay(settings, pipeline=outbound_pipeline, spool=spool)   # None when relay_in.listen = []
    await relay.start()                   # TLS from the first byte, client certificate of tls.ca required
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Sequence
from dataclasses import replace

from mailbastion.config.schema import Settings
from mailbastion.config.sections.core import SmtpSection
from mailbastion.core.errors import ConfigError
from mailbastion.core.ports import QuarantineSink, RecipientResolver, SpoolWriter
from mailbastion.gateway.handler import GatewayHandler
from mailbastion.gateway.relay_handler import RelayHandler
from mailbastion.policy.pipeline import Pipeline
from mailbastion.smtp.edge import EdgeConfig, SmtpEdge
from mailbastion.smtp.limits import EdgeLimits, NetworkList
from mailbastion.smtp.listeners import Listeners
from mailbastion.tls_policy import reload_server_context, server_context, server_context_from_settings

__all__ = ["GatewayServer", "RelayServer", "build_gateway", "build_relay", "edge_config", "edge_limits",
           "gateway_tls_context", "relay_tls_context"]

log = logging.getLogger("mailbastion.smtp")


def gateway_tls_context(settings: Settings) -> ssl.SSLContext:
    """The public STARTTLS / implicit-TLS context. Raises ConfigError when [tls] cert/key are not a usable pair."""
    return server_context_from_settings(settings)


def edge_limits(smtp: SmtpSection) -> EdgeLimits:
    """The MX listener's protocol limits from `[smtp]`."""
    return EdgeLimits(
        max_message_size=smtp.max_message_size,
        max_recipients=smtp.max_recipients,
        max_line_length=smtp.max_line_length,
        max_header_size=smtp.max_header_size,
        max_command_length=smtp.max_command_length,
        max_unknown_commands=smtp.max_unknown_commands,
        max_errors=smtp.max_errors,
        max_transactions=smtp.max_transactions_per_connection,
        idle_timeout=smtp.idle_timeout,
        data_timeout=smtp.data_timeout,
        max_connections=smtp.max_connections,
        max_connections_per_client=smtp.max_connections_per_client,
    )


def edge_config(settings: Settings, tls_context: ssl.SSLContext | None) -> EdgeConfig:
    """The MX listener's protocol settings (SMTP with DSN, CHUNKING, REQUIRETLS under TLS)."""
    smtp = settings.smtp
    return EdgeConfig(
        hostname=settings.server.hostname,
        banner=smtp.banner,
        protocol="smtp",
        limits=edge_limits(smtp),
        tls_context=tls_context,
        require_starttls=smtp.require_starttls and tls_context is not None,
        # PROXY is on only when enabled *and* some load balancer is trusted to send it.
        proxy_from=NetworkList(smtp.proxy_protocol_from if smtp.proxy_protocol else []),
        xclient_from=NetworkList(smtp.xclient_hosts),
        relay_networks=NetworkList(settings.relay.networks),
        greet_pause=smtp.greet_pause,
    )


class GatewayServer:
    """The inbound SMTP listeners of one process, around one GatewayHandler."""

    def __init__(self, settings: Settings, handler: GatewayHandler, tls_context: ssl.SSLContext | None) -> None:
        self.settings = settings
        self.handler = handler
        config = edge_config(settings, tls_context)
        self.edge = SmtpEdge(handler, config)
        self.tls_edge = SmtpEdge(handler, config, implicit_tls=True) if tls_context else None
        self.listeners: Listeners | None = None

    async def start(self, sockets: Sequence[socket.socket] | None = None,
                    tls_sockets: Sequence[socket.socket] = ()) -> None:
        """Listen on the configured addresses, or on `sockets` already bound (worker processes)."""
        smtp = self.settings.smtp
        groups: list[tuple[SmtpEdge, Sequence[str | socket.socket]]] = [
            (self.edge, list(sockets) if sockets is not None else list(smtp.listen))]
        if self.tls_edge is not None:
            targets = list(tls_sockets) if sockets is not None else list(smtp.implicit_tls_listen)
            if targets:
                groups.append((self.tls_edge, targets))
        self.listeners = Listeners(groups)
        await self.listeners.start()
        for line in self.describe():
            log.info("listening %s", line)

    def describe(self) -> list[str]:
        if self.listeners is None:
            return []
        out = []
        for label in self.listeners.describe():
            kind, addr = label.split(" ", 1)
            out.append(addr + (" (implicit TLS)" if kind == "smtps" else " (STARTTLS)" if self.edge.config.tls_context
                               else " (no TLS)"))
        return out

    @property
    def ports(self) -> list[int]:
        return self.listeners.ports if self.listeners else []

    def reload_tls(self) -> bool:
        """Re-read the certificate (SIGHUP); new handshakes use it, on STARTTLS and implicit-TLS
        listeners alike. The new pair is validated in a fresh context first: if it does not load,
        the running certificate stays and False is returned."""
        live = self.edge.config.tls_context
        try:
            if live is None:
                self.edge.set_tls_context(gateway_tls_context(self.settings))
            else:
                reload_server_context(live, self.settings)
        except ConfigError as exc:
            log.error("tls reload refused, keeping the running certificate: %s", exc)
            return False
        return True

    def reload(self, settings: Settings, pipeline: Pipeline) -> None:
        """SIGHUP: swap the pipeline (scores, checks) and reload the certificate. Limits and listen
        addresses need a restart."""
        self.settings = settings
        self.handler.pipeline = pipeline
        self.reload_tls()

    async def stop(self, drain_seconds: float = 30.0) -> None:
        if self.listeners is not None:
            await self.listeners.stop(drain_seconds)


def build_gateway(
    settings: Settings,
    *,
    pipeline: Pipeline,
    recipients: RecipientResolver,
    spool: SpoolWriter,
    quarantine: QuarantineSink | None = None,
    tls_context: ssl.SSLContext | None | bool = True,
) -> GatewayServer:
    """`tls_context=True` (default): build it from `[tls]`; pass a context to use it, or None for none."""
    handler = GatewayHandler(settings, pipeline, recipients, spool, quarantine)
    ctx = gateway_tls_context(settings) if tls_context is True else (tls_context or None)
    return GatewayServer(settings, handler, ctx if isinstance(ctx, ssl.SSLContext) else None)


# -- the relay listener for the internal host -----------------------------------------------------------------


def _check_relay_files(settings: Settings) -> None:
    """The relay listener's certificate, key and CA exist and belong together; else ConfigError naming the key."""
    from mailbastion.pki import key_matches, load_chain, load_key

    source = str(settings.source) if settings.source else None
    tls = settings.tls
    paths = {k: settings.path(getattr(tls, k)) for k in ("link_cert", "link_key", "ca")}
    for key, path in paths.items():
        if not path.is_file():
            raise ConfigError(f"{path} does not exist (`mailbastion init` makes it; for an older deployment "
                              "issue it from the CA: `mailbastion tls renew --role gateway-link`)",
                              file=source, key=f"tls.{key}")
    try:
        cert, private = load_chain(paths["link_cert"])[0], load_key(paths["link_key"])
        load_chain(paths["ca"])
    except ConfigError as exc:
        raise ConfigError(str(exc), file=source, key="tls.link_cert") from None
    if not key_matches(cert, private):
        raise ConfigError(f"the private key {paths['link_key']} does not belong to {paths['link_cert']}",
                          file=source, key="tls.link_key")


def relay_tls_context(settings: Settings) -> ssl.SSLContext:
    """TLS from the first byte with `tls.link_cert`; a client certificate verified by `tls.ca` (our CA only)
    is required. Raises ConfigError when the files are missing or not a pair: the gateway must not start."""
    _check_relay_files(settings)
    tls = settings.tls
    try:
        return server_context(settings.path(tls.link_cert), settings.path(tls.link_key),
                              min_version=tls.min_version, client_ca=settings.path(tls.ca))
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"OpenSSL refuses the relay listener's certificate, key or CA: {exc}",
                          file=str(settings.source) if settings.source else None, key="tls.link_cert") from None


def relay_edge_config(settings: Settings, tls_context: ssl.SSLContext) -> EdgeConfig:
    r = settings.relay_in
    limits = replace(edge_limits(settings.smtp), max_recipients=r.max_recipients, max_connections=r.max_connections,
                     max_connections_per_client=r.max_connections, idle_timeout=r.idle_timeout,
                     max_transactions=max(1000, settings.smtp.max_transactions_per_connection))
    return EdgeConfig(hostname=settings.server.hostname, banner="ESMTP mailbastion relay", protocol="smtp",
                      limits=limits, tls_context=tls_context)


class RelayServer:
    """The relay listener(s) of `[relay_in] listen`, around one RelayHandler."""

    def __init__(self, settings: Settings, handler: RelayHandler, tls_context: ssl.SSLContext) -> None:
        self.settings = settings
        self.handler = handler
        self.edge = SmtpEdge(handler, relay_edge_config(settings, tls_context), implicit_tls=True)
        self.listeners: Listeners | None = None

    async def start(self) -> None:
        self.listeners = Listeners([(self.edge, list(self.settings.relay_in.listen))])
        await self.listeners.start()
        for line in self.describe():
            log.info("listening %s", line)

    def describe(self) -> list[str]:
        if self.listeners is None:
            return []
        return [label.split(" ", 1)[1] + " (mutual TLS)" for label in self.listeners.describe()]

    @property
    def ports(self) -> list[int]:
        return self.listeners.ports if self.listeners else []

    def reload(self, settings: Settings, pipeline: Pipeline) -> None:
        """SIGHUP: the new outbound pipeline, and the certificate re-read (checked first; a bad pair keeps the
        running one). The CA and the listen addresses need a restart."""
        self.settings = settings
        self.handler.pipeline = pipeline
        live = self.edge.config.tls_context
        try:
            _check_relay_files(settings)
            if live is not None:
                live.load_cert_chain(str(settings.path(settings.tls.link_cert)),
                                     str(settings.path(settings.tls.link_key)))
        except (ConfigError, OSError, ssl.SSLError) as exc:
            log.error("relay listener certificate reload refused, keeping the running one: %s", exc)

    async def stop(self, drain_seconds: float = 30.0) -> None:
        if self.listeners is not None:
            await self.listeners.stop(drain_seconds)


def build_relay(settings: Settings, *, pipeline: Pipeline, spool: SpoolWriter,
                tls_context: ssl.SSLContext | None = None) -> RelayServer | None:
    """The relay listener, or None when `[relay_in] listen` is empty. Raises ConfigError (certificates)."""
    r = settings.relay_in
    if not r.listen:
        return None
    handler = RelayHandler(hostname=settings.server.hostname, pipeline=pipeline, spool=spool,
                           client_names=r.client_names, refuse_action=r.refuse_action,
                           max_hops=settings.smtp.max_hops)
    return RelayServer(settings, handler, tls_context or relay_tls_context(settings))
