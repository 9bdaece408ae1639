"""What the measures read on the internal host share: a probe over the directory's database, and the stand-in a
gateway (where no directory lives) shows in its place.

    class AupProbe(InternalProbe):             # measures/aup.py, measures/training.py
        numbers = (7,)
        def _check(self) -> MeasureResult: ...   # one result from self.settings and self.directory

    class NoAupDirectory(OnInternalHost):      # NOT_BUILT on a gateway: run the audit on the internal host
        numbers = (7,)
        missing = "directory"                   # "no directory on this host (a gateway): ..."
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailbastion.measures.board import NOT_BUILT, MeasureResult

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings
    from mailbastion.directory.store import Directory

__all__ = ["InternalProbe", "OnInternalHost"]


class InternalProbe:
    """A measure read from the directory's database: `_check` gives its one result and runs in a worker thread
    (the database calls are synchronous). Subclasses set `numbers` and write `_check`."""

    numbers: tuple[int, ...]

    def __init__(self, settings: Settings, directory: Directory) -> None:
        self.settings = settings
        self.directory = directory

    async def __call__(self) -> Sequence[MeasureResult]:
        return [await asyncio.to_thread(self._check)]

    def _check(self) -> MeasureResult:  # pragma: no cover - abstract
        raise NotImplementedError


class OnInternalHost:
    """A measure read on the internal host, where no directory lives (a gateway): not built here, checked by
    the internal host's audit. Subclasses set `numbers` and `missing` (what this host lacks)."""

    numbers: tuple[int, ...]
    missing: str

    async def __call__(self) -> Sequence[MeasureResult]:
        return [MeasureResult(n, NOT_BUILT, f"no {self.missing} on this host (a gateway): run `mailbastion audit` on "
                              "the internal host", fix="run the audit on the internal host") for n in self.numbers]
