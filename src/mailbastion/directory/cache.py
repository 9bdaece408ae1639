"""The MDA's view of the directory, answered from memory: `resolve`, `is_local_domain` and
`mailbox_quota` for every recipient without a database query (the MDA's `MailboxDirectory` port).

    directory = DirectoryCache.from_settings(settings)   # loads the whole directory once
    directory.resolve(address)                            # from memory

Freshness: at most every `check_interval` seconds (0.5 by default) a question first reads the
directory's generation, one row that database triggers bump in every change transaction (migration
0002), whoever makes the change: this process, the command line, another host. When it moved, the
whole directory is read again in one transaction; otherwise nothing else is read. A change is thus seen
within `check_interval` plus one load. Leaver dates are compared with the clock at each question, so an
account stops receiving at its leaver date with no change to the database at all.

Failures: when the generation cannot be read the question raises (the MDA answers 451 and the gateway
retries), as the database-backed `Directory` does; the last snapshot is kept for when the database is
back. Memory: a few hundred bytes per account and alias; no password hash is ever loaded.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mailbastion.core.address import Address
from mailbastion.core.ports import Resolution, ResolutionKind
from mailbastion.directory.snapshot import DirectorySnapshot, read_generation

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings
    from mailbastion.directory.store import Directory

log = logging.getLogger("mailbastion.directory.cache")

CHECK_INTERVAL = 0.5
_REFUSALS = (ResolutionKind.UNKNOWN_USER, ResolutionKind.UNKNOWN_DOMAIN)


class DirectoryCache:
    """`MailboxDirectory` (and `RecipientResolver`) from an in-memory snapshot of `directory`, kept
    current through the generation counter. Thread-safe: the MDA asks from worker threads."""

    def __init__(self, directory: Directory, *, check_interval: float = CHECK_INTERVAL,
                 monotonic: Callable[[], float] = time.monotonic,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        """`monotonic` paces the generation checks; `clock` (default: the directory's) dates leavers."""
        self.directory = directory
        self.check_interval = check_interval
        self._monotonic = monotonic
        self._now = clock or directory.now
        self._lock = threading.Lock()
        self._snapshot = DirectorySnapshot(recipient_delimiter=directory.recipient_delimiter)
        self._checked = float("-inf")
        self.loads = 0  # how many times the whole directory was read (for tests and the log)
        self.refresh(force=True)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: object) -> DirectoryCache:
        """The MDA's directory for `settings` (migrates the schema, as `Directory.from_settings` does)."""
        from mailbastion.directory.store import Directory

        return cls(Directory.from_settings(settings), **kwargs)  # type: ignore[arg-type]

    # -- the MailboxDirectory port ------------------------------------------------------------------

    def resolve(self, address: Address | str) -> Resolution:
        """As `Directory.resolve`. Raises AddressError for a malformed address, SQLAlchemyError when the
        directory cannot say whether it changed.

        A refusal is final for the sender (550, then a bounce), so it is never answered from a snapshot
        that may be stale: an unknown address first checks the generation now (one small query), and an
        account created a moment ago is found."""
        found = self.current().resolve(address, self._now())
        if found.kind in _REFUSALS and self.refresh(check_now=True):
            found = self._snapshot.resolve(address, self._now())
        return found

    def resolve_from_memory(self, address: Address | str) -> Resolution | None:
        """`resolve`'s answer when it needs no database read (the generation was checked within the
        interval) and is not a refusal; else None, and the caller asks `resolve` (from a worker thread: the
        MDA answers a known account's RCPT on its event loop this way). Never blocks on the database."""
        if self._monotonic() - self._checked >= self.check_interval:
            return None
        found = self._snapshot.resolve(address, self._now())
        return None if found.kind in _REFUSALS else found

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower() in self.current().domains

    def mailbox_quota(self, address: Address | str) -> int | None:
        """The account's own quota in bytes, or None for the configured default (or no such account)."""
        return self.current().quota(address)

    # -- freshness ----------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._snapshot.generation

    def current(self) -> DirectorySnapshot:
        """The snapshot, re-read first when the generation moved (checked at most every interval)."""
        if self._monotonic() - self._checked >= self.check_interval:
            self.refresh()
        return self._snapshot

    def refresh(self, *, force: bool = False, check_now: bool = False) -> bool:
        """Read the generation (at most every interval, or now with `check_now`) and the whole directory
        when it moved (or with `force`). True when the snapshot was reloaded."""
        with self._lock:
            now = self._monotonic()
            if not force and not check_now and now - self._checked < self.check_interval:
                return False  # another thread checked while this one waited for the lock
            engine = self.directory.engine
            with engine.connect() as conn:
                if not force and read_generation(conn) == self._snapshot.generation:
                    self._checked = now
                    return False
                if conn.in_transaction():
                    conn.rollback()  # the generation read began one; the load takes its own snapshot
                snapshot = DirectorySnapshot.load(conn, recipient_delimiter=self.directory.recipient_delimiter)
            previous, self._snapshot, self._checked = self._snapshot.generation, snapshot, now
            self.loads += 1
            log.info("directory loaded: generation %d (was %d), %d domains, %d accounts, %d aliases",
                     snapshot.generation, previous, len(snapshot.domains), len(snapshot.accounts),
                     len(snapshot.aliases))
            return True


__all__ = ["CHECK_INTERVAL", "DirectoryCache"]
