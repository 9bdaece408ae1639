"""Stopping a background task of ours: cancel it and wait until it has finished unwinding.

    await cancel_and_wait(self._task)     # None is fine; the task's own CancelledError is swallowed
    await wait_out(future)                # done before we go on, even if we are cancelled meanwhile

A cancellation of the caller while it waits does not cut the wait short and is not lost: it is raised once
the task (the future) is done, so that a stop that is itself cancelled still leaves nothing running behind.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait", "wait_out"]


async def wait_out(fut: asyncio.Future[Any]) -> None:
    """Wait until `fut` is done (neither cancelling it nor reading its outcome). A cancellation of the caller
    meanwhile is raised once it is done."""
    cancelled = False
    while not fut.done():
        try:
            await asyncio.wait({fut})
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` and wait for it to end; an error it ends with other than its cancellation is raised (after
    a cancellation of the caller meanwhile, which goes first)."""
    if task is None:
        return
    task.cancel()
    try:
        await wait_out(task)
    finally:
        error = None if task.cancelled() else task.exception()  # read either way: never "never retrieved"
    if error is not None:
        raise error
