"""What checks report and what the pipeline decides.

A check reports what it saw as named `Symbol`s (no numbers). The scorer weighs them with
`scores.toml` and picks an `Action` by threshold; a check may instead `Forced` an outcome, which
beats the score and records who forced it (rspamd passthrough).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from mailbastion.core.replies import Reply


class Action(IntEnum):
    """Ordered by severity, so max() picks the strongest."""

    ACCEPT = 0
    ADD_HEADER = 1
    JUNK = 2  # deliver, into the recipient's Junk folder
    QUARANTINE = 3  # accept (250) but hold for the administrator
    SOFT_REJECT = 4  # 4xx
    REJECT = 5  # 5xx

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")


class Folder(StrEnum):
    """Where the MDA files a delivered copy: the one form of the Junk decision, from the verdict
    through the queue record and the LMTP link to the Maildir folder. The MDA maps JUNK to the
    configured folder name (`mailbox.junk_folder`)."""

    INBOX = "INBOX"
    JUNK = "Junk"


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str  # "R_SPF_FAIL"
    detail: str = ""  # "example.org: -all"

    def __str__(self) -> str:
        return f"{self.name}({self.detail})" if self.detail else self.name


@dataclass(frozen=True, slots=True)
class Forced:
    action: Action
    reply: Reply
    by: str  # the check that forced it


@dataclass(frozen=True, slots=True)
class Edit:
    """A change a check asks for on the accepted message, applied once after the verdict.

    kind "prepend":      add header `name: value` at the top
    kind "remove":       remove every header `name` whose value contains `value` ("" = all of them)
    kind "subject_tag":  prefix the Subject with `value` unless it already has it
    """

    kind: str
    name: str = ""
    value: str = ""

    @staticmethod
    def prepend(name: str, value: str) -> Edit:
        return Edit("prepend", name, value)

    @staticmethod
    def remove(name: str, containing: str = "") -> Edit:
        return Edit("remove", name, containing)

    @staticmethod
    def subject_tag(tag: str) -> Edit:
        return Edit("subject_tag", "Subject", tag)


@dataclass(frozen=True, slots=True)
class CheckResult:
    symbols: tuple[Symbol, ...] = ()
    forced: Forced | None = None
    edits: tuple[Edit, ...] = ()

    @staticmethod
    def of(*names: str | Symbol) -> CheckResult:
        return CheckResult(symbols=tuple(n if isinstance(n, Symbol) else Symbol(n) for n in names))


EMPTY = CheckResult()


@dataclass(frozen=True, slots=True)
class ScoredSymbol:
    name: str
    detail: str
    score: float
    group: str

    def __str__(self) -> str:
        d = f"({self.detail})" if self.detail else ""
        return f"{self.name}{d}={self.score:g}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The only thing that turns into a reply, a Junk delivery or a quarantine."""

    action: Action
    score: float
    symbols: tuple[ScoredSymbol, ...]
    forced: Forced | None = None
    reply: Reply | None = None  # the reply to give when action is a reject
    edits: tuple[Edit, ...] = ()

    @property
    def folder(self) -> Folder:
        return Folder.JUNK if self.action == Action.JUNK else Folder.INBOX

    @property
    def symbol_names(self) -> frozenset[str]:
        return frozenset(s.name for s in self.symbols)

    def describe(self) -> str:
        forced = f" forced_by={self.forced.by}" if self.forced else ""
        syms = ",".join(str(s) for s in self.symbols)
        return f"action={self.action.name.lower()} score={self.score:.2f}{forced} symbols={syms}"
