"""The gateway role (the DMZ MTA): SMTP in, policy, spool, quarantine, delivery out. Wiring only.

It imports what it runs and nothing else: no directory database, no password hashing, no mailbox code
(it knows our addresses from the address-only recipient map). `tests/apps/test_roles.py` proves it from
a running `mailbastion serve --role gateway` (apps/selfcheck.py).

Start-up order: spool/tmp is emptied before any writer runs; the policy stack is built and checked (a
configuration that must not start refuses here, with one line); with `server.workers` > 1 the SMTP
acceptor processes are forked before the event loop (`prefork`), sharing the models and rule sets the
parent loaded; in the all-in-one process the queue manager waits for the MDA (bounded by
MDA_WAIT_SECONDS) before it delivers, and a refused connection to our MDA is retried within seconds.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import TYPE_CHECKING

from mailbastion.apps.features import Services, gateway_services
from mailbastion.apps.pipeline import PolicyStack
from mailbastion.config import Settings
from mailbastion.core.errors import ConfigError
from mailbastion.spool.layout import SpoolLayout

if TYPE_CHECKING:
    from mailbastion.apps.gateway import GatewayServer
    from mailbastion.apps.map_push import MapAgeWatch, MapReceiver
    from mailbastion.apps.process import Children
    from mailbastion.apps.workers import Acceptors
    from mailbastion.delivery.lmtp_client import LmtpDeliveryAgent
    from mailbastion.spool.manager import QueueManager

log = logging.getLogger("mailbastion.runtime")

MDA_WAIT_SECONDS = 60.0  # all-in-one: how long the queue manager waits for the MDA before it starts anyway
ACCEPTOR_WAIT_SECONDS = 120.0  # how long the acceptor processes may take to build their checks and listen


def clear_spool_tmp(settings: Settings) -> None:
    """Empty spool/tmp: writes a crash cut short. Call before any spool writer of this server runs."""
    cleared = SpoolLayout(settings.path(settings.spool.dir)).ensure().clear_tmp()
    if cleared:
        log.warning("spool: removed %d unfinished write(s) left in tmp/ by an earlier run", cleared)


def roles(settings: Settings) -> list[GatewayRole]:
    """`serve --role gateway`: this role alone."""
    return [GatewayRole(settings)]


class GatewayRole:
    name = "gateway"

    def __init__(self, settings: Settings, *, wait_for_mda: bool = False) -> None:
        self.settings = settings
        self.wait_for_mda = wait_for_mda  # all-in-one: the MDA is ours and about to listen
        self.services: Services | None = None
        self.stack: PolicyStack | None = None  # this process's checks (None when acceptors run them)
        self.acceptors: Acceptors | None = None
        self.acceptor_checks: tuple[str, ...] = ()
        self.gateway: GatewayServer | None = None
        self.queue: QueueManager | None = None
        self.lmtp: LmtpDeliveryAgent | None = None
        self.map_watch: MapAgeWatch | None = None
        self.map_receiver: MapReceiver | None = None  # split: the internal host pushes the map here

    def prefork(self) -> None:
        """Before the event loop: with `server.workers` > 1, check the configuration once, bind the
        listening sockets, and fork the acceptors. Raises ConfigError or OSError to refuse."""
        s = self.settings
        if s.server.workers <= 1:
            return
        from mailbastion.apps.workers import bind_gateway_sockets, preload, start_acceptors

        # Built (and so checked) once here; the heavy parts it loads (models, rule sets) stay in memory
        # and the acceptors, forked next, share those pages instead of loading their own.
        stack = PolicyStack(gateway_services(s))
        preload(stack)
        self.acceptor_checks = stack.check_names
        sockets = bind_gateway_sockets(s)
        clear_spool_tmp(s)  # before the acceptors, the spool's writers, exist
        self.acceptors = start_acceptors(s, sockets, s.server.workers)

    async def start(self) -> list[str]:
        from mailbastion.apps.gateway import build_gateway
        from mailbastion.delivery.dsn import build_dsn
        from mailbastion.delivery.lmtp_client import LmtpDeliveryAgent
        from mailbastion.delivery.router import RoutingAgent
        from mailbastion.delivery.smtp_client import SmtpDeliveryAgent
        from mailbastion.spool.manager import QueueManager
        from mailbastion.spool.writer import Spool

        s = self.settings
        self.services = gateway_services(s)
        checks = self.acceptor_checks
        if self.acceptors is None:  # acceptor processes build and start their own stack
            clear_spool_tmp(s)
            self.stack = PolicyStack(self.services)
            await self.stack.start()
            checks = self.stack.check_names
        spool = Spool.from_settings(s)
        recipients = self.services.recipients
        assert recipients is not None  # gateway_services always sets the recipient map
        self.lmtp = LmtpDeliveryAgent.from_settings(s)
        router = RoutingAgent(is_local_domain=recipients.is_local_domain, local=self.lmtp,
                              remote=SmtpDeliveryAgent.from_settings(s, self.services.resolver))
        bounce = partial(build_dsn, reporting_mta=s.server.hostname)
        self.queue = QueueManager.from_settings(s, spool, router, bounce=bounce)  # it hears the spool's commits
        if self.wait_for_mda:
            await self._wait_for_mda()
        await self.queue.start()
        if self.acceptors is not None:
            if not await self.acceptors.wait_ready(ACCEPTOR_WAIT_SECONDS):
                raise ConfigError("the SMTP acceptor processes did not start (see the log above)")
            lines = [f"SMTP (gateway, MX)      {addr} ({len(self.acceptors.procs)} acceptor processes)"
                     for addr in [*s.smtp.listen, *s.smtp.implicit_tls_listen]]
        else:
            assert self.stack is not None
            self.gateway = build_gateway(s, pipeline=self.stack.pipeline, recipients=recipients, spool=spool,
                                         quarantine=self.services.quarantine)
            await self.gateway.start()
            lines = [f"SMTP (gateway, MX)      {addr}" for addr in self.gateway.describe()]
        lines.append(f"spool                   {s.path(s.spool.dir)}")
        lines.append(f"checks                  {', '.join(checks)}")
        lines.extend(await self._start_map(recipients))
        return lines

    async def _start_map(self, recipients: object) -> list[str]:
        """The recipient map's age alarm, the push listener (split), and the gateway's scrape-time gauges."""
        from mailbastion import metrics
        from mailbastion.apps.map_push import MapAgeWatch, MapReceiver, queue_samples
        from mailbastion.directory.recipient_map import RecipientMap

        s = self.settings
        metrics.add_source(partial(queue_samples, SpoolLayout(s.path(s.spool.dir))))
        if not isinstance(recipients, RecipientMap):
            return []
        self.map_watch = MapAgeWatch(recipients, s.map_push.max_age)
        self.map_watch.start()
        metrics.add_source(self.map_watch.samples)
        if not s.map_push.listen:
            return []
        self.map_receiver = MapReceiver(s, on_applied=lambda _new: recipients.reload())
        return await self.map_receiver.start()

    async def _wait_for_mda(self) -> None:
        """Deliver only once the MDA answers, so the first deliveries do not meet a refused connection.
        Bounded: a slow MDA delays the queue by MDA_WAIT_SECONDS at most, then it starts anyway."""
        assert self.lmtp is not None
        started = time.monotonic()
        if await self.lmtp.wait_ready(MDA_WAIT_SECONDS):
            log.info("MDA answers on %s after %.1fs: queue manager starting", self.lmtp.where,
                     time.monotonic() - started)
        else:
            log.warning("MDA on %s did not answer within %.0fs: queue manager starting anyway "
                        "(deliveries retry within seconds until it does)", self.lmtp.where, MDA_WAIT_SECONDS)

    async def reload(self, settings: Settings) -> None:
        """The features rebuilt from the new settings (their checks swapped in for the next message) and
        the certificate re-read. The acceptor processes do the same on their own SIGHUP."""
        self.settings = settings
        if self.stack is None or self.gateway is None:
            return
        try:
            pipeline = await self.stack.reload(settings)
        except Exception as exc:  # noqa: BLE001 - a bad edit keeps the running checks
            log.error("reload of the gateway's checks refused, keeping the running ones: %s", exc)
            pipeline = self.stack.pipeline
        self.gateway.reload(settings, pipeline)

    async def stop(self, drain_seconds: float) -> None:
        """No new mail first (listeners, acceptors), then in-flight deliveries finish, then the rest."""
        if self.map_receiver is not None:
            await self.map_receiver.stop()
        if self.map_watch is not None:
            await self.map_watch.stop()
        if self.gateway is not None:
            await self.gateway.stop(drain_seconds)
        if self.acceptors is not None:
            await self.acceptors.stop(drain_seconds)
        if self.queue is not None:
            await self.queue.stop(drain_seconds)
        if self.lmtp is not None:
            await self.lmtp.close()
        if self.stack is not None:
            await self.stack.stop()

    def children(self) -> list[Children]:
        return [self.acceptors] if self.acceptors is not None else []


__all__ = ["MDA_WAIT_SECONDS", "GatewayRole", "clear_spool_tmp", "roles"]
