"""Spool.commit: the 250 promise. Files on disk, fsynced, renamed; SpoolFull; survives SIGKILL."""

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
from mailbastion.spool.layout import QueueState
from mailbastion.spool.record import QueueRecord
from mailbastion.spool.writer import Spool

MESSAGE = b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nhello\r\n"


def _env() -> Envelope:
    return Envelope(sender=parse_address("alice@example.org"), recipients=(parse_address("bob@example.net"),))


async def test_commit_writes_message_and_record_into_incoming(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", min_free_bytes=0)
    seen: list[str] = []
    spool.add_listener(seen.append)
    qid = await spool.commit(_env(), MESSAGE, client="192.0.2.1", junk=True, hops=3)
    entry = spool.layout.entry(QueueState.INCOMING, qid)
    assert (entry / "message.eml").read_bytes() == MESSAGE
    record = QueueRecord.from_json((entry / "record.json").read_bytes())
    assert (record.queue_id, record.client, record.sender, record.junk, record.hops, record.size) == (
        qid, "192.0.2.1", "alice@example.org", True, 3, len(MESSAGE))
    assert [r.address for r in record.recipients] == ["bob@example.net"]
    assert seen == [qid]  # the queue manager's wake()
    assert os.listdir(spool.layout.tmp) == []
    assert oct(entry.stat().st_mode & 0o777) == "0o700"


async def test_commits_run_concurrently_without_blocking_the_loop(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", min_free_bytes=0)
    ids = await asyncio.gather(*(spool.commit(_env(), MESSAGE, client="c") for _ in range(50)))
    assert len(set(ids)) == 50
    assert sorted(ids) == spool.layout.ids(QueueState.INCOMING)


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
        record = spool.layout.load(QueueState.INCOMING, qid)
        raw = spool.layout.message_path(QueueState.INCOMING, qid).read_bytes()
        assert record.queue_id == qid and record.size == len(raw)
        assert message_from_bytes(raw)["Subject"] == f"crash {n}"
        assert raw.endswith(b"x" * (n * 97 % 20000) + b"\r\n")
    # Anything else in incoming/ is also whole: a crash never leaves half an entry in a state.
    for qid in on_disk:
        spool.layout.load(QueueState.INCOMING, qid)


async def test_a_failing_disk_is_spool_full_and_leaves_no_debris(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from mailbastion.spool import writer

    spool = Spool(tmp_path / "spool", min_free_bytes=0)
    calls = []

    def failing(path: Path, data: bytes) -> None:
        calls.append(path.name)
        if path.name == "record.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        path.write_bytes(data)

    monkeypatch.setattr(writer, "write_durably", failing)
    with pytest.raises(SpoolFull, match="No space left"):
        await spool.commit(_env(), MESSAGE, client="c")
    assert calls == ["message.eml", "record.json"]
    assert os.listdir(spool.layout.tmp) == [] and spool.layout.ids(QueueState.INCOMING) == []


def test_public_surface_is_explicit() -> None:
    from mailbastion import delivery, spool

    assert sorted(spool.__all__) == [
        "QueueControl", "QueueControlError", "QueueEntry", "QueueEntryBusy", "QueueManager", "QueueRecord",
        "QueueState", "RecipientState", "RecipientStatus", "RecordError", "RetrySchedule", "Spool", "SpoolLayout",
        "UnknownQueueId", "VerdictSummary"]
    assert sorted(delivery.__all__) == [
        "Delivered", "DeliveryAgent", "DeliveryOutcome", "Dsn", "LmtpDeliveryAgent", "PermFailed", "RoutingAgent",
        "SmtpDeliveryAgent", "TempFailed", "build_dsn"]
    for module in (spool, delivery):
        for name in module.__all__:
            assert getattr(module, name) is not None
