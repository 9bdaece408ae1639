"""The durable queue: the writer (the only way in), records, retry schedule, queue manager, admin operations.

    spool = Spool(settings.path(settings.spool.dir), min_free_bytes=settings.spool.min_free_bytes)
    manager = QueueManager.from_settings(settings, spool, agent)
    await manager.start(); ...; await manager.stop()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailbastion.spool.control import QueueControl, QueueControlError, QueueEntry, QueueEntryBusy, UnknownQueueId
from mailbastion.spool.layout import QueueState, SpoolLayout
from mailbastion.spool.record import QueueRecord, RecipientState, RecipientStatus, RecordError, VerdictSummary
from mailbastion.spool.schedule import RetrySchedule
from mailbastion.spool.writer import Spool

if TYPE_CHECKING:
    from mailbastion.spool.manager import QueueManager


def __getattr__(name: str) -> Any:
    # The manager imports the delivery agents, which import records from here: load it on first use.
    if name == "QueueManager":
        from mailbastion.spool.manager import QueueManager

        return QueueManager
    raise AttributeError(name)


__all__ = [
    "QueueControl", "QueueControlError", "QueueEntry", "QueueEntryBusy", "QueueManager", "QueueRecord",
    "QueueState", "RecipientState", "RecipientStatus", "RecordError", "RetrySchedule", "Spool", "SpoolLayout",
    "UnknownQueueId", "VerdictSummary",
]
