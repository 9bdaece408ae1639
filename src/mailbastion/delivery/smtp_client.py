"""SMTP delivery to the Internet (the gateway's outbound agent), and to our gateway (the internal host's).

    agent = SmtpDeliveryAgent.from_settings(settings, resolver)     # builds OutboundTls from [outbound]
    outcomes = await agent.deliver(request)                          # one outcome per recipient; never raises

Per destination domain of the request (or everything, through `relayhost`):
  1. MX hosts (delivery/mx.py): preference order, equal preferences shuffled, at most `max_mx_hosts`;
     null MX fails (556 5.1.10); no MX means the implicit MX (RFC 5321 §5.1).
  2. The outbound TLS policy of the domain (outbound/, docs/architecture.md change 26): DANE, MTA-STS, the site's
     `[outbound.tls_policy]`, REQUIRETLS, else opportunistic. A domain-wide refusal defers every recipient
     (fails them when permanent); a refused host is skipped; a policy failure never falls back to clear
     text. Every session is recorded for TLS-RPT by OutboundTls.
  3. Per host, per address: a cached session for the same address and TLS requirement, or a new one
     (connect, EHLO, STARTTLS as the policy says). A transaction (delivery/smtp_session.py) gives each
     recipient its outcome. 4xx before RCPT, an unreachable address, a refused greeting or a TLS policy
     failure moves on to the next address and host; the last reason stands when none is left.
  4. At most `destination_concurrency_limit` sessions to one domain at once (Postfix
     default_destination_concurrency_limit = 20); idle sessions are kept for the next message to the same
     MX (Postfix's connection cache, delivery/connection_cache.py). A cached session that fails before any
     message data went out is replaced by a fresh one; after, the recipients are deferred.

Outcomes are Delivered, Deferred (the queue manager retries with Postfix's back-off: 5 to 67 minutes,
given up after 5 days, with a DSN) or Failed (a DSN at once). A delivered message is remembered in the
sent log (if any), so that its bounce can be matched later (delivery/bounce_match.py).

`relay_tls` (the internal host's side of the relay hop): every message goes to `relayhost`, TLS from the
first byte with our client certificate, and the server's certificate must be our CA's for `relay_name`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import defaultdict
from collections.abc import Sequence

from mailbastion.config.schema import Settings
from mailbastion.core.header_block import HeaderBlock
from mailbastion.core.outcome import Deferred, Delivered, DeliveryOutcome, Failed
from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
from mailbastion.core.replies import Reply
from mailbastion.delivery.connection_cache import DestinationLimits, SessionCache
from mailbastion.delivery.hostport import parse_hostport
from mailbastion.delivery.mx import MxHosts, host_addresses, mx_hosts
from mailbastion.delivery.sent_log import SentLog
from mailbastion.delivery.smtp_session import NextHost, SessionLost, SmtpSession, Target, open_session, xtext
from mailbastion.dns.resolver import DnsResolver
from mailbastion.outbound import OutboundTls, TlsPolicyResolver

log = logging.getLogger("mailbastion.delivery.smtp")

SENT_LOG_FLUSH_SECONDS = 0.5  # delivered messages are written to the sent log together, this often

__all__ = ["SmtpDeliveryAgent", "xtext"]


class SmtpDeliveryAgent:
    def __init__(
        self,
        resolver: DnsResolver,
        *,
        local_hostname: str = "localhost",
        port: int = 25,
        relayhost: str | None = None,
        connect_timeout: float = 30.0,
        command_timeout: float = 300.0,
        max_mx_hosts: int = 5,
        tls: OutboundTls | None = None,
        relay_tls: ssl.SSLContext | None = None,
        relay_name: str = "gateway",
        destination_concurrency: int = 20,
        cache: SessionCache | None = None,
        sent_log: SentLog | None = None,
    ) -> None:
        self.resolver = resolver
        self.local_hostname = local_hostname
        self.port = port
        self.relay = parse_hostport(relayhost, 25) if relayhost else None
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.max_mx_hosts = max_mx_hosts
        # Without a configured policy: opportunistic TLS everywhere (no DANE, no MTA-STS, no reports).
        self.tls = tls or OutboundTls(TlsPolicyResolver())
        self.relay_tls = relay_tls
        self.relay_name = relay_name
        self.limits = DestinationLimits(destination_concurrency)
        self.cache = cache if cache is not None else SessionCache()
        self.sent_log = sent_log
        self._flushing: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Future[int]] = set()
        self.connections_opened = 0

    @staticmethod
    def from_settings(settings: Settings, resolver: DnsResolver) -> SmtpDeliveryAgent:
        """The gateway's agent to the Internet. Raises ConfigError for a bad `[outbound] ca_file`."""
        d = settings.delivery
        sent = SentLog(settings.path(d.sent_log_db), keep_days=d.sent_log_days) if d.sent_log_days else None
        return SmtpDeliveryAgent(
            resolver, local_hostname=settings.server.hostname, port=d.remote_port, relayhost=d.relayhost,
            connect_timeout=d.connect_timeout, command_timeout=d.command_timeout, max_mx_hosts=d.max_mx_hosts,
            tls=OutboundTls.from_settings(settings, resolver), destination_concurrency=d.destination_concurrency_limit,
            cache=SessionCache(idle_seconds=d.connection_cache_idle_seconds, reuse_seconds=d.connection_reuse_seconds),
            sent_log=sent)

    async def close(self) -> None:
        """QUIT the cached sessions and write the sent log (at stop)."""
        await self.cache.close()
        if self._flushing is not None:
            self._flushing.cancel()
            self._flushing = None
        if self.sent_log is not None:
            await asyncio.to_thread(self.sent_log.close)

    # -- the port -----------------------------------------------------------------------------------------

    async def deliver(self, request: DeliveryRequest) -> dict[str, DeliveryOutcome]:
        """One outcome per recipient; recipients are grouped by domain (or sent together to the relayhost),
        the groups delivered at once. Never raises."""
        groups: dict[str, list[DeliveryRecipient]] = defaultdict(list)
        for r in request.recipients:
            groups["" if self.relay else r.address.rpartition("@")[2].lower()].append(r)
        results = await asyncio.gather(*(self._guarded(domain, rcpts, request) for domain, rcpts in groups.items()))
        out: dict[str, DeliveryOutcome] = {}
        for part in results:
            out.update(part)
        self._remember(request, out)
        return out

    async def _guarded(self, domain: str, rcpts: list[DeliveryRecipient],
                       request: DeliveryRequest) -> dict[str, DeliveryOutcome]:
        try:
            async with self.limits.slot(domain or "relayhost"):
                return await self._deliver_domain(domain, rcpts, request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must cost a retry, not the message
            log.exception("id=%s delivery to %s failed", request.queue_id, domain or "relayhost")
            return {r.address: Deferred(Reply(451, "4.3.0", f"local error: {exc}")) for r in rcpts}

    def _remember(self, request: DeliveryRequest, out: dict[str, DeliveryOutcome]) -> None:
        if self.sent_log is None:
            return
        delivered = [a for a, o in out.items() if isinstance(o, Delivered)]
        if not delivered:
            return
        try:
            message_id = HeaderBlock.parse(request.message).first("message-id") or ""
            remote = next(o.remote for a, o in out.items() if a in delivered)
            self.sent_log.add(queue_id=request.queue_id, message_id=" ".join(message_id.split()),
                              envid=request.dsn_envid, sender=request.sender, recipients=delivered, remote=remote)
        except Exception:  # the log serves bounce matching only, never the delivery
            log.exception("id=%s sent log not written", request.queue_id)
            return
        if self._flushing is None:  # one write (in a thread) for the deliveries of the next moment
            self._flushing = asyncio.get_running_loop().call_later(SENT_LOG_FLUSH_SECONDS, self._flush_sent)

    def _flush_sent(self) -> None:
        self._flushing = None
        sent = self.sent_log
        if sent is None:
            return
        task = asyncio.ensure_future(asyncio.to_thread(sent.flush))
        self._background.add(task)
        task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Future[int]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sent log not written: %s", task.exception())

    # -- one destination ------------------------------------------------------------------------------------

    async def _targets(self, domain: str, request: DeliveryRequest) -> list[tuple[str, Target | DeliveryOutcome]] | DeliveryOutcome:
        """(host, target or the reason the host is skipped) in the order to try; or the outcome of the domain."""
        if self.relay is not None:
            host, port = self.relay
            if self.relay_tls is not None:
                return [(host, Target(host, "", port, implicit=self.relay_tls, server_name=self.relay_name))]
            # A smarthost: the site's table applies to it (tls.policy with the relay host as its own MX).
            policy = await self.tls.policy(host, [host], requiretls=request.requiretls)
            found = MxHosts(host, (host,))
        else:
            mx = await mx_hosts(self.resolver, domain, max_hosts=self.max_mx_hosts)
            if not isinstance(mx, MxHosts):
                return mx
            found, port = mx, self.port
            policy = await self.tls.policy(domain, list(mx.hosts), requiretls=request.requiretls)
        if policy.refusal is not None:
            r = policy.refusal
            reply = Reply(550 if r.permanent else 451, r.status, r.text)
            log.warning("id=%s %s: TLS policy refuses every host: %s", request.queue_id, domain or host, r)
            return Failed(reply) if r.permanent else Deferred(reply)
        out: list[tuple[str, Target | DeliveryOutcome]] = []
        for host in found.hosts:
            req = policy.for_host(host)
            if req.refusal is not None:
                self.tls.refused(req, req.refusal)
                reply = Reply(550 if req.refusal.permanent else 451, req.refusal.status, req.refusal.text)
                out.append((host, Failed(reply, host) if req.refusal.permanent else Deferred(reply, host)))
                continue
            out.append((host, Target(host, "", port, req=req)))
        return out

    async def _deliver_domain(self, domain: str, rcpts: list[DeliveryRecipient],
                              request: DeliveryRequest) -> dict[str, DeliveryOutcome]:
        targets = await self._targets(domain, request)
        if not isinstance(targets, list):
            return {r.address: targets for r in rcpts}
        where = domain or "relayhost"
        last: DeliveryOutcome = Deferred(Reply(451, "4.4.4", f"no reachable mail server for {where}"))
        for host, target in targets:
            if not isinstance(target, Target):
                last = target
                continue
            addresses = await host_addresses(self.resolver, host)
            if not addresses:
                why = "lookup failed" if addresses is None else "no address records"
                last = Deferred(Reply(451, "4.4.4", f"mail server {host}: {why}"))
                continue
            for ip in addresses:
                t = Target(target.host, ip, target.port, target.req, target.implicit, target.server_name)
                try:
                    return await self._send(t, rcpts, request)
                except NextHost as exc:
                    last = exc.outcome
                    log.info("id=%s %s: %s; trying the next", request.queue_id, t.where, exc)
        return {r.address: last for r in rcpts}

    async def _send(self, target: Target, rcpts: Sequence[DeliveryRecipient],
                    request: DeliveryRequest) -> dict[str, DeliveryOutcome]:
        """One transaction to `target`: on a cached session when one is idle there, else a new one. Raises
        NextHost when this address cannot take it."""
        session = self.cache.take(target.key)
        if session is not None:
            try:
                return await self._transact(session, rcpts, request)
            except SessionLost as exc:  # before any message data (after it, the transaction defers)
                log.info("id=%s cached session to %s was gone (%s): a new one", request.queue_id, target.where, exc)
        session = await open_session(target, tls=self.tls, local_hostname=self.local_hostname,
                                     connect_timeout=self.connect_timeout, command_timeout=self.command_timeout)
        self.connections_opened += 1
        try:
            return await self._transact(session, rcpts, request)
        except SessionLost as exc:
            raise NextHost(Deferred(Reply(451, "4.4.2", str(exc)), target.host)) from None

    async def _transact(self, session: SmtpSession, rcpts: Sequence[DeliveryRecipient],
                        request: DeliveryRequest) -> dict[str, DeliveryOutcome]:
        keep = False
        try:
            out = await session.transaction(request, rcpts)
            keep = True
            return out
        except NextHost:
            keep = True  # a 4xx to MAIL: the session itself is fine
            raise
        finally:
            if keep and session.is_open:
                await self.cache.put(session)
            else:
                await session.close()

