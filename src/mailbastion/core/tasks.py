"""Stopping a background task of ours: cancel it and wait until it has finished unwinding.

    await cancel_and_wait(self._task)     # None is fine; the task's own CancelledError is swallowed
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` and wait for it to end; an error it ends with other than its cancellation is raised."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
