"""Failed-login throttling, per account and per client address, with back-off (the `[login]` settings).

    throttle = LoginThrottle.from_settings(settings)
    throttle.locked("alice@example.org", "192.0.2.7")        # Lockout while either is locked, else None
    throttle.failed("alice@example.org", "192.0.2.7")        # new Lockouts this failure caused (audit them)
    throttle.succeeded("alice@example.org", "192.0.2.7")     # clears the account's and client's failures
    throttle = process_throttle(settings)                    # the one of this process (IMAP, submission)

A key (an account, or a client address) is locked for `lockout_seconds` once it has `max_failures_*`
failures within `window_seconds`; each further lockout of the same key doubles the time, up to
`max_lockout_seconds`; a successful login resets the account's and the client's back-off. IPv6 clients are
counted per /64 (one host usually holds the whole /64). Memory: entries without a recent failure or a lock
are dropped, so an address spray costs at most one small entry per key for the window.

The state is per process and in memory: a restart forgets it (an attacker gains one window). The password
path of every protocol of one process (IMAP's auth socket, submission) shares one throttle.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings

Kind = Literal["account", "client"]


@dataclass(frozen=True, slots=True)
class Lockout:
    kind: Kind
    key: str  # the account (normalized address) or the client (address, or IPv6 /64)
    seconds: float  # how long this lockout lasts
    failures: int  # failures within the window that caused it
    level: int  # 1 for the first lockout, 2 for the second (twice as long), ...
    until: float  # monotonic time it ends


@dataclass(slots=True)
class _Entry:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    level: int = 0
    last_seen: float = 0.0


def client_key(client: str) -> str:
    """The client address as counted: IPv4 as is, IPv6 by its /64, anything else lower-cased."""
    try:
        ip = ipaddress.ip_address(client.strip().strip("[]"))
    except ValueError:
        return client.strip().lower()
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginThrottle:
    """Thread-safe; every method is O(1) amortised and never blocks on I/O."""

    def __init__(self, *, max_failures_per_account: int = 10, max_failures_per_client: int = 30,
                 window_seconds: float = 900, lockout_seconds: float = 300, max_lockout_seconds: float = 3600,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits: dict[Kind, int] = {"account": max_failures_per_account, "client": max_failures_per_client}
        self.window = float(window_seconds)
        self.lockout = float(lockout_seconds)
        self.max_lockout = float(max(max_lockout_seconds, lockout_seconds))
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[Kind, str], _Entry] = {}
        self._calls = 0

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: object) -> LoginThrottle:
        s = settings.login
        return cls(max_failures_per_account=s.max_failures_per_account,
                   max_failures_per_client=s.max_failures_per_client, window_seconds=s.window_seconds,
                   lockout_seconds=s.lockout_seconds, max_lockout_seconds=s.max_lockout_seconds,
                   **kwargs)  # type: ignore[arg-type]

    def configure(self, settings: Settings) -> None:
        """Take new limits (a reload); the failures counted so far are kept."""
        s = settings.login
        with self._lock:
            self.limits = {"account": s.max_failures_per_account, "client": s.max_failures_per_client}
            self.window, self.lockout = float(s.window_seconds), float(s.lockout_seconds)
            self.max_lockout = float(max(s.max_lockout_seconds, s.lockout_seconds))

    def locked(self, account: str, client: str) -> Lockout | None:
        """The lockout in force for the account or the client (the longer one), else None."""
        now = self._clock()
        found: Lockout | None = None
        with self._lock:
            for kind, key in self._keys(account, client):
                entry = self._entries.get((kind, key))
                if entry is not None and entry.locked_until > now and (found is None or entry.locked_until > found.until):
                    found = Lockout(kind, key, entry.locked_until - now, len(entry.failures), entry.level,
                                    entry.locked_until)
        return found

    @staticmethod
    def _keys(account: str, client: str) -> tuple[tuple[Kind, str], tuple[Kind, str]]:
        return ("account", account), ("client", client_key(client))

    def failed(self, account: str, client: str) -> list[Lockout]:
        """Count a failed login; returns the lockouts it started (none, one, or both keys)."""
        now = self._clock()
        started = []
        with self._lock:
            for kind, key in self._keys(account, client):
                if not key:
                    continue
                entry = self._entries.setdefault((kind, key), _Entry())
                entry.last_seen = now
                self._expire(entry, now)
                entry.failures.append(now)
                if entry.locked_until <= now and len(entry.failures) >= self.limits[kind]:
                    entry.level += 1
                    seconds = min(self.lockout * 2 ** (entry.level - 1), self.max_lockout)
                    entry.locked_until = now + seconds
                    started.append(Lockout(kind, key, seconds, len(entry.failures), entry.level, entry.locked_until))
                    entry.failures.clear()  # counting starts again when the lockout ends
            self._prune(now)
        return started

    def succeeded(self, account: str, client: str) -> None:
        """A login with the right credentials: the account's and the client's failures and back-off end."""
        with self._lock:
            self._entries.pop(("account", account), None)
            self._entries.pop(("client", client_key(client)), None)

    def _expire(self, entry: _Entry, now: float) -> None:
        while entry.failures and entry.failures[0] <= now - self.window:
            entry.failures.popleft()

    def _prune(self, now: float) -> None:
        self._calls += 1
        if self._calls % 1024:
            return
        # Keep the back-off level for a while after a lockout ends, so a patient attacker still meets it.
        keep = max(self.window, self.max_lockout * 2)
        for k in [k for k, e in self._entries.items() if e.locked_until <= now and e.last_seen < now - keep]:
            del self._entries[k]

    def __len__(self) -> int:
        return len(self._entries)


_PROCESS: LoginThrottle | None = None
_PROCESS_LOCK = threading.Lock()


def process_throttle(settings: Settings) -> LoginThrottle:
    """The throttle every password path of this process shares (IMAP's auth socket, submission), so that
    failures on one protocol count against the account and the client on the other too. Made from the first
    caller's settings; later callers (and reloads) `configure` it."""
    global _PROCESS
    with _PROCESS_LOCK:
        if _PROCESS is None:
            _PROCESS = LoginThrottle.from_settings(settings)
        return _PROCESS


__all__ = ["Lockout", "LoginThrottle", "client_key", "process_throttle"]
