"""Spool.commit: the 250 promise. One file on disk, fsynced, renamed, its name fsynced (group commit);
SpoolFull; survives SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from email import message_from_bytes
from pathlib import Path

import pytest

from mailbastion.core import replies
from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.core.errors import SpoolFull, TemporaryFailure
from mailbastion.core.verdict import Action, Folder, Verdict
from mailbastion.durable import GroupSync
from mailbastion.spool.layout import QueueState
from mailbastion.spool.writer import Spool

MESSAGE = b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nhello\r\n"


def _env() -> Envelope:
    return Envelope(sender=parse_address("alice@example.org"), recipients=(parse_address("bob@example.net"),))


async def test_commit_writes_message_and_record_into_incoming(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", min_free_bytes=0)
    seen: list[str] = []
    spool.add_listener(seen.append)
    qid = await spool.commit(_env(), MESSAGE, client="192.0.2.1", verdict=Verdict(Action.JUNK, 6.0, ()), hops=3)
    path = spool.layout.path(QueueState.INCOMING, qid)
    record, message = spool.layout.read(QueueState.INCOMING, qid)
    assert message == MESSAGE
    assert (record.queue_id, record.client, record.sender, record.folder, record.hops, record.size) == (
        qid, "192.0.2.1", "alice@example.org", Folder.JUNK, 3, len(MESSAGE))
    assert [r.address for r in record.recipients] == ["bob@example.net"]
    assert seen == [qid]  # the queue manager's wake()
    assert os.listdir(spool.layout.tmp) == []
    assert path.is_file() and oct(path.stat().st_mode & 0o777) == "0o600"  # mail is private
    assert oct(spool.layout.state_dir(QueueState.INCOMING).stat().st_mode & 0o777) == "0o700"
    assert spool.incoming_sync.rounds == 1  # its name in incoming/ was fsynced before commit returned


async def test_commits_run_concurrently_without_blocking_the_loop(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", min_free_bytes=0)
    ids = await asyncio.gather(*(spool.commit(_env(), MESSAGE, client="c") for _ in range(50)))
    assert len(set(ids)) == 50
    assert sorted(ids) == spool.layout.ids(QueueState.INCOMING)
    assert spool.incoming_sync.synced == 50 and 1 <= spool.incoming_sync.rounds <= 50


def test_group_sync_shares_one_fsync_and_never_serves_a_later_caller_with_an_earlier_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from mailbastion import durable

    started: list[int] = []
    first_running = threading.Event()
    release = threading.Event()

    def slow_fsync(path: Path) -> None:  # the first round blocks until the test lets it go
        started.append(len(started))
        if len(started) == 1:
            first_running.set()
            assert release.wait(30)

    monkeypatch.setattr(durable, "fsync_dir", slow_fsync)
    sync = GroupSync(tmp_path)
    with ThreadPoolExecutor(max_workers=12) as pool:
        first = pool.submit(sync.sync)
        assert first_running.wait(30)
        later = [pool.submit(sync.sync) for _ in range(10)]  # arrive while round 1 runs
        while sync.waiting < 10:
            threading.Event().wait(0.01)  # until each of the ten waits for the round after this one
        assert not first.done() and not any(f.done() for f in later)
        release.set()
        for f in [first, *later]:
            f.result(30)
    assert sync.rounds == 2 and len(started) == 2  # ten callers, one fsync for all of them
    assert sync.synced == 11


def test_group_sync_raises_a_failed_round_to_each_of_its_callers_and_recovers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from mailbastion import durable

    calls: list[int] = []

    def flaky(path: Path) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(durable, "fsync_dir", flaky)
    sync = GroupSync(tmp_path)
    with pytest.raises(OSError, match="Input/output error"):
        sync.sync()
    sync.sync()  # the next round is a fresh fsync, and it succeeded
    assert sync.rounds == 2 and sync.synced == 2


async def test_a_failing_directory_fsync_is_spool_full_and_takes_the_entry_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from mailbastion import durable

    def failing(path: Path) -> None:
        raise OSError(errno.EIO, "Input/output error")

    spool = Spool(tmp_path / "spool", min_free_bytes=0)
    monkeypatch.setattr(durable, "fsync_dir", failing)
    with pytest.raises(SpoolFull, match="Input/output error"):
        await spool.commit(_env(), MESSAGE, client="c")
    assert spool.layout.ids(QueueState.INCOMING) == [] and os.listdir(spool.layout.tmp) == []


async def test_spool_full_refuses_with_452_and_leaves_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", min_free_bytes=2**62)
    with pytest.raises(SpoolFull) as info:
        await spool.commit(_env(), MESSAGE, client="c")
    assert isinstance(info.value, TemporaryFailure)
    assert info.value.reply is replies.INSUFFICIENT_STORAGE and info.value.reply.code == 452
    assert spool.layout.ids(QueueState.INCOMING) == [] and os.listdir(spool.layout.tmp) == []


async def test_a_message_without_recipients_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", min_free_bytes=0)
    with pytest.raises(ValueError):
        await spool.commit(Envelope(sender=None), MESSAGE, client="c")


_CRASH_WRITER = textwrap.dedent("""
    import asyncio, sys
    from mailbastion.core.address import parse_address
    from mailbastion.core.envelope import Envelope
    from mailbastion.spool.writer import Spool

    async def main():
        spool = Spool(sys.argv[1], min_free_bytes=0)
        env = Envelope(sender=parse_address("a@example.org"), recipients=(parse_address("b@example.net"),))
        n = 0
        while True:
            n += 1
            body = (b"Subject: crash %d\\r\\n\\r\\n" % n) + b"x" * (n * 97 % 20000) + b"\\r\\n"
            qid = await spool.commit(env, body, client="crash")
            sys.stdout.write(f"{qid} {n}\\n")
            sys.stdout.flush()

    asyncio.run(main())
""")


def test_every_id_reported_before_sigkill_is_whole_on_disk(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    proc = subprocess.Popen([sys.executable, "-c", _CRASH_WRITER, str(root)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    committed: list[tuple[str, int]] = []
    while len(committed) < 200:
        line = proc.stdout.readline()
        assert line, "writer died early"
        qid, n = line.decode().split()
        committed.append((qid, int(n)))
    os.kill(proc.pid, signal.SIGKILL)  # mid-write: the next commit is somewhere in its steps
    rest = proc.stdout.read()
    proc.wait()
    for line in rest.decode().splitlines():  # lines written before the kill landed
        if line.count(" ") == 1:
            qid, n = line.split()
            committed.append((qid, int(n)))
    spool = Spool(root, min_free_bytes=0)
    on_disk = set(spool.layout.ids(QueueState.INCOMING))
    for qid, n in committed:
        assert qid in on_disk, f"{qid} (#{n}) was reported committed but is missing"
        record, raw = spool.layout.read(QueueState.INCOMING, qid)
        assert record.queue_id == qid and record.size == len(raw)
        assert message_from_bytes(raw)["Subject"] == f"crash {n}"
        assert raw.endswith(b"x" * (n * 97 % 20000) + b"\r\n")
    # Anything else in incoming/ is also whole: a crash never leaves half an entry in a state.
    for qid in on_disk:
        spool.layout.read(QueueState.INCOMING, qid)


async def test_a_failing_disk_is_spool_full_and_leaves_no_debris(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from mailbastion.spool import layout

    spool = Spool(tmp_path / "spool", min_free_bytes=0)
    calls = []

    def failing(fd: int, data: bytes) -> None:
        calls.append(len(data))
        os.write(fd, data[: len(data) // 2])  # half written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(layout, "write_fd", failing)
    with pytest.raises(SpoolFull, match="No space left"):
        await spool.commit(_env(), MESSAGE, client="c")
    assert len(calls) == 1 and calls[0] > len(MESSAGE)  # record and message go in one write
    assert os.listdir(spool.layout.tmp) == [] and spool.layout.ids(QueueState.INCOMING) == []


def test_public_surface_is_explicit() -> None:
    from mailbastion import delivery, spool

    assert sorted(spool.__all__) == [
        "Bounce", "Notification", "QueueControl", "QueueControlError", "QueueEntry", "QueueEntryBusy",
        "QueueManager", "QueueRecord", "QueueState", "RecipientState", "RecipientStatus", "RecordError",
        "RetrySchedule", "Spool", "SpoolLayout", "UnknownQueueId", "VerdictSummary"]
    assert sorted(delivery.__all__) == ["Dsn", "LmtpDeliveryAgent", "RoutingAgent", "SmtpDeliveryAgent", "build_dsn"]
    for module in (spool, delivery):
        for name in module.__all__:
            assert getattr(module, name) is not None
