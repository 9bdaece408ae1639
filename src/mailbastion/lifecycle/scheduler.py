"""The lifecycle scheduler of the internal role: applies start and end dates, archives and deletions on
time (lifecycle/transitions.py), checking every `[lifecycle] check_interval_seconds` (60 s); each check also
sends the acceptable use policy's notices to users past its grace period (aup/notices.py).

    scheduler = LifecycleScheduler(settings)     # apps/role_internal.py starts it next to the map publisher
    lines = await scheduler.start()              # a first check now, then one per interval
    await scheduler.stop()

A leave changes the directory, which bumps its change counter: the map publisher (same process) re-exports
the recipient map within its own check interval (1 s) and pushes it to the gateways, so the gateway refuses
a leaver's address within one lifecycle interval plus a second or two. A check that fails (the database
briefly away) is logged and tried again at the next interval.

With `[directory.ldap] enabled`, a second loop reads LDAP every `interval_seconds` and suspends the accounts
disabled or removed there (lifecycle/ldap_sync.py). `[lifecycle]` changes apply at the next
start (a SIGHUP names them as needing a restart).

After each check, with `[training] enabled`, the training round runs (training/reminders.py): mandatory
modules for joiners, reminders by mail, phishing-simulation campaigns whose start time has come.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from mailbastion.lifecycle import status
from mailbastion.lifecycle.transitions import LifecyclePolicy, Transition, apply_due

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings
    from mailbastion.directory.store import Directory
    from mailbastion.lifecycle.ldap_sync import SyncResult
    from mailbastion.spool.writer import Spool

log = logging.getLogger("mailbastion.lifecycle")


class LifecycleScheduler:
    def __init__(self, settings: Settings, *, directory: Directory | None = None) -> None:
        self.settings = settings
        self.policy = LifecyclePolicy.from_settings(settings)
        self._directory = directory
        self._tasks: list[asyncio.Task[None]] = []
        self.checks = 0
        self.ldap_syncs = 0
        self._spool: Spool | None = None  # training reminders and simulations are committed here

    @property
    def directory(self) -> Directory:
        if self._directory is None:
            from mailbastion.directory.store import Directory

            self._directory = Directory.from_settings(self.settings)
        return self._directory

    async def check(self) -> list[Transition]:
        """One check now; never raises for a database or file error (logged)."""
        try:
            done = await asyncio.to_thread(apply_due, self.directory, self.policy)
        except Exception as exc:  # noqa: BLE001 - keep scheduling; the next check may work
            log.error("lifecycle.check_failed error=%s: %s", type(exc).__name__, exc)
            return []
        finally:
            self.checks += 1
        self._record(checked=True)
        from mailbastion.aup.notices import notify_overdue  # the acceptable use policy's overdue notices

        await notify_overdue(self.settings, self.directory)  # never raises
        await self.training_round()
        return done

    async def training_round(self) -> None:
        """The training round after each check (training/reminders.py): joiners' mandatory modules, reminders,
        campaigns whose start has come. A failure is logged; the next check tries again."""
        if not self.settings.training.enabled:
            return
        from mailbastion.training.reminders import training_round

        try:
            if self._spool is None:
                from mailbastion.spool.writer import Spool

                self._spool = Spool.for_system_mail(self.settings)
            await training_round(self.settings, self.directory, self._spool)
        except Exception as exc:  # noqa: BLE001 - keep scheduling; the next check may work
            log.error("training.round_failed error=%s: %s", type(exc).__name__, exc)

    def _record(self, **what: object) -> None:
        """Leave the evidence `mailbastion audit` reads (lifecycle/status.py); never stops the scheduler."""
        try:
            status.record(self.settings, **what)  # type: ignore[arg-type]
        except OSError as exc:
            log.error("lifecycle.status_unwritable %s", exc)

    async def sync_ldap(self) -> SyncResult | None:
        """One LDAP sync now; None when LDAP could not be read (logged, nothing changed)."""
        from mailbastion.lifecycle.ldap_sync import LdapSync, LdapUnavailable, apply_ldap

        section = self.settings.directory.ldap
        try:
            people = await asyncio.to_thread(LdapSync(section, self.settings.path).read)
            result = await asyncio.to_thread(apply_ldap, self.directory, people)
        except LdapUnavailable as exc:
            log.error("lifecycle.ldap_failed %s (nothing changed; tried again in %.0fs)", exc, section.interval_seconds)
            self._record(ldap_error=str(exc)[:300])
            return None
        except Exception as exc:  # noqa: BLE001 - keep syncing; the next round may work
            log.error("lifecycle.ldap_failed error=%s: %s", type(exc).__name__, exc)
            self._record(ldap_error=f"{type(exc).__name__}: {exc}"[:300])
            return None
        finally:
            self.ldap_syncs += 1
        self._record(ldap_synced=True)
        log.info("lifecycle.ldap_synced enabled=%d disabled=%d suspended=%d without_account=%d",
                 len(people.enabled), len(people.disabled), len(result.suspended), result.not_here)
        return result

    async def _ldap_loop(self) -> None:
        while True:
            await self.sync_ldap()
            await asyncio.sleep(self.settings.directory.ldap.interval_seconds)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lifecycle.check_interval_seconds)
            await self.check()

    async def start(self) -> list[str]:
        await asyncio.to_thread(lambda: self.directory)  # opens (and migrates) the directory
        await self.check()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._loop(), name="lifecycle-scheduler"))
        lc, ldap = self.settings.lifecycle, self.settings.directory.ldap
        lines = [(f"lifecycle               dates checked every {lc.check_interval_seconds:g}s; leavers: "
                  f"{lc.leaver_policy}; archive {self.policy.archive_dir} after {lc.archive_after_days} days")]
        if ldap.enabled:
            self._tasks.append(loop.create_task(self._ldap_loop(), name="lifecycle-ldap-sync"))
            lines.append(f"directory sync (LDAP)   {ldap.url} {ldap.base}, every {ldap.interval_seconds:g}s")
        return lines

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks.clear()


__all__ = ["LifecycleScheduler"]
