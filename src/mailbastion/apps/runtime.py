"""The running system: builds each role from the configuration and runs it until a signal.

    mailbastion serve                 every role in one process on loopback (the embedded default)
    mailbastion serve --role gateway  the DMZ role: SMTP in, policy, spool, LMTP out over mutual TLS
    mailbastion serve --role mda      the internal role: LMTP in, directory, Maildir

SIGTERM drains (no new connections, open transactions finish, in-flight deliveries finish) and stops;
SIGHUP reloads the configuration's scores and the TLS certificates.

Start-up order of the gateway half: spool/tmp is emptied before any writer runs (`clear_spool_tmp`; with
acceptor processes `serve` does it before forking them), then the MDA is waited for (bounded by
MDA_WAIT_SECONDS, all-in-one only: there it is ours and about to listen), then the queue manager starts
delivering. A refused connection to the MDA later on is retried within seconds (spool/schedule.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from mailbastion.apps.features import Feature, Services, gateway_services
from mailbastion.apps.pipeline import build_pipeline, refuse_on_problems
from mailbastion.config import Settings, load_settings, weakened
from mailbastion.policy.pipeline import Pipeline

log = logging.getLogger("mailbastion.runtime")

ROLES = ("all", "gateway", "mda")
MDA_WAIT_SECONDS = 60.0  # all-in-one: how long the queue manager waits for the MDA before it starts anyway


def clear_spool_tmp(settings: Settings) -> None:
    """Empty spool/tmp: writes a crash cut short. Call before any spool writer of this server runs."""
    from mailbastion.spool.layout import SpoolLayout

    cleared = SpoolLayout(settings.path(settings.spool.dir)).ensure().clear_tmp()
    if cleared:
        log.warning("spool: removed %d unfinished write(s) left in tmp/ by an earlier run", cleared)


def setup_logging(settings: Settings) -> None:
    level = getattr(logging, settings.server.log_level.upper())
    handler: logging.Handler
    if settings.server.log_file:
        handler = logging.FileHandler(settings.path(settings.server.log_file))
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))  # migrations say nothing useful at start


async def build_services_for_scan(settings: Settings) -> tuple[Pipeline, list[Feature]]:
    """The gateway's pipeline, for `mailbastion scan`: same checks, nothing delivered."""
    return build_pipeline(gateway_services(settings))


@dataclass(eq=False)
class Runtime:
    settings: Settings
    role: str = "all"
    services: Services | None = None
    features: list[Feature] = field(default_factory=list)
    gateway: Any = None
    mda: Any = None
    queue: Any = None
    spool: Any = None
    lmtp: Any = None  # delivery.lmtp_client.LmtpDeliveryAgent: the queue's link to the MDA
    acceptors: Any = None  # apps.workers.Acceptors when SMTP is accepted by worker processes
    mda_process: Any = None  # apps.workers.Acceptors holding the MDA's own process, when it has one
    acceptor_checks: tuple[str, ...] = ()  # the acceptors' checks, as serve validated them before forking
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> list[str]:
        """Start the role's parts; returns lines saying what listens where."""
        s = self.settings
        lines: list[str] = []
        for item in weakened(s):
            log.warning("config.weakened %s", item)
        if self.role in ("all", "mda"):
            if self.mda_process is None:
                from mailbastion.apps.mda import build_mda

                self.mda = build_mda(s)
                await self.mda.start()
            where = " (own process)" if self.mda_process is not None else ""
            lines.append(f"LMTP (MDA, mutual TLS)  {s.lmtp.listen}{where}")
            lines.append(f"mailboxes               {s.path(s.mailbox.root)}/<domain>/<user>/ (Maildir)")
        if self.role in ("all", "gateway"):
            lines.extend(await self._start_gateway())
        return lines

    async def _start_gateway(self) -> list[str]:
        from functools import partial

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
        if self.acceptors is None:  # acceptor processes build and start their own pipeline
            clear_spool_tmp(s)  # (with acceptors, serve did it before forking them)
            pipeline, self.features = build_pipeline(self.services)
            refuse_on_problems(self.features)
            for f in self.features:
                await f.start()
            checks = tuple(c.name for c in pipeline.checks)
        self.spool = Spool.from_settings(s)
        recipients = self.services.recipients
        assert recipients is not None  # gateway_services always sets the recipient map
        self.lmtp = LmtpDeliveryAgent.from_settings(s)
        router = RoutingAgent(is_local_domain=recipients.is_local_domain, local=self.lmtp,
                              remote=SmtpDeliveryAgent.from_settings(s, self.services.resolver))
        bounce = partial(build_dsn, reporting_mta=s.server.hostname)
        self.queue = QueueManager.from_settings(s, self.spool, router, bounce=bounce)  # it hears the spool's commits
        if self.role == "all":
            await self._wait_for_mda()
        await self.queue.start()
        if self.acceptors is not None:
            lines = [f"SMTP (gateway, MX)      {addr} ({len(self.acceptors.procs)} acceptor processes)"
                     for addr in [*s.smtp.listen, *s.smtp.implicit_tls_listen]]
        else:
            self.gateway = build_gateway(s, pipeline=pipeline, recipients=recipients, spool=self.spool,
                                         quarantine=self.services.quarantine)
            await self.gateway.start()
            lines = [f"SMTP (gateway, MX)      {addr}" for addr in self.gateway.describe()]
        lines.append(f"spool                   {s.path(s.spool.dir)}")
        lines.append(f"checks                  {', '.join(checks)}")
        return lines

    async def _wait_for_mda(self) -> None:
        """All-in-one: the MDA is ours and about to listen (in this process, or its own): deliver only once
        it answers, so the first deliveries do not meet a refused connection. Bounded: a slow MDA only
        delays the queue by MDA_WAIT_SECONDS, then it starts anyway (and retries within seconds)."""
        started = time.monotonic()
        if await self.lmtp.wait_ready(MDA_WAIT_SECONDS):
            log.info("MDA answers on %s after %.1fs: queue manager starting", self.lmtp.where,
                     time.monotonic() - started)
        else:
            log.warning("MDA on %s did not answer within %.0fs: queue manager starting anyway "
                        "(deliveries retry within seconds until it does)", self.lmtp.where, MDA_WAIT_SECONDS)

    async def reload(self) -> None:
        """SIGHUP: re-read the configuration file, rebuild the pipeline, reload TLS certificates."""
        try:
            new = load_settings(self.settings.source)
        except Exception as exc:  # noqa: BLE001 - a bad edit must not take the server down
            log.error("reload refused, keeping the running configuration: %s", exc)
            return
        self.settings = new
        if self.gateway is not None and self.services is not None:
            self.services.settings = new
            try:
                pipeline, _ = build_pipeline(self.services, self.features)
                self.gateway.reload(new, pipeline)
            except Exception as exc:  # noqa: BLE001
                log.error("reload of the gateway refused, keeping the running one: %s", exc)
                return
        for children in (self.acceptors, self.mda_process):
            if children is not None:
                children.signal(signal.SIGHUP)
        if self.mda is not None:
            self._reload_mda_tls(new)
        log.info("configuration reloaded from %s", new.source)

    def _reload_mda_tls(self, s: Settings) -> None:
        """New handshakes use the re-read certificate, key and CA; a pair that does not load is refused
        and the running one stays."""
        from mailbastion.core.errors import ConfigError
        from mailbastion.tls_policy import reload_server_context

        try:
            reload_server_context(self.mda.ssl_context, s, "mda")
        except ConfigError as exc:
            log.error("MDA certificate reload refused, keeping the running one: %s", exc)

    async def stop(self, drain_seconds: float = 30.0) -> None:
        """Gateway first (no new mail), then the queue (in-flight deliveries finish), then the MDA."""
        parts: list[tuple[str, Any]] = [
            ("gateway", (lambda: self.gateway.stop(drain_seconds)) if self.gateway is not None else None),
            ("acceptors", (lambda: self.acceptors.stop(drain_seconds)) if self.acceptors is not None else None),
            ("queue", (lambda: self.queue.stop(drain_seconds)) if self.queue is not None else None),
            ("lmtp sessions", self.lmtp.close if self.lmtp is not None else None),
            *((f"feature {f.name}", f.stop) for f in self.features),
            ("mda", self.mda.stop if self.mda is not None else None),
            ("mda process", (lambda: self.mda_process.stop(drain_seconds)) if self.mda_process is not None else None),
        ]
        for name, stop in parts:
            if stop is None:
                continue
            started = time.monotonic()
            try:
                await asyncio.wait_for(stop(), timeout=drain_seconds + 5)
            except TimeoutError:
                log.error("stopping %s took longer than %.0fs; abandoned", name, drain_seconds + 5)
            except Exception as exc:  # noqa: BLE001 - stop everything else regardless
                log.error("stopping %s failed: %s", name, exc)
            log.debug("stopped %s in %.2fs", name, time.monotonic() - started)

    async def run_until_signal(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stopping.set)
        loop.add_signal_handler(signal.SIGINT, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
        watch = asyncio.ensure_future(self._watch_children())
        await self._stopping.wait()
        watch.cancel()
        log.info("draining: no new connections, finishing open transactions")
        await self.stop()
        log.info("stopped")


    async def _watch_children(self) -> None:
        """A child process that dies (an SMTP acceptor, the MDA) takes its share of the work with it:
        stop the whole server (a supervisor restarts it) rather than run on silently without it."""
        children = [c for c in (self.acceptors, self.mda_process) if c is not None]
        while children:
            await asyncio.sleep(1.0)
            if any(c.alive() < len(c.procs) for c in children):
                log.error("a child process (SMTP acceptor or MDA) exited; stopping")
                self._stopping.set()
                return


def dump_tasks() -> None:
    """SIGUSR1: log every pending task and where it waits (for a server that seems stuck)."""
    import io

    for task in asyncio.all_tasks():
        out = io.StringIO()
        task.print_stack(limit=8, file=out)
        log.warning("task %s:\n%s", task.get_name(), out.getvalue())


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
