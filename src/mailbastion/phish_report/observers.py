"""The seam for parts that recognise a reported message before it is treated as a real phish.

    class ReportObserver(Protocol):
        name: str
        def observe(self, message: bytes, reporter: str) -> Handled | None: ...

Observers are consulted first, in order, for each reported message. One that answers `Handled` takes the
message: the reporter is acknowledged (with the observer's note), and the message is neither learned as
spam nor swept from other mailboxes. The phishing simulations of `mailbastion.training` use this: a user
who reports a simulated phish has done the right thing, and the other targets' copies must stay for the
exercise. The composition root (apps/phish_report.py `report_observers`) builds the list; this package
imports no observer.

An observer that raises is logged and passed over: the report then goes on as a real one, because a real
phish must never escape the loop when, say, the training database cannot be read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Handled", "ReportObserver", "SimulationObserver"]

SIMULATION_NOTE = ("This message was part of a phishing exercise of your organisation. Well spotted, and thank "
                   "you for reporting it: that is exactly what to do with a real one.")


@dataclass(frozen=True, slots=True)
class Handled:
    by: str  # the observer's name ("training")
    note: str  # plain text for the acknowledgement and the portal's result page


class ReportObserver(Protocol):
    name: str

    def observe(self, message: bytes, reporter: str) -> Handled | None:
        """`Handled` when this observer takes the reported `message` (raw bytes, unwrapped from the report),
        None when it is not one of its own. Blocking is fine: it runs in a worker thread."""
        ...


class SimulationObserver:
    """A `ReportObserver` over two callables, so that the phishing simulations can be wired without this
    package importing them: `recognise(raw) -> hit | None` and `record_reported(hit, reporter)`
    (`mailbastion.training.simulation`)."""

    def __init__(self, recognise: Callable[[bytes], Any], record_reported: Callable[[Any, str], object], *,
                 name: str = "training", note: str = SIMULATION_NOTE) -> None:
        self.name = name
        self.note = note
        self._recognise = recognise
        self._record = record_reported

    def observe(self, message: bytes, reporter: str) -> Handled | None:
        hit = self._recognise(message)
        if hit is None:
            return None
        self._record(hit, reporter)
        return Handled(self.name, self.note)
