"""Stopping the measures board (the portal's stop) ends the `mailbastion av status` child of a running refresh,
and leaves nothing of it: no process, no pipe, no asyncio transport for the garbage collector. close() returns only
once every probe's clean-up is done (also when a probe has just timed out, or the caller of close() is cancelled,
which is raised after), and a closed board starts no refresh again."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import time
import warnings
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailbastion.config import load_settings
from mailbastion.measures.antivirus import av_status_command
from mailbastion.measures.board import MeasureBoard, MeasureResult


def _av_status_children() -> list[int]:
    """Our child processes running `mailbastion av status`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"av" in cmdline and b"status" in cmdline:
            found.append(int(entry.name))
    return found


async def _until(condition: object, what: str, seconds: float = 120.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@dataclass
class AvProbe:
    run: object
    numbers: tuple[int, ...] = (1,)

    async def __call__(self) -> Sequence[MeasureResult]:
        await self.run()  # type: ignore[operator]
        return []


async def test_closing_the_board_ends_a_running_av_status_child(tmp_path: Path) -> None:
    config = tmp_path / "mailbastion.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    board = MeasureBoard([AvProbe(av_status_command(load_settings(config)))])
    board.refresh_soon()
    await _until(lambda: _av_status_children(), "the av status child to start")
    children = _av_status_children()
    await board.close()
    assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []  # killed and reaped, not left behind
    await board.close()  # nothing running: a no-op


def _pipes_written_by(pid: int) -> set[str]:
    """The pipes `pid`'s stdout and stderr write into ("pipe:[inode]"): we hold their reading ends."""
    return {os.readlink(f"/proc/{pid}/fd/{n}") for n in (1, 2)}


def _our_open_files() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
    return found


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_closing_the_board_leaves_nothing_of_the_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      loop_kind: str) -> None:
    """The child has started a process of its own that inherited its stdout and stderr (here a `sleep` that
    a sitecustomize of the child's interpreter starts, as a helper started by the command would): closing the
    board neither waits for that process to let go of the pipes nor leaves it, the child unreaped, our ends of
    the pipes open or an unclosed transport. `mailbastion serve` runs uvloop; the tests' loops are asyncio's."""
    site, descendant_file = tmp_path / "site", tmp_path / "descendant.pid"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        f"import subprocess\n_p = subprocess.Popen(['sleep', '300'])\n"
        f"open({str(descendant_file)!r}, 'w').write(str(_p.pid))\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p))
    config = tmp_path / "mailbastion.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    seen: dict[str, object] = {}

    async def scenario() -> None:
        board = MeasureBoard([AvProbe(av_status_command(load_settings(config)))])
        board.refresh_soon()
        await _until(lambda: _av_status_children() and descendant_file.exists() and descendant_file.read_text(),
                     "the av status child and the process it started")
        [seen["child"]] = _av_status_children()
        seen["descendant"] = int(descendant_file.read_text())
        seen["pipes"] = _pipes_written_by(seen["child"])  # type: ignore[arg-type]
        await asyncio.wait_for(board.close(), 30)  # not held up by the process that keeps the pipes
        seen["left_open"] = seen["pipes"] & _our_open_files()  # type: ignore[operator]

    if loop_kind == "uvloop":
        loop = pytest.importorskip("uvloop").new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        gc.collect()  # earlier tests' garbage (their unclosed sockets) is theirs: only what this scenario leaves counts
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            try:
                loop.run_until_complete(scenario())
            finally:
                loop.close()  # at once, as a test that stops the portal does
            del loop
            gc.collect()
        assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
        assert seen["left_open"] == set()
        with pytest.raises(ChildProcessError):
            os.waitpid(seen["child"], os.WNOHANG)  # type: ignore[arg-type]  # reaped by the loop already
        deadline = time.monotonic() + 30
        while _running(seen["descendant"]):  # type: ignore[arg-type]  # killed with the child's group
            assert time.monotonic() < deadline, "the process the child started is still running"
            time.sleep(0.05)
    finally:
        if "descendant" in seen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(seen["descendant"], signal.SIGKILL)  # type: ignore[arg-type]


class HeldProbe:
    """A probe that runs until it is cancelled, then spends its clean-up waiting for `release` (as run_child waits
    until its killed child is reaped and its pipes closed), taking further cancellations meanwhile without
    stopping early (as run_child does)."""

    numbers: tuple[int, ...] = (1,)

    def __init__(self) -> None:
        self.calls = 0
        self.started, self.cleaning, self.release = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self.cancelled_again = self.cleaned = False

    async def __call__(self) -> Sequence[MeasureResult]:
        self.calls += 1
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cleaning.set()
            while not self.release.is_set():
                try:
                    await self.release.wait()
                except asyncio.CancelledError:
                    self.cancelled_again = True
            self.cleaned = True
            raise
        return []


@pytest.fixture
async def held() -> AsyncIterator[HeldProbe]:
    probe = HeldProbe()
    yield probe
    probe.release.set()  # a test that failed leaves it no clean-up to wait for at the loop's close


@dataclass
class CountingProbe:
    calls: int = 0
    numbers: tuple[int, ...] = (3,)

    async def __call__(self) -> Sequence[MeasureResult]:
        self.calls += 1
        return [MeasureResult(3, "met", f"call {self.calls}")]


async def test_a_closed_board_starts_no_refresh() -> None:
    """The portal's stop closes the board while its server may still answer: a dashboard request then (which
    calls refresh_soon, or refresh for "Check again now") must not start a refresh whose child nothing would
    end. It gets the last results."""
    probe = CountingProbe()
    board = MeasureBoard([probe])
    last = await board.refresh()
    await board.close()
    board.refresh_soon()
    assert await board.refresh() == last
    assert probe.calls == 1 and board.results[3].summary == "call 1"


async def test_a_refresh_waited_for_when_the_board_closes_returns_the_last_results(held: HeldProbe) -> None:
    """ "Check again now" in flight when the portal stops gets the page with the last results, not an error."""
    probe = held
    board = MeasureBoard([probe])
    waiting = asyncio.ensure_future(board.refresh())
    await probe.started.wait()
    closing = asyncio.ensure_future(board.close())
    await probe.cleaning.wait()
    probe.release.set()
    await closing
    assert await waiting == board.results
    assert probe.cleaned


async def test_a_cancelled_close_still_waits_for_the_refresh_and_is_cancelled_after(held: HeldProbe) -> None:
    """The task that calls close() is cancelled meanwhile: close() still waits for the probe's clean-up, then that
    cancellation goes on (it is not lost)."""
    probe = held
    board = MeasureBoard([probe])
    board.refresh_soon()
    await probe.started.wait()
    closing = asyncio.ensure_future(board.close())
    await probe.cleaning.wait()
    closing.cancel()
    probe.release.set()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert probe.cleaned


async def test_close_right_after_a_probe_timed_out_waits_for_its_clean_up(held: HeldProbe) -> None:
    """The probe's timeout has fired and the probe is still ending its child when close() comes. close() returns
    only once that clean-up is done. (Python 3.11's wait_for, cancelled then, returned at once and left the probe
    running behind close(): a child, pipe or transport left to the loop the portal stops next.)"""
    probe = held
    board = MeasureBoard([probe], timeout=0.05)
    board.refresh_soon()
    await probe.cleaning.wait()  # the timeout fired: the probe is cancelled and cleaning up
    closing = asyncio.ensure_future(board.close())
    await _until(lambda: probe.cancelled_again or closing.done(), "close() to reach the probe or to return")
    assert not closing.done(), "close() returned while the probe was still cleaning up"
    probe.release.set()
    await closing
    assert probe.cleaned
