"""The queue manager's wake-up FIFO (spool/wakeup.py): writers never block or fail, never write into
something that is not a FIFO, and many pokes make one call."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import stat
import tempfile
import time
from pathlib import Path

import pytest

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


def test_a_fifo_left_by_another_user_is_replaced() -> None:
    """`server.user` changed (a test rig ran as root, the service now runs as its own user): the old FIFO,
    0600 and root's, cannot be opened; the manager replaces it instead of losing its wake-ups."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make a FIFO another user cannot open")
    base = tempfile.mkdtemp(prefix="mb-wakeup-", dir="/tmp")
    try:
        os.chmod(base, 0o755)
        spool = os.path.join(base, "spool")
        os.mkdir(spool, 0o700)
        os.mkfifo(os.path.join(spool, FIFO_NAME), 0o600)  # root's
        os.chown(spool, 65534, 65534)  # the directory is the service user's ("nobody" here)
        pid = os.fork()
        if pid == 0:  # the service user's process
            code = 1
            try:
                os.setgid(65534)
                os.setuid(65534)

                async def main() -> bool:
                    woken = asyncio.Event()
                    reader = WakeupReader(spool)
                    ok = reader.attach(woken.set) and poke(spool)
                    if ok:
                        await asyncio.wait_for(woken.wait(), 30)
                    reader.close()
                    return ok

                code = 0 if asyncio.run(main()) else 1
            finally:
                os._exit(code)
        deadline = time.monotonic() + 60  # never hang the suite on a forked child
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if done[0] == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the service user's process did not finish in 60 s")
        assert os.waitstatus_to_exitcode(done[1]) == 0
        assert os.stat(os.path.join(spool, FIFO_NAME)).st_uid == 65534
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_link_under_the_name_is_never_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.mkfifo(elsewhere / "fifo")
    fd = os.open(elsewhere / "fifo", os.O_RDWR | os.O_NONBLOCK)  # a reader there: a followed link would write
    try:
        spool = tmp_path / "spool"
        spool.mkdir()
        (spool / FIFO_NAME).symlink_to(elsewhere / "fifo")
        assert poke(spool) is False
        try:
            got = os.read(fd, 10)
        except BlockingIOError:
            got = b""
        assert got == b""
    finally:
        os.close(fd)
