"""The delivered journal: states, durability across reopen, torn records, retention, concurrent writers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mailbastion.mailbox.journal import DeliveredJournal, JournalLocked, PairState, is_queue_id


def test_states_and_reopen(tmp_path: Path) -> None:
    j = DeliveredJournal(tmp_path)
    assert j.state("Q1", "a@example.org") is PairState.NEW
    j.begin("Q1", ["a@example.org", "b@example.org"])
    assert j.state("Q1", "a@example.org") is PairState.BEGUN
    j.done("Q1", "a@example.org")
    assert j.state("Q1", "a@example.org") is PairState.DONE
    assert j.state("Q2", "a@example.org") is PairState.NEW
    j.close()
    again = DeliveredJournal(tmp_path)  # the index is rebuilt from the files
    assert again.state("Q1", "a@example.org") is PairState.DONE
    assert again.state("Q1", "b@example.org") is PairState.BEGUN
    again.close()


def test_a_torn_last_record_is_ignored(tmp_path: Path) -> None:
    j = DeliveredJournal(tmp_path)
    j.begin("Q1", ["a@example.org"])
    j.close()
    (log,) = tmp_path.glob("delivered-*.log")
    with open(log, "ab") as f:
        f.write(b"D Q1 a@exam")  # the process died in the middle of a write
    again = DeliveredJournal(tmp_path)
    assert again.state("Q1", "a@example.org") is PairState.BEGUN
    again.close()


def test_old_days_are_dropped(tmp_path: Path) -> None:
    old = tmp_path / f"delivered-{time.strftime('%Y%m%d', time.gmtime(time.time() - 30 * 86400))}.log"
    old.write_bytes(b"I Q0 a@example.org\nD Q0 a@example.org\n")
    j = DeliveredJournal(tmp_path, retention_days=6)
    assert not old.exists() and j.state("Q0", "a@example.org") is PairState.NEW
    j.close()


def test_one_process_per_directory(tmp_path: Path) -> None:
    j = DeliveredJournal(tmp_path)
    with pytest.raises(JournalLocked):
        DeliveredJournal(tmp_path)
    j.close()
    DeliveredJournal(tmp_path).close()  # released


def test_concurrent_writers(tmp_path: Path) -> None:
    j = DeliveredJournal(tmp_path)

    def work(n: int) -> None:
        for i in range(50):
            j.begin(f"Q{n}x{i}", ["a@example.org"])
            j.done(f"Q{n}x{i}", "a@example.org")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    j.close()
    again = DeliveredJournal(tmp_path)
    assert all(again.state(f"Q{n}x{i}", "a@example.org") is PairState.DONE for n in range(4) for i in range(50))
    again.close()


def test_queue_id_shape() -> None:
    assert is_queue_id("0006270DEADBEEF42") and not is_queue_id("../x") and not is_queue_id("") \
        and not is_queue_id("a" * 65)
