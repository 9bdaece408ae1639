"""The gateway role (the DMZ MTA): SMTP in, policy, spool, quarantine, delivery out. Wiring only.

What it runs: the MX listener (inbound pipeline), the relay listener for the internal host (`[relay_in]`,
mutual TLS, the outbound pipeline: anti-virus and spam content checks), the spool and the one queue
manager, whose router sends our domains to the MDA over LMTP and the rest to the Internet through the SMTP
agent with the outbound TLS policy (DANE, MTA-STS, `[outbound.tls_policy]`, REQUIRETLS; TLS-RPT recorded),
and the daily TLS-RPT report task (`TlsRptSchedule`: at `outbound.tls_rpt_send_time` UTC, and at start when
a finished day was not sent), whose reports are committed to our own spool.

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

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from mailbastion.apps.features import Services, gateway_services
from mailbastion.apps.pipeline import PolicyStack
from mailbastion.config import Settings
from mailbastion.core.errors import ConfigError
from mailbastion.core.tasks import cancel_and_wait
from mailbastion.spool.layout import SpoolLayout

if TYPE_CHECKING:
    from mailbastion.apps.gateway import GatewayServer, RelayServer
    from mailbastion.apps.map_push import MapAgeWatch, MapReceiver
    from mailbastion.apps.process import Children
    from mailbastion.apps.workers import Acceptors
    from mailbastion.core.ports import DeliveryAgent
    from mailbastion.delivery.auto_reply import AutoReplier, ReplyLog
    from mailbastion.delivery.forwarding import Forwarder
    from mailbastion.delivery.lmtp_client import LmtpDeliveryAgent
    from mailbastion.delivery.smtp_client import SmtpDeliveryAgent
    from mailbastion.outbound.tlsrpt_store import TlsRptStore
    from mailbastion.spool.manager import QueueManager
    from mailbastion.spool.writer import Spool

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


def seconds_until(at: tuple[int, int], now: float) -> float:
    """Seconds from `now` (epoch) to the next `at` = (hour, minute) UTC, strictly later."""
    current = dt.datetime.fromtimestamp(now, dt.UTC)
    target = current.replace(hour=at[0], minute=at[1], second=0, microsecond=0)
    if target <= current:
        target += dt.timedelta(days=1)
    return (target - current).total_seconds()


class TlsRptSchedule:
    """The daily TLS-RPT job (RFC 8460 §4.1: one report per whole UTC day): `run()` once a day at `at`
    (hour, minute UTC), and once at start when `pending()` names a finished day not sent yet (the gateway
    was down at the time, or a send failed). `run` is TlsReportTask.run_once: idempotent per day, domain
    and rua, so running it again never sends twice. Never raises; stopped by `stop()`."""

    def __init__(self, run: Callable[[], Awaitable[list[Any]]], *, at: tuple[int, int],
                 pending: Callable[[], list[str]], clock: Callable[[], float] = time.time) -> None:
        self.run = run
        self.at = at
        self.pending = pending
        self.clock = clock
        self.runs = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="tls-rpt-daily")

    async def _loop(self) -> None:
        try:
            missed = await asyncio.to_thread(self.pending)
        except Exception:  # an unreadable store must not stop the gateway
            log.exception("tls-rpt: cannot read the report store")
            missed = []
        if missed:
            log.info("tls-rpt: sending the reports of %s (not sent yet)", ", ".join(missed))
            await self.run_once()
        timed = False
        while True:
            delay = seconds_until(self.at, self.clock())
            if timed and delay < 60:  # woke a little early: today's run is done, the next is tomorrow's
                delay += 86400
            await asyncio.sleep(delay)
            await self.run_once()
            timed = True

    async def run_once(self) -> None:
        self.runs += 1
        try:
            results = await self.run()
        except Exception:  # tomorrow's run tries again (what was sent is not sent twice)
            log.exception("tls-rpt: the daily report run failed")
            return
        sent = sum(1 for r in results if getattr(r, "ok", False))
        failed = [r for r in results if not getattr(r, "ok", True)]
        log.info("tls-rpt: %d report(s) sent, %d failed%s", sent, len(failed),
                 "".join(f"; {r.domain} {r.rua}: {r.detail}" for r in failed))

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None


def tls_rpt_schedule(settings: Settings, agent: SmtpDeliveryAgent, spool: Spool) -> TlsRptSchedule | None:
    """The daily TLS-RPT job of this gateway, its mailto: reports committed to `spool` (the queue manager
    delivers them like any mail); None when TLS-RPT is off."""
    store = agent.tls.reports
    if store is None:
        return None
    from mailbastion.core.address import parse_address
    from mailbastion.core.envelope import Envelope
    from mailbastion.outbound.tlsrpt_report import TlsReportTask, sender_from_settings

    async def mail(sender: str, rcpts: list[str], message: bytes) -> None:
        envelope = Envelope(parse_address(sender), tuple(parse_address(r) for r in rcpts))
        await spool.commit(envelope, message, client="tls-rpt")

    task = TlsReportTask(sender_from_settings(settings, store, agent.resolver, mail),
                         keep_days=settings.outbound.tls_rpt_keep_days)
    return TlsRptSchedule(task.run_once, at=settings.outbound.send_time(), pending=store.days_pending)


class GatewayRole:
    name = "gateway"

    def __init__(self, settings: Settings, *, wait_for_mda: bool = False,
                 local_agent: Callable[[], DeliveryAgent] | None = None) -> None:
        """`wait_for_mda`: the MDA is ours and about to listen (all-in-one over LMTP); `local_agent`: makes,
        at start, the agent that delivers local mail instead of the LMTP link (the all-in-one's direct
        delivery, after the MDA in this process started)."""
        self.settings = settings
        self.wait_for_mda = wait_for_mda
        self.local_agent = local_agent
        self.services: Services | None = None
        self.stack: PolicyStack | None = None  # this process's checks (None when acceptors run them)
        self.acceptors: Acceptors | None = None
        self.acceptor_checks: tuple[str, ...] = ()
        self.gateway: GatewayServer | None = None
        self.queue: QueueManager | None = None
        self.lmtp: LmtpDeliveryAgent | None = None
        self.smtp_agent: SmtpDeliveryAgent | None = None
        self.relay: RelayServer | None = None
        self.relay_stack: PolicyStack | None = None  # the features the outbound pipeline is taken from
        self.own_relay_stack = False  # built for the relay listener (acceptor processes run the inbound one)
        self.reports: TlsRptStore | None = None
        self.schedule: TlsRptSchedule | None = None
        self.map_watch: MapAgeWatch | None = None
        self.map_receiver: MapReceiver | None = None  # split: the internal host pushes the map here
        self.reply_log: ReplyLog | None = None
        # Called with (the sender of our message, a line) for each bounce matched to what we sent.
        self.bounce_listeners: list[Callable[[str, str], None]] = []

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
        if s.relay_in.listen:  # the relay listener runs here, with the queue manager: keep the loaded stack
            self.relay_stack, self.own_relay_stack = stack, True
        sockets = bind_gateway_sockets(s)
        clear_spool_tmp(s)  # before the acceptors, the spool's writers, exist
        self.acceptors = start_acceptors(s, sockets, s.server.workers)

    async def start(self) -> list[str]:
        from mailbastion.apps.gateway import build_gateway
        from mailbastion.delivery.bounce_match import BounceWatch
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
        if self.local_agent is not None:
            inward: DeliveryAgent = self.local_agent()
            log.info("local mail goes from the queue manager to the MDA in this process (lmtp.direct)")
        else:
            inward = self.lmtp = LmtpDeliveryAgent.from_settings(s)
        self.smtp_agent = agent = SmtpDeliveryAgent.from_settings(s, self.services.resolver)
        self.reports = agent.tls.reports
        # Bounces that come back to our users for mail we sent are matched to our queue ids on the way in.
        local = (BounceWatch(inward, agent.sent_log, on_bounce=self._bounced) if agent.sent_log is not None
                 else inward)
        router = RoutingAgent(is_local_domain=recipients.is_local_domain, local=local, remote=agent,
                              forwarder=self._forwarder(recipients, spool), auto_reply=self._auto_reply(recipients, spool))
        bounce = partial(build_dsn, reporting_mta=s.server.hostname)
        self.queue = QueueManager.from_settings(s, spool, router, bounce=bounce)  # it hears the spool's commits
        relay_lines = await self._start_relay(spool)
        if self.wait_for_mda:
            await self._wait_for_mda()
        await self.queue.start()
        self.schedule = tls_rpt_schedule(s, agent, spool)
        if self.schedule is not None:
            self.schedule.start()
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
        lines += relay_lines
        lines.append(f"spool                   {s.path(s.spool.dir)}")
        lines.append(f"checks                  {', '.join(checks)}")
        lines.extend(await self._start_map(recipients))
        return lines

    def _forwarder(self, recipients: Any, spool: Spool) -> Forwarder | None:
        """Aliases to outside addresses: SRS and an ARC seal (`[srs]`, delivery/forwarding.py)."""
        from mailbastion.delivery.forwarding import forwarder_from_settings

        try:
            return forwarder_from_settings(self.settings, recipients, spool)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"the SRS key cannot be used: {exc}", key="srs.key_file") from None

    def _auto_reply(self, recipients: Any, spool: Spool) -> AutoReplier | None:
        """The leaver's auto-reply while their mail is forwarded (`[lifecycle] leaver_auto_reply`)."""
        lc = self.settings.lifecycle
        data = getattr(recipients, "data", None)
        # Not tied to this host's leaver_policy: on a split gateway that is the internal host's setting; a
        # leaver whose mail is delivered at all is one whose mail is forwarded.
        if not lc.leaver_auto_reply or data is None:
            return None
        from mailbastion.delivery.auto_reply import AutoReplier, ReplyLog

        self.reply_log = ReplyLog(self.settings.path(self.settings.spool.dir) / "auto-reply.db")
        return AutoReplier(successor_of=lambda a: recipients.data.leavers.get(a), spool=spool, log=self.reply_log,
                           interval_days=lc.auto_reply_days, hostname=self.settings.server.hostname)

    def _bounced(self, sender: str, detail: str) -> None:
        """A bounce from the Internet for a message `sender` sent: told to whoever listens (the all-in-one's
        submission role counts it as a sign of a hijacked account)."""
        for listener in self.bounce_listeners:
            listener(sender, detail)

    async def _start_relay(self, spool: Spool) -> list[str]:
        """The relay listener for the internal host, with the outbound pipeline taken from the features of
        this process's stack (shared engines), or of a stack of its own when acceptor processes run the
        inbound one. Nothing when `[relay_in] listen` is empty."""
        from mailbastion.apps.features import build_outbound_pipeline
        from mailbastion.apps.gateway import build_relay

        s = self.settings
        if not s.relay_in.listen:
            return []
        if self.stack is not None:
            self.relay_stack = self.stack
        else:
            if self.relay_stack is None:
                assert self.services is not None
                self.relay_stack, self.own_relay_stack = PolicyStack(self.services), True
            await self.relay_stack.start()
        pipeline = build_outbound_pipeline(s, self.relay_stack.features)
        self.relay = build_relay(s, pipeline=pipeline, spool=spool)
        if self.relay is None:
            return []
        await self.relay.start()
        checks = ", ".join(c.name for c in pipeline.checks) or "none"
        return [f"SMTP relay (internal)   {addr}, outbound checks: {checks}" for addr in self.relay.describe()]

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
        if self.stack is not None and self.gateway is not None:
            try:
                pipeline = await self.stack.reload(settings)
            except Exception as exc:  # noqa: BLE001 - a bad edit keeps the running checks
                log.error("reload of the gateway's checks refused, keeping the running ones: %s", exc)
                pipeline = self.stack.pipeline
            self.gateway.reload(settings, pipeline)
        await self._reload_relay(settings)

    async def _reload_relay(self, settings: Settings) -> None:
        """The outbound pipeline rebuilt from the reloaded features (the same stack as inbound, or its own)."""
        from mailbastion.apps.features import build_outbound_pipeline

        if self.relay is None or self.relay_stack is None:
            return
        try:
            if self.own_relay_stack:
                await self.relay_stack.reload(settings)
            pipeline = build_outbound_pipeline(settings, self.relay_stack.features)
        except Exception as exc:  # noqa: BLE001 - a bad edit keeps the running checks
            log.error("reload of the outbound checks refused, keeping the running ones: %s", exc)
            pipeline = self.relay.handler.pipeline
        self.relay.reload(settings, pipeline)

    async def stop(self, drain_seconds: float) -> None:
        """No new mail first (listeners, acceptors), then in-flight deliveries finish, then the rest."""
        if self.schedule is not None:
            await self.schedule.stop()
        if self.map_receiver is not None:
            await self.map_receiver.stop()
        if self.map_watch is not None:
            await self.map_watch.stop()
        if self.gateway is not None:
            await self.gateway.stop(drain_seconds)
        if self.relay is not None:
            await self.relay.stop(drain_seconds)
        if self.acceptors is not None:
            await self.acceptors.stop(drain_seconds)
        if self.queue is not None:
            await self.queue.stop(drain_seconds)
        if self.lmtp is not None:
            await self.lmtp.close()
        if self.smtp_agent is not None:
            await self.smtp_agent.close()
        if self.reply_log is not None:
            self.reply_log.close()
        if self.stack is not None:
            await self.stack.stop()
        if self.own_relay_stack and self.relay_stack is not None:
            await self.relay_stack.stop()

    def children(self) -> list[Children]:
        return [self.acceptors] if self.acceptors is not None else []


__all__ = ["MDA_WAIT_SECONDS", "GatewayRole", "TlsRptSchedule", "clear_spool_tmp", "roles", "seconds_until",
           "tls_rpt_schedule"]
