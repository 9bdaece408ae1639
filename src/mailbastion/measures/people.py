"""Measure 6, the part the directory knows: no account active past its leave date, no alias pointing at
nobody. The joiner and leaver procedures themselves (directory sync, the leaver job) are not built here:
the measure is PARTIAL at best until they are."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailbastion.measures.board import NOT_BUILT, NOT_MET, PARTIAL, MeasureResult

if TYPE_CHECKING:
    from mailbastion.directory.portal import PortalStore

__all__ = ["DirectoryProbe", "NoDirectory"]


class DirectoryProbe:
    numbers: tuple[int, ...] = (6,)

    def __init__(self, store: PortalStore) -> None:
        self.store = store

    async def __call__(self) -> Sequence[MeasureResult]:
        overdue = await asyncio.to_thread(self.store.overdue_leavers)
        dead = await asyncio.to_thread(self.store.directory.dead_aliases)
        pending = await asyncio.to_thread(self.store.count_accounts, state="pending")
        details = (*(f"past its leave date but still active: {a}" for a in overdue[:20]),
                   *(f"alias {d.alias} -> {d.target}: {d.why}" for d in dead[:20]),
                   f"{pending} account(s) pending approval")
        if overdue or dead:
            fix = (f"disable {', '.join(overdue[:5])} (`mailbastion account state ADDRESS disabled`)" if overdue
                   else "remove or repoint the aliases named (`mailbastion account alias`)")
            return [MeasureResult(6, NOT_MET, f"{len(overdue)} leaver(s) still active, {len(dead)} dead alias(es)",
                                  details, "mailbastion account list", fix=fix)]
        return [MeasureResult(6, PARTIAL, "no account active past its leave date, every alias reaches someone; the "
                              "joiner and leaver procedures and the directory sync are not built", details,
                              "mailbastion account list", fix="not built: joiner and leaver procedures (issue 13)")]


class NoDirectory:
    """Measure 6 where no directory lives (a gateway): checked on the internal host."""

    numbers: tuple[int, ...] = (6,)

    async def __call__(self) -> Sequence[MeasureResult]:
        return [MeasureResult(6, NOT_BUILT, "no directory on this host (a gateway): run `mailbastion audit` on the "
                              "internal host", fix="run the audit on the internal host")]
