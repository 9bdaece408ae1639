"""The durable queue: the writer (the only way in), records, retry schedule, queue manager, admin operations.

    spool = Spool(settings.path(settings.spool.dir), min_free_bytes=settings.spool.min_free_bytes)
    manager = QueueManager.from_settings(settings, spool, agent, bounce=build_report)
    await manager.start(); ...; await manager.stop()

The queue knows delivery agents only as the `DeliveryAgent` port of core/ports.py, and DSNs only as the
`bounce` callable it is given: it imports nothing of delivery/ (apps/ wires the two).
"""

from __future__ import annotations

from mailbastion.spool.control import QueueControl, QueueControlError, QueueEntry, QueueEntryBusy, UnknownQueueId
from mailbastion.spool.layout import QueueState, SpoolLayout
from mailbastion.spool.manager import Bounce, Notification, QueueManager
from mailbastion.spool.record import QueueRecord, RecipientState, RecipientStatus, RecordError, VerdictSummary
from mailbastion.spool.schedule import RetrySchedule
from mailbastion.spool.writer import Spool

__all__ = [
    "Bounce", "Notification", "QueueControl", "QueueControlError", "QueueEntry", "QueueEntryBusy", "QueueManager",
    "QueueRecord", "QueueState", "RecipientState", "RecipientStatus", "RecordError", "RetrySchedule", "Spool",
    "SpoolLayout", "UnknownQueueId", "VerdictSummary",
]
