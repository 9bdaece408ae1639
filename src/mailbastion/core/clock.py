"""The clock everything time-dependent asks: leaver and start dates, archives, reservations.

    Clock = Callable[[], datetime]       # aware UTC "now"
    system_clock()                       # the real one
    OffsetClock(path)                    # TESTING AID: the real clock plus seconds read from a file

`OffsetClock` exists so that a test can move "now" for a running `serve` process (and the command line) by
writing a number of seconds into a file: it is built only when `[lifecycle] testing_clock_offset_file` is
set, which `config.weakened` reports at start-up. Production never sets it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

Clock = Callable[[], dt.datetime]

log = logging.getLogger("mailbastion.clock")


def system_clock() -> dt.datetime:
    """Now, aware UTC."""
    return dt.datetime.now(dt.UTC)


class OffsetClock:
    """`system_clock()` plus the float number of seconds in `path` (re-read at each call; a missing or
    unreadable file counts as 0). A testing aid: see the module docstring."""

    def __init__(self, path: Path, base: Clock = system_clock) -> None:
        self.path = path
        self.base = base

    def offset(self) -> float:
        try:
            return float(self.path.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0.0

    def __call__(self) -> dt.datetime:
        return self.base() + dt.timedelta(seconds=self.offset())


__all__ = ["Clock", "OffsetClock", "system_clock"]
