"""A child process we run for an answer, run to its end or ended with nothing of it left: `av status` for the
measures' probes (measures/antivirus.py), `doveadm` for IMAP's who and kick (imap/dovecot.py).

    done = await run_child([sys.executable, "-m", "mailbastion", "av", "status", "--json"], timeout=60)
    done.returncode, done.stdout, done.stderr

Cancelled (the portal, `mailbastion audit` or the IMAP service stopping) or past `timeout` (TimeoutError), the
child and whatever it started (its own process group) are killed, and the exception goes on only once the child
is reaped, our ends of its pipes are closed and its asyncio transport is finished: once `MeasureBoard.close()`
or `DovecotService.stop()` has returned, no process, pipe or transport of it is left to a loop stopped next or
to the garbage collector. Another cancellation meanwhile does not cut that short (it is raised after). A
descendant still holding the pipes does not hold the ending up: our ends are closed, not read to their end.

The child runs through `loop.subprocess_exec` with a protocol of our own rather than
`asyncio.create_subprocess_exec`: its `connection_lost` says when the transport is finished, which
`Process.wait()` does not (under uvloop it returns at the exit, before the pipes are closed; with asyncio's
loop it never returns while another process holds them open).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from mailbastion.core.tasks import wait_out

__all__ = ["ChildOutput", "run_child"]


@dataclass(frozen=True, slots=True)
class ChildOutput:
    returncode: int
    stdout: bytes
    stderr: bytes


class _Child(asyncio.SubprocessProtocol):
    """The child's output, and when its transport is finished (exited, and every pipe closed)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.finished: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        (self.stdout if fd == 1 else self.stderr).extend(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_result(None)


async def run_child(argv: Sequence[str], timeout: float) -> ChildOutput:
    """Run `argv` with no input until it exits and closes its output; its exit status and output.
    Raises TimeoutError past `timeout` seconds, OSError when it cannot start."""
    loop = asyncio.get_running_loop()
    transport, child = await loop.subprocess_exec(
        lambda: _Child(loop), *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True)  # its own process group: ending it ends what it started
    try:
        await asyncio.wait_for(asyncio.shield(child.finished), timeout)
    except BaseException:  # cancelled, or past the timeout
        await _end(transport, child)
        raise
    transport.close()
    code = transport.get_returncode()
    assert code is not None  # finished: it has exited
    return ChildOutput(code, bytes(child.stdout), bytes(child.stderr))


async def _end(transport: asyncio.SubprocessTransport, child: _Child) -> None:
    """Kill the child's process group, close our ends of its pipes and wait until the transport is finished
    (the child reaped). A cancellation meanwhile is raised once that is done."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(transport.get_pid(), signal.SIGKILL)
    transport.close()
    await wait_out(child.finished)
