"""Open IMAP sessions of accounts that are no longer active are closed (`doveadm kick`).

Every `imap.kick_interval_seconds` (10 s by default, at most 60) the guard asks Dovecot who is logged in
and kicks each user whose account is not active now: suspended, disabled, deleted, pending, past its leave
date, or gone from the directory. The directory is read from memory (`DirectoryCache`: one small read of
the change counter per sweep, a full read only after a change), so a change made anywhere (the command
line, another host, SQL) and a leave date that passes with no change at all are both seen within one
interval. Changes made through this process's own `Directory` also kick at once
(`Directory.on_deactivated`). New logins are refused by the password path at once in every case (it reads
the database at each login).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from mailbastion.core.address import AddressError
from mailbastion.directory.cache import DirectoryCache
from mailbastion.directory.resolution import to_address
from mailbastion.directory.snapshot import DirectorySnapshot

log = logging.getLogger("mailbastion.imap.sessions")


class SessionGuard:
    def __init__(self, cache: DirectoryCache, *, who: Callable[[], Awaitable[set[str]]],
                 kick: Callable[[str], Awaitable[bool]], interval: float = 10.0) -> None:
        self.cache = cache
        self.who = who
        self.kick = kick
        self.interval = interval
        self.kicked = 0  # users kicked since start

    def is_active(self, user: str, snapshot: DirectorySnapshot) -> bool:
        """Unknown or malformed users are not active."""
        try:
            key = to_address(user).normalized
        except (AddressError, ValueError):
            return False
        entry = snapshot.accounts.get(key)
        return entry is not None and entry.is_active(self.cache.directory.now())

    async def sweep(self) -> list[str]:
        """Kick every logged-in user whose account is not active; returns them."""
        users = await self.who()
        if not users:
            return []
        snapshot = await asyncio.to_thread(self.cache.current)  # reads again when the directory changed
        inactive = sorted(u for u in users if not self.is_active(u, snapshot))
        for user in inactive:
            if await self.kick(user):
                self.kicked += 1
                log.warning("imap.kick user=%s: the account is not active; its sessions are closed", user)
        return inactive

    async def run(self) -> None:
        """Sweep forever; a failing sweep is logged and tried again at the next interval."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep guarding; the next sweep may work
                log.error("imap.kick sweep failed: %s", exc)


__all__ = ["SessionGuard"]
