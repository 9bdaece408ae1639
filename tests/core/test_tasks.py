"""core/tasks: stopping a task waits for its unwinding to end, and a cancellation of the one who stops it is
raised after that, not lost."""

from __future__ import annotations

import asyncio

import pytest

from mailbastion.core.tasks import cancel_and_wait, wait_out


class SlowToUnwind:
    """A task whose clean-up, once cancelled, lasts until `release` is set (whatever else cancels it)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.unwinding = asyncio.Event()
        self.release = asyncio.Event()
        self.unwound = False

    async def __call__(self) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.unwinding.set()
            while not self.release.is_set():
                try:
                    await self.release.wait()
                except asyncio.CancelledError:
                    continue
            self.unwound = True


def test_the_caller_cancelled_while_it_waits_is_cancelled_once_the_task_has_ended() -> None:
    async def main() -> None:
        work = SlowToUnwind()
        task = asyncio.ensure_future(work())
        await work.started.wait()
        stopping = asyncio.ensure_future(cancel_and_wait(task))
        await work.unwinding.wait()
        stopping.cancel()  # the stop itself is cancelled (serve stopping on a second signal, a timeout around it)
        await asyncio.sleep(0)  # let the cancellation reach the stop while the task still unwinds
        assert not stopping.done()  # it still waits for the task
        work.release.set()
        with pytest.raises(asyncio.CancelledError):
            await stopping  # not swallowed
        assert work.unwound and task.cancelled()

    asyncio.run(main())


def test_an_error_of_the_task_is_raised_and_none_is_left_unretrieved() -> None:
    async def main() -> None:
        async def fails_when_cancelled() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                raise ValueError("while unwinding")

        task = asyncio.ensure_future(fails_when_cancelled())
        await asyncio.sleep(0)
        with pytest.raises(ValueError, match="while unwinding"):
            await cancel_and_wait(task)
        await cancel_and_wait(None)

    asyncio.run(main())


def test_wait_out_neither_cancels_nor_reads_the_future() -> None:
    async def main() -> None:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        waiting = asyncio.ensure_future(wait_out(fut))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.sleep(0)
        assert not fut.cancelled() and not waiting.done()
        fut.set_result(7)
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert fut.result() == 7

    asyncio.run(main())
