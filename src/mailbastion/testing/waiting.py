"""Waiting on a condition, never on a fixed sleep: what the flow tests poll for (a file in a Maildir, an
audit record, a campaign result) on a slow, busy machine.

    got = until(lambda: d.delivered(BOB), "Bob's copy in his INBOX")     # the condition's truthy value
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["until"]


def until(condition: Callable[[], Any], what: str, timeout: float = 90.0, every: float = 0.1) -> Any:
    """Call `condition` until it returns something truthy, and return that. AssertionError (a test failure
    naming `what`) when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        got = condition()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        time.sleep(every)
