"""The internal role: the MDA (LMTP in over mutual TLS, the directory, Maildir). Wiring only.

It holds what the DMZ must not: the directory with its password hashes and the mailboxes. In the
all-in-one process with `server.workers` > 1 the MDA runs in a process of its own (`own_process`), so
Maildir writes and directory lookups use another core than the queue manager's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mailbastion.config import Settings
from mailbastion.core.errors import ConfigError

if TYPE_CHECKING:
    from mailbastion.apps.map_publisher import MapPublisher
    from mailbastion.apps.process import Children, Role
    from mailbastion.apps.workers import Acceptors
    from mailbastion.lifecycle.scheduler import LifecycleScheduler
    from mailbastion.mailbox.direct import DirectAgent
    from mailbastion.mailbox.lmtp_server import MdaServer
    from mailbastion.portal.service import PortalService

log = logging.getLogger("mailbastion.runtime")


def roles(settings: Settings) -> list[Role]:
    """`serve --role internal`: the MDA in this process, IMAP (Dovecot) when `[imap] enabled`, and submission."""
    from mailbastion.apps.role_submission import submission_roles

    internal, submission = InternalRole(settings), submission_roles(settings)
    for role in submission:  # bounces the gateway matched to our users' mail reach us as XBOUNCEOF: hijack signs
        internal.bounce_listeners.append(role.on_bounce)
    return [internal, *imap_roles(settings), *submission]


def imap_roles(settings: Settings) -> list[Role]:
    """Dovecot on our Maildirs, with our directory deciding every login (imap/dovecot.py): a role of its own,
    listed right after the internal role, so it stops before the MDA. Building it opens nothing."""
    if not settings.imap.enabled:
        return []
    from mailbastion.directory.throttle import process_throttle
    from mailbastion.imap.dovecot import DovecotService

    return [DovecotService(settings, throttle=process_throttle(settings))]  # one throttle with submission


class InternalRole:
    name = "internal"

    def __init__(self, settings: Settings, *, own_process: bool = False, mda_only: bool = False) -> None:
        """`own_process`: the MDA (and the map publisher) run in a child process, the rest here; `mda_only`:
        this is that child, which runs only them."""
        self.settings = settings
        self.own_process = own_process
        self.mda_only = mda_only
        self.mda: MdaServer | None = None
        self.mda_process: Acceptors | None = None
        self.publisher: MapPublisher | None = None  # the recipient map: exported, pushed to the gateways
        self.portal: PortalService | None = None
        self.lifecycle: LifecycleScheduler | None = None  # dates applied on time (lifecycle/scheduler.py)
        # Told (sender, line) for each refusal a DSN matched by the gateway reports (the split's submission
        # role listens; in the all-in-one process the gateway tells submission itself).
        self.bounce_listeners: list[Callable[[str, str], None]] = []

    def direct_agent(self) -> DirectAgent:
        """The all-in-one's local delivery through this process's MDA (mailbox/direct.py); once started."""
        from mailbastion.mailbox.direct import DirectAgent

        if self.mda is None:
            raise RuntimeError("the MDA runs in another process or has not started: no direct delivery")
        return DirectAgent(self.mda.handler)

    def prefork(self) -> None:
        if self.own_process:
            self.mda_process = start_mda_process(self.settings)

    async def start(self) -> list[str]:
        s = self.settings
        lines: list[str] = []
        if self.mda_process is None:  # the process that runs the MDA also publishes the map
            from mailbastion import metrics
            from mailbastion.apps.map_publisher import MapPublisher
            from mailbastion.apps.mda import build_mda

            self.publisher = MapPublisher(s)
            lines = await self.publisher.start()
            metrics.add_source(self.publisher.samples)
            self.mda = build_mda(s)
            self.mda.handler.bounce_listeners = self.bounce_listeners
            await self.mda.start()
            if s.lifecycle.enabled:  # start and end dates, archives (issue 13): next to the map publisher
                from mailbastion.lifecycle.scheduler import LifecycleScheduler

                self.lifecycle = LifecycleScheduler(s)
                lines += await self.lifecycle.start()
        if s.portal.enabled and not self.mda_only:  # inside, next to the directory (never in the gateway role)
            from mailbastion.portal.service import PortalService

            extra: dict[str, object] = {}
            if s.imap.enabled:  # the portal serves the mail clients' set-up documents for IMAP and submission
                import asyncio

                from mailbastion.directory import Directory
                from mailbastion.imap.client_setup import ClientSetupDocuments

                directory = await asyncio.to_thread(Directory.from_settings, s)
                extra = {"directory": directory, "client_setup": ClientSetupDocuments(s, directory.is_local_domain)}
            if s.phish_report.enabled:  # "Report as phishing" for users (portal/phish_pages.py, phish_report/)
                import asyncio

                from mailbastion.apps.phish_report import PortalPhishDesk
                from mailbastion.portal.phish_pages import PhishPages

                known: Any = extra.get("directory")
                desk = await asyncio.to_thread(PortalPhishDesk.from_settings, s, known)
                extra["more_extensions"] = [PhishPages(desk)]  # joins the portal's own extensions (context.py)
            self.portal = PortalService(s, **extra)
            lines += await self.portal.start()
        where = " (own process)" if self.mda_process is not None else ""
        return [f"LMTP (MDA, mutual TLS)  {s.lmtp.listen}{where}",
                f"mailboxes               {s.path(s.mailbox.root)}/<domain>/<user>/ (Maildir)", *lines]

    async def reload(self, settings: Settings) -> None:
        """New handshakes use the re-read certificate, key and CA; a pair that does not load is refused
        and the running one stays. (The MDA's own process re-reads the file on its own SIGHUP.)"""
        self.settings = settings
        if self.portal is not None:
            await self.portal.reload(settings)
        if self.mda is None:
            return
        from mailbastion.tls_policy import reload_server_context

        try:
            reload_server_context(self.mda.ssl_context, settings, "mda")
        except ConfigError as exc:
            log.error("MDA certificate reload refused, keeping the running one: %s", exc)

    async def stop(self, drain_seconds: float) -> None:
        if self.portal is not None:
            await self.portal.stop(min(drain_seconds, 10.0))
        if self.lifecycle is not None:
            await self.lifecycle.stop()
        if self.publisher is not None:
            await self.publisher.stop()
        if self.mda is not None:
            await self.mda.stop()
        if self.mda_process is not None:
            await self.mda_process.stop(drain_seconds)

    def children(self) -> list[Children]:
        return [self.mda_process] if self.mda_process is not None else []


def start_mda_process(settings: Settings) -> Acceptors:
    """The MDA in a process of its own (all-in-one with several workers, `[lmtp] direct = false`): Maildir
    writes and directory lookups then use another core than the queue manager's."""
    from mailbastion.apps.workers import Acceptors, fork_process

    return Acceptors([fork_process(_mda_child, (settings,), "mailbastion-mda")])


def _mda_child(settings: Settings) -> None:
    import asyncio
    import os

    from mailbastion.apps.process import ServerProcess
    from mailbastion.apps.workers import quiet_until_ready
    from mailbastion.smtp.listeners import install_uvloop

    quiet_until_ready()
    install_uvloop()

    async def main() -> None:
        server = ServerProcess(settings, "internal", [InternalRole(settings, mda_only=True)])
        await server.start()
        await server.run_until_signal()  # SIGTERM drains; SIGHUP reloads its certificates

    try:
        asyncio.run(main())
    except Exception:
        logging.getLogger("mailbastion.workers").exception("MDA process %d failed", os.getpid())
        raise SystemExit(1) from None


__all__ = ["InternalRole", "roles", "start_mda_process"]
