"""When to try again, and when to give up (Postfix minimal/maximal_backoff_time, maximal_queue_lifetime).

The delay after the n-th failed attempt is `min_backoff * 2**(n-1)`, capped at `max_backoff`:
with the defaults 300 s, 600 s, 1200 s, 2400 s, 4000 s, 4000 s ... A message older than its lifetime
is not tried again: its remaining recipients fail and the sender gets a DSN. Bounces (null sender)
have their own, usually shorter, lifetime (Postfix bounce_queue_lifetime).

Our own MDA refusing or dropping the connection (starting, restarting, killed) is not an Internet
failure: such a recipient is tried again after `link_min` seconds, doubling while it keeps failing that
way, capped at `link_max` (1, 2, 4 ... 60 s), never on the back-off above.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailbastion.config.sections.core import SpoolSection


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    min_backoff: float = 300.0
    max_backoff: float = 4000.0
    max_lifetime: float = 5 * 86400.0
    bounce_lifetime: float = 5 * 86400.0
    link_min: float = 1.0
    link_max: float = 60.0

    def __post_init__(self) -> None:
        if self.min_backoff <= 0 or self.max_backoff < self.min_backoff:
            raise ValueError("need 0 < min_backoff <= max_backoff")
        if self.link_min <= 0 or self.link_max < self.link_min:
            raise ValueError("need 0 < link_min <= link_max")
        if self.max_lifetime <= 0 or self.bounce_lifetime <= 0:
            raise ValueError("lifetimes must be positive")

    @staticmethod
    def from_settings(section: SpoolSection) -> RetrySchedule:
        return RetrySchedule(
            min_backoff=float(section.min_backoff_seconds),
            max_backoff=float(max(section.max_backoff_seconds, section.min_backoff_seconds)),
            max_lifetime=float(section.max_lifetime_seconds),
            bounce_lifetime=float(section.bounce_lifetime_seconds),
        )

    def backoff(self, attempts: int) -> float:
        """The wait after `attempts` failed attempts (attempts >= 1)."""
        n = max(1, attempts)
        # Cap the exponent so huge attempt counts cannot overflow a float.
        return min(self.max_backoff, self.min_backoff * 2.0 ** min(n - 1, 64))

    def link_backoff(self, failures: int) -> float:
        """The wait after `failures` consecutive refused/reset connections to our own MDA (>= 1)."""
        n = max(1, failures)
        return min(self.link_max, self.link_min * 2.0 ** min(n - 1, 64))

    def next_retry(self, attempts: int, now: float) -> float:
        return now + self.backoff(attempts)

    def lifetime(self, *, null_sender: bool) -> float:
        return self.bounce_lifetime if null_sender else self.max_lifetime

    def is_expired(self, arrival: float, now: float, *, null_sender: bool) -> bool:
        """True when a message that arrived at `arrival` must not be tried again."""
        return now - arrival >= self.lifetime(null_sender=null_sender)
