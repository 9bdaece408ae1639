"""The queue manager's wake-up FIFO (spool/wakeup.py): writers never block or fail, never write into
something that is not a FIFO, and many pokes make one call."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from mailbastion.spool.wakeup import FIFO_NAME, WakeupReader, poke


def test_poke_without_a_manager_is_a_no_op(tmp_path: Path) -> None:
    assert poke(tmp_path) is False  # no FIFO
    os.mkfifo(tmp_path / FIFO_NAME)
    assert poke(tmp_path) is False  # a FIFO nobody reads (ENXIO): no block, no error
    (tmp_path / FIFO_NAME).unlink()
    (tmp_path / FIFO_NAME).write_bytes(b"x")
    assert poke(tmp_path) is False  # a plain file under the name is never written to
    assert (tmp_path / FIFO_NAME).read_bytes() == b"x"


async def test_pokes_call_back_once_per_drain_and_a_full_pipe_does_not_block(tmp_path: Path) -> None:
    (tmp_path / FIFO_NAME).write_bytes(b"left over")  # replaced by the FIFO
    calls: list[int] = []
    woken = asyncio.Event()
    reader = WakeupReader(tmp_path)
    assert reader.attach(lambda: (calls.append(1), woken.set()))
    try:
        assert stat.S_ISFIFO(os.lstat(tmp_path / FIFO_NAME).st_mode)
        assert stat.S_IMODE(os.lstat(tmp_path / FIFO_NAME).st_mode) == 0o600
        for _ in range(200_000):  # far more than a pipe holds: the writer must neither block nor fail
            assert poke(tmp_path) is True
        await asyncio.wait_for(woken.wait(), 30)
        assert 1 <= len(calls) <= 5  # one per drain of up to 64 KiB, not one per poke
    finally:
        reader.close()
    assert poke(tmp_path) is False  # the reader is gone
