"""The submission role: users' outbound mail (RFC 6409) in the internal and all-in-one processes. Wiring only.

    listeners  [submission] listen (STARTTLS required) and listen_tls (implicit TLS, RFC 8314), one
               SubmissionHandler (submission/handler.py) behind both, the public TLS certificate (tls.cert)
    passwords  the directory's LoginGuard with the process's one login throttle, shared with IMAP ([login] settings)
    outbound   DKIM signer (auth.dkim_keys_dir) → Outbox: the relay hop to the gateway (delivery/relay_client.py,
               mutual TLS), or the outbox spool below submission.spool_dir with its own queue manager,
               which relays later and sends DSNs

Never in the gateway role: it holds passwords (tests/apps/test_roles.py proves the gateway loads none of it).
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING

from mailbastion.config import Settings
from mailbastion.core.errors import ConfigError
from mailbastion.core.peer import PeerInfo

if TYPE_CHECKING:
    from mailbastion.apps.process import Children
    from mailbastion.delivery.smtp_client import SmtpDeliveryAgent
    from mailbastion.directory.store import Directory
    from mailbastion.directory.throttle import LoginThrottle
    from mailbastion.phish_report.intake import ReportIntake
    from mailbastion.smtp.edge import SmtpEdge
    from mailbastion.smtp.listeners import Listeners
    from mailbastion.spool.manager import QueueManager
    from mailbastion.submission.bounce_signs import BounceSigns
    from mailbastion.submission.dkim_signer import DkimSigner
    from mailbastion.submission.limits import SendingMeter

log = logging.getLogger("mailbastion.runtime")
_BOUNCES = PeerInfo("0.0.0.0", hostname="bounces from the Internet", session_id="bounces")


def _account_of(directory: Directory, sender: str) -> str | None:
    """The account a sender address of ours stands for: itself, or the one account its alias reaches."""
    from mailbastion.core.ports import ResolutionKind

    try:
        res = directory.resolve(sender)
    except ValueError:
        return None
    if res.kind is ResolutionKind.LOCAL:
        return str(res.address)
    if res.kind is ResolutionKind.ALIAS:
        local = [t for t in res.targets if directory.is_local_domain(t.domain)]
        return str(local[0]) if len(local) == 1 else None
    return None


def submission_roles(settings: Settings) -> list[SubmissionRole]:
    """The submission role when `[submission] enabled` and it has a listener; building it opens nothing."""
    s = settings.submission
    return [SubmissionRole(settings)] if s.enabled and (s.listen or s.listen_tls) else []


class SubmissionRole:
    name = "submission"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.listeners: Listeners | None = None
        self.edges: list[SmtpEdge] = []
        self.queue: QueueManager | None = None
        self.agent: SmtpDeliveryAgent | None = None
        self.throttle: LoginThrottle | None = None
        self.meter: SendingMeter | None = None
        self._signer: DkimSigner | None = None
        self.bounce_signs: BounceSigns | None = None  # Internet bounces of our users' mail (hijack signs)
        self.phish_intake: ReportIntake | None = None  # report mails to report-phish@ (phish_report/intake.py)

    def prefork(self) -> None:
        return None

    def children(self) -> list[Children]:
        return []

    def on_bounce(self, sender: str, detail: str) -> None:
        """A bounce from the Internet matched to a message `sender` sent (the gateway's BounceWatch in the
        all-in-one process; on a split, the MDA's XBOUNCEOF from the gateway): counted as a sign of a hijacked
        account (submission/bounce_signs.py)."""
        if self.bounce_signs is not None:
            self.bounce_signs(sender, detail)

    def signer(self) -> DkimSigner | None:
        return self._signer if self.settings.auth.enabled else None

    async def start(self) -> list[str]:
        from mailbastion.auth.keys import KeyStore
        from mailbastion.delivery.dsn import build_dsn
        from mailbastion.delivery.relay_client import relay_agent_from_settings
        from mailbastion.directory.login import LoginGuard
        from mailbastion.directory.sending import SendingStore
        from mailbastion.directory.store import Directory
        from mailbastion.directory.throttle import process_throttle
        from mailbastion.dns.resolver import DnsResolver
        from mailbastion.smtp.edge import EdgeConfig, SmtpEdge
        from mailbastion.smtp.limits import EdgeLimits
        from mailbastion.smtp.listeners import Listeners
        from mailbastion.spool.manager import QueueManager
        from mailbastion.spool.writer import Spool
        from mailbastion.submission.bounce_signs import BounceSigns
        from mailbastion.submission.dkim_signer import DkimSigner
        from mailbastion.submission.handler import SubmissionHandler
        from mailbastion.submission.limits import SendingMeter
        from mailbastion.submission.outbox import Outbox, OwnHop
        from mailbastion.tls_policy import server_context_from_settings

        s = self.settings
        sub = s.submission
        tls = server_context_from_settings(s, "public")  # raises ConfigError: no AUTH without TLS, so no start
        d = s.dns
        resolver = DnsResolver(d.nameservers or None, port=d.port, timeout=d.timeout)
        self.agent = relay_agent_from_settings(s, resolver)
        directory = await asyncio.to_thread(Directory.from_settings, s)
        self.throttle = process_throttle(s)  # shared with IMAP's auth socket in this process
        self.meter = SendingMeter.from_settings(s)
        spool = Spool(s.path(sub.spool_dir), min_free_bytes=s.spool.min_free_bytes)
        self.queue = QueueManager.from_settings(s, spool, OwnHop(self.agent),
                                                bounce=partial(build_dsn, reporting_mta=s.server.hostname))
        self._signer = DkimSigner(KeyStore(s.path(s.auth.dkim_keys_dir)), domains=s.auth.signing_domains,
                                  algorithms=s.auth.sign_algorithms)
        protection = None
        if s.encryption.enabled:  # confidential mail: encrypted, held, picked up or refused (crypto/outbound.py)
            from mailbastion.crypto.keystore import KeyStore as UserKeys
            from mailbastion.crypto.outbound import OutboundPolicy, StoreKeys
            from mailbastion.crypto.pickup import PickupStore
            from mailbastion.submission.protection import Protection

            policy = OutboundPolicy.from_settings(s, is_local_domain=directory.is_local_domain,
                                                  pickup=PickupStore.from_settings(s))
            user_keys = UserKeys.from_settings(s)
            discovery = None
            if s.encryption.wkd or s.encryption.ldap_url:  # outsiders' OpenPGP keys, looked up when needed
                from mailbastion.crypto.discovery import KeyDiscovery

                discovery = KeyDiscovery.from_settings(s, user_keys, resolver)
            protection = Protection(policy, StoreKeys(user_keys), hold=spool, discovery=discovery)
        sender_gate = None
        if s.aup.enforce == "submission":  # the acceptable use policy, past its grace period (aup/standing.py)
            from mailbastion.aup.standing import AupGate, AupPolicy
            from mailbastion.aup.store import AupStore

            sender_gate = AupGate(AupStore(directory), AupPolicy.from_settings(s))
        handler = SubmissionHandler(
            guard=LoginGuard(directory, self.throttle), sending=SendingStore(directory), meter=self.meter,
            outbox=Outbox(self.agent, spool, timeout=sub.relay_timeout_seconds), signer=self.signer,
            alert_spool=spool if sub.hijack.alert == "postmaster" else None,
            recipient_delimiter=s.mailbox.recipient_delimiter, max_recipients=sub.max_recipients,
            add_missing_headers=sub.add_missing_headers, hostname=s.server.hostname, protection=protection,
            sender_gate=sender_gate)
        submitting = handler  # the submission handler itself (the report intake below may wrap `handler`)
        self.bounce_signs = BounceSigns(self.meter, account_of=partial(_account_of, directory),
                                        suspend=lambda account, sign: submitting._suspend(account, sign, _BOUNCES))
        if s.phish_report.enabled:  # a logged-in user's mail to report-phish@ is a phishing report
            from mailbastion.apps.phish_report import build_intake
            from mailbastion.phish_report.intake import ReportingSubmission

            self.phish_intake = await asyncio.to_thread(build_intake, s, directory)
            handler = ReportingSubmission(handler, self.phish_intake)  # type: ignore[assignment]
        limits = EdgeLimits(max_message_size=sub.max_message_size, max_recipients=sub.max_recipients,
                            max_line_length=s.smtp.max_line_length, max_header_size=s.smtp.max_header_size,
                            idle_timeout=sub.idle_timeout, max_connections=sub.max_connections,
                            max_connections_per_client=sub.max_connections_per_client)
        config = EdgeConfig(hostname=s.server.hostname, banner="ESMTP mailbastion submission", limits=limits,
                            tls_context=tls, require_starttls=True)
        self.edges = [SmtpEdge(handler, config), SmtpEdge(handler, config, implicit_tls=True)]
        self.listeners = Listeners([(self.edges[0], list(sub.listen)), (self.edges[1], list(sub.listen_tls))])
        await self.queue.start()
        try:
            await self.listeners.start()
        except OSError:
            await self.queue.stop(1)
            raise
        if self.phish_intake is not None:
            await self.phish_intake.start()  # reports a crash left half-handled
        signing = ", ".join(self._signer.domains()) or "no domain has an active DKIM key yet"
        lines = [f"submission (STARTTLS)   {a}" for a in sub.listen]
        lines += [f"submission (TLS)        {a}" for a in sub.listen_tls]
        lines.append(f"DKIM signing            {signing}")
        lines.append(f"outbox                  {s.path(sub.spool_dir)} (relays to {s.relay_in.connect_address()})")
        return lines

    async def reload(self, settings: Settings) -> None:
        """New limits, throttle settings and auth.enabled (signing) at once; the certificate is re-read for
        new handshakes (a pair that does not load is refused, the running one stays). Listeners, the outbox
        and the relay client need a restart."""
        from mailbastion.tls_policy import reload_server_context

        self.settings = settings
        if self.meter is not None:
            self.meter.configure(settings)
        if self.throttle is not None:
            self.throttle.configure(settings)
        if self.edges and self.edges[0].config.tls_context is not None:
            try:
                reload_server_context(self.edges[0].config.tls_context, settings, "public")
            except ConfigError as exc:
                log.error("submission certificate reload refused, keeping the running one: %s", exc)

    async def stop(self, drain_seconds: float) -> None:
        if self.listeners is not None:
            await self.listeners.stop(drain_seconds)
        if self.phish_intake is not None:
            await self.phish_intake.stop()
        if self.queue is not None:
            await self.queue.stop(min(drain_seconds, 10.0))
        if self.agent is not None:
            await self.agent.close()


__all__ = ["SubmissionRole", "submission_roles"]
