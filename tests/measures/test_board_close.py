"""Stopping the measures board (the portal's stop) ends the `mailbastion av status` child of a running refresh."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
