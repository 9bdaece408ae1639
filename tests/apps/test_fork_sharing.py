"""Forked children (SMTP acceptors, the MDA's process) keep sharing the parent's pages: apps/workers.fork_process
freezes the parent's objects before the fork, so a cycle collection in the child does not write to (and so
copy) every page that holds them. Measured from /proc: the child's private dirty memory before and after a
full collection, against the same measurement for a plain fork (the control that shows the copying happens)."""

from __future__ import annotations

import gc
import multiprocessing
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest

from mailbastion.apps.workers import fork_process

OBJECTS = 300_000  # small lists the collector tracks: ~25 MB of object headers in the parent


def _private_dirty() -> int:
    """This process's private dirty memory in bytes (/proc/self/smaps_rollup)."""
    with open("/proc/self/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no Private_Dirty in smaps_rollup")


def _collect_and_report(conn: Connection) -> None:
    before = _private_dirty()
    gc.collect()
    conn.send((gc.get_freeze_count(), _private_dirty() - before))
    conn.close()


def _report_from(start: object) -> tuple[int, int]:
    receiver, sender = multiprocessing.Pipe(duplex=False)
    proc = start(sender)  # type: ignore[operator]
    sender.close()
    try:
        assert receiver.poll(120), "the child did not report"
        frozen, copied = receiver.recv()
    finally:
        proc.join(60)
    assert proc.exitcode == 0
    return frozen, copied


@pytest.fixture
def parent_objects() -> Iterator[list[list[int]]]:
    objects = [[i] for i in range(OBJECTS)]
    yield objects
    gc.unfreeze()  # fork_process froze this test process's objects too: give them back to the collector


def _plain_fork(conn: Connection) -> multiprocessing.process.BaseProcess:
    p = multiprocessing.get_context("fork").Process(target=_collect_and_report, args=(conn,))
    p.start()
    return p


def test_a_child_collection_copies_the_parent_pages_after_a_plain_fork(parent_objects: list[list[int]]) -> None:
    gc.unfreeze()
    frozen, copied = _report_from(_plain_fork)
    assert frozen == 0
    # The collector walked every list the parent made and wrote to each one's header: most pages copied.
    assert copied > 10 * 2**20, f"only {copied / 2**20:.1f} MiB copied: the measurement does not see the copying"


def test_fork_process_children_collect_without_copying_the_parent_pages(parent_objects: list[list[int]]) -> None:
    frozen, copied = _report_from(lambda conn: fork_process(_collect_and_report, (conn,), "test-child"))
    assert frozen >= OBJECTS  # everything alive at the fork, the parent's lists among it
    assert copied < 4 * 2**20, f"{copied / 2**20:.1f} MiB copied by one collection in the child"
