"""Per-account sending limits and the hijacked-account detector, in memory, per process.

    meter = SendingMeter.from_settings(settings)
    meter.check("alice@example.org", rcpts=3)           # None, or the Reply that refuses (450 4.7.1)
    meter.record("alice@example.org", ["bob@x.test", ...])
    meter.fanout("alice@example.org")                   # Sign | None: too many distinct recipients lately
    meter.login("alice@example.org", "192.0.2.7")       # Sign | None: logins from too many new networks
    meter.bounce("alice@example.org")                   # Sign | None: too many of her messages refused

Limits count messages and recipients per hour and per day over sliding windows (Postfix's anvil counts per
client; we count per authenticated account, which is what a stolen password spends). A message over a limit
is refused with 450 4.7.1 and nothing else happens: the user's client retries later.

A `Sign` is a reason to believe the account is in other hands; the caller suspends sending (directory
SendingStore) and alerts. The signs (M3AAWG's "compromised account" practices):
- fan-out: `fanout_recipients` distinct recipients within `fanout_window_seconds`;
- new networks: logins from `new_clients` client networks (IPv4 /24, IPv6 /64) not seen for the account
  before, within `new_clients_window_seconds` (the first network an account is seen from is its home);
- bounces: `bounces` of its messages refused for good (5xx at relay time) within `bounce_window_seconds`.

State lives in memory: a restart forgets the windows (the limits start again from zero, the known networks
are learnt again). Memory per account is bounded by the daily limits and the window sizes. Thread-safe.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailbastion.core.replies import Reply

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings

HOUR, DAY = 3600.0, 86400.0
MAX_KNOWN_NETWORKS = 64  # per account; the oldest are forgotten first


@dataclass(frozen=True, slots=True)
class Sign:
    kind: str  # "fanout" | "new_networks" | "bounces"
    detail: str  # one line for the audit record and the alert


def network_of(client: str) -> str:
    """The client's network as counted: IPv4 /24, IPv6 /64 (an ISP's customer moves inside them)."""
    try:
        ip = ipaddress.ip_address(client.strip().strip("[]"))
    except ValueError:
        return client.strip().lower()
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network((ip, prefix), strict=False))


@dataclass(slots=True)
class _Account:
    sent: deque[tuple[float, int]] = field(default_factory=deque)  # (when, recipients) for the last day
    rcpts: deque[tuple[float, str]] = field(default_factory=deque)  # (when, recipient) for the fan-out window
    networks: dict[str, float] = field(default_factory=dict)  # network -> first seen
    new_logins: deque[tuple[float, str]] = field(default_factory=deque)  # (when, new network)
    bounces: deque[float] = field(default_factory=deque)


class SendingMeter:
    def __init__(self, *, messages_per_hour: int = 200, messages_per_day: int = 1000,
                 recipients_per_hour: int = 500, recipients_per_day: int = 2000, hijack: bool = True,
                 fanout_recipients: int = 150, fanout_window: float = 600, new_clients: int = 6,
                 new_clients_window: float = 3600, bounces: int = 20, bounce_window: float = 3600,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.messages = (messages_per_hour, messages_per_day)
        self.recipients = (recipients_per_hour, recipients_per_day)
        self.hijack = hijack
        self.fanout_recipients, self.fanout_window = fanout_recipients, float(fanout_window)
        self.new_clients, self.new_clients_window = new_clients, float(new_clients_window)
        self.bounce_limit, self.bounce_window = bounces, float(bounce_window)
        self._clock = clock
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}

    @classmethod
    def from_settings(cls, settings: Settings, **kw: object) -> SendingMeter:
        meter = cls(**kw)  # type: ignore[arg-type]
        meter.configure(settings)
        return meter

    def configure(self, settings: Settings) -> None:
        """Take the limits of `settings` (a reload); the counts so far are kept."""
        lim, h = settings.submission.limits, settings.submission.hijack
        with self._lock:
            self.messages = (lim.messages_per_hour, lim.messages_per_day)
            self.recipients = (lim.recipients_per_hour, lim.recipients_per_day)
            self.hijack = h.enabled
            self.fanout_recipients, self.fanout_window = h.fanout_recipients, float(h.fanout_window_seconds)
            self.new_clients, self.new_clients_window = h.new_clients, float(h.new_clients_window_seconds)
            self.bounce_limit, self.bounce_window = h.bounces, float(h.bounce_window_seconds)

    def _entry(self, account: str, now: float) -> _Account:
        entry = self._accounts.setdefault(account, _Account())
        while entry.sent and entry.sent[0][0] <= now - DAY:
            entry.sent.popleft()
        while entry.rcpts and entry.rcpts[0][0] <= now - self.fanout_window:
            entry.rcpts.popleft()
        while entry.new_logins and entry.new_logins[0][0] <= now - self.new_clients_window:
            entry.new_logins.popleft()
        while entry.bounces and entry.bounces[0] <= now - self.bounce_window:
            entry.bounces.popleft()
        return entry

    # -- limits -----------------------------------------------------------------------------------

    def check(self, account: str, rcpts: int = 1) -> Reply | None:
        """Would one more message to `rcpts` recipients go over a limit? The refusal, or None."""
        now = self._clock()
        with self._lock:
            entry = self._entry(account, now)
            hour = [(t, n) for t, n in entry.sent if t > now - HOUR]
            for label, used, limit, extra in (
                ("messages per hour", len(hour), self.messages[0], 1),
                ("messages per day", len(entry.sent), self.messages[1], 1),
                ("recipients per hour", sum(n for _, n in hour), self.recipients[0], rcpts),
                ("recipients per day", sum(n for _, n in entry.sent), self.recipients[1], rcpts),
            ):
                if used + extra > limit:
                    return Reply(450, "4.7.1", f"Sending limit reached for {account} ({limit} {label}); "
                                 "try again later")
        return None

    def record(self, account: str, recipients: Iterable[str]) -> None:
        """A message was accepted for `recipients`."""
        now = self._clock()
        rcpts = [r.lower() for r in recipients]
        with self._lock:
            entry = self._entry(account, now)
            entry.sent.append((now, len(rcpts)))
            entry.rcpts.extend((now, r) for r in rcpts)

    # -- signs of a hijacked account --------------------------------------------------------------

    def fanout(self, account: str, pending: Iterable[str] = ()) -> Sign | None:
        """Too many distinct recipients within the fan-out window (counting `pending`, not yet sent)?"""
        if not self.hijack:
            return None
        now = self._clock()
        with self._lock:
            entry = self._entry(account, now)
            distinct = {r for _, r in entry.rcpts} | {r.lower() for r in pending}
        if len(distinct) >= self.fanout_recipients:
            return Sign("fanout", f"{len(distinct)} distinct recipients within {self.fanout_window:.0f}s "
                                  f"(limit {self.fanout_recipients})")
        return None

    def login(self, account: str, client: str) -> Sign | None:
        """A successful login from `client`: a sign when it makes too many new networks lately."""
        now = self._clock()
        net = network_of(client)
        with self._lock:
            entry = self._entry(account, now)
            if net in entry.networks:
                return None
            first = not entry.networks
            entry.networks[net] = now
            if len(entry.networks) > MAX_KNOWN_NETWORKS:
                del entry.networks[min(entry.networks, key=entry.networks.__getitem__)]
            if first:  # the account's home network: not new
                return None
            entry.new_logins.append((now, net))
            nets = [n for _, n in entry.new_logins]
        if self.hijack and len(nets) >= self.new_clients:
            return Sign("new_networks", f"logins from {len(nets)} new client networks within "
                                        f"{self.new_clients_window:.0f}s ({', '.join(nets[-6:])})")
        return None

    def bounce(self, account: str) -> Sign | None:
        """One of the account's messages was refused for good."""
        now = self._clock()
        with self._lock:
            entry = self._entry(account, now)
            entry.bounces.append(now)
            count = len(entry.bounces)
        if self.hijack and count >= self.bounce_limit:
            return Sign("bounces", f"{count} messages refused for good within {self.bounce_window:.0f}s")
        return None

    def forget(self, account: str) -> None:
        """Unsuspended: start the windows afresh, keep the known networks."""
        with self._lock:
            entry = self._accounts.get(account)
            if entry is not None:
                entry.rcpts.clear()
                entry.new_logins.clear()
                entry.bounces.clear()


__all__ = ["SendingMeter", "Sign", "network_of"]
