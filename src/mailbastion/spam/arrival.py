"""When a message arrived, for rules that judge its dates (DATE_IN_PAST, DATE_IN_FUTURE).

    ctx.put(ArrivalTime(received_time(message.header) or time.time()))   # `mailbastion scan` of stored mail
    ctx.get(ArrivalTime)                                                  # None on the live path: arrival is now

On the live SMTP path a message arrives now, so no one puts this fact and the rules use the clock. A stored
message (`mailbastion scan` of a Maildir file, a corpus) arrived when its newest Received header says:
judging its Date against today would call every old message "dated in the past".
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

from mailbastion.core.header_block import HeaderBlock

__all__ = ["ArrivalTime", "received_time"]


@dataclass(frozen=True, slots=True)
class ArrivalTime:
    """When the message arrived, in POSIX seconds: a typed fact of the check context."""

    timestamp: float


def _parse(value: str) -> float | None:
    try:
        dt = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    try:
        return dt.timestamp()  # a date without a zone is taken as local time, as parsedate does
    except (OverflowError, OSError, ValueError):
        return None


def received_time(header: HeaderBlock) -> float | None:
    """The date of the newest Received field that carries one, else None. Never raises.

    RFC 5321 §4.4: each relay prepends its Received field, so the topmost is the newest (the last hop's,
    normally our own MTA's); RFC 5322 §3.6.7: its date-time follows the last ';'."""
    for value in header.values("Received"):
        _, semi, when = value.rpartition(";")
        if semi:
            ts = _parse(when)
            if ts is not None:
                return ts
    return None
