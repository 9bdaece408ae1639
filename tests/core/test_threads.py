"""core/threads: blocking calls on threads, their results and errors, cancellation, fork."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from mailbastion.core.threads import Workers, run_blocking


def test_a_call_runs_on_another_thread_and_returns_its_result() -> None:
    async def main() -> tuple[int, int]:
        return await run_blocking(lambda: (threading.get_ident(), 6 * 7))

    ident, value = asyncio.run(main())
    assert value == 42
    assert ident != threading.get_ident()


def test_an_exception_reaches_the_caller() -> None:
    def fail(text: str) -> None:
        raise ValueError(text)

    async def main() -> None:
        await run_blocking(fail, "the call's own error")

    with pytest.raises(ValueError, match="the call's own error"):
        asyncio.run(main())


def test_calls_run_side_by_side_up_to_the_thread_count() -> None:
    workers = Workers(3, name="test")
    barrier = threading.Barrier(3, timeout=30)

    async def main() -> list[int]:
        return await asyncio.gather(*(workers.run(barrier.wait) for _ in range(3)))

    try:
        assert sorted(asyncio.run(main())) == [0, 1, 2]  # all three met at the barrier: three threads at once
    finally:
        workers.close()
    assert workers._threads == []


def test_a_cancelled_caller_does_not_stop_the_call() -> None:
    workers = Workers(1, name="test")
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        release.wait(30)
        finished.set()

    async def main() -> None:
        task = asyncio.ensure_future(workers.run(slow))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        assert await workers.run(lambda: "next") == "next"  # the thread went on to the next call

    try:
        asyncio.run(main())
    finally:
        workers.close()
    assert finished.is_set()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_starts_threads_of_its_own() -> None:
    """The parent's threads do not survive a fork: without starting afresh, the child's first call would
    wait forever on a queue nobody reads."""
    own = Workers(2, name="test")

    async def use() -> int:
        return await run_blocking(lambda: 1) + await own.run(lambda: 1)

    assert asyncio.run(use()) == 2  # the threads run in the parent before the fork
    pid = os.fork()
    if pid == 0:  # the child: exit 0 when both calls come back within 30 s
        code = 1
        try:
            code = 0 if asyncio.run(asyncio.wait_for(use(), 30)) == 2 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    own.close()
    assert os.waitstatus_to_exitcode(status) == 0


async def test_the_worker_threads_answer_raise_and_stop() -> None:
    workers = Workers(2, name="test")

    def boom() -> None:
        raise ValueError("boom")

    assert await asyncio.gather(*(workers.run(pow, 2, n) for n in range(10))) == [2 ** n for n in range(10)]
    with pytest.raises(ValueError, match="boom"):
        await workers.run(boom)
    threads = list(workers._threads)
    assert len(threads) == 2 and all(t.is_alive() for t in threads)
    workers.close()
    assert not any(t.is_alive() for t in threads)
    assert await workers.run(pow, 3, 2) == 9  # used again after close: started again
    workers.close()
