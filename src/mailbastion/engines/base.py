"""The one shape of every anti-virus engine, and what it is given and what it returns.

An engine sees a `ScanSubject`: the raw message and every decoded part (MIME leaves after
base64/quoted-printable/uuencode, attached messages, archive members). It answers a `ScanResult`
of `Finding`s, or raises `EngineUnavailable` when it is down, too slow or answers nonsense: the
check then fails closed (451), it never treats an engine failure as "clean".

Engines with vendor-maintained signatures (`vendor_signatures = True`: ClamAV, an ICAP product) are
the only ones that count towards measure 2 (an engine unlike the workstations'); our YARA rules and
the attachment policy are defence in depth. They are given each distinct decoded part once
(`distinct_blobs`), and the raw message too only when the MIME walk found the structure broken or
ambiguous (a small share of mail: where parser differentials live, clamd's own parser is a second
opinion) or the site asks for it (`antivirus.clamav.scan_whole_message`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol, runtime_checkable

from mailbastion.core.errors import EngineUnavailable

__all__ = [
    "INLINE_BYTES",
    "EngineInfo",
    "EngineStatus",
    "EngineUnavailable",
    "Finding",
    "FindingKind",
    "Part",
    "ScanResult",
    "ScanSubject",
    "Scanner",
    "distinct_blobs",
    "is_small",
]

# Work on a message this small (raw plus decoded parts) is cheaper done at once on the event loop than
# handed to a worker thread and back (a 5 KB message: tens of microseconds of scanning against the
# hand-off's submit, wake-ups and future callbacks). Bigger messages, and every archive, go to a thread.
INLINE_BYTES = 64 * 1024


class FindingKind(StrEnum):
    MALWARE = "malware"  # a signature or rule for malicious content matched
    BLOCKED = "blocked"  # a file type our policy refuses (executable, script, shortcut, disk image)
    MACRO = "macro"  # an Office document with macros
    PDF_JAVASCRIPT = "pdf_javascript"
    ENCRYPTED = "encrypted"  # an archive or document we cannot open, so cannot scan
    ARCHIVE_LIMIT = "archive_limit"  # an archive bomb: size, ratio, count or depth limit reached
    UNSCANNABLE = "unscannable"  # a container format we cannot read
    MALFORMED = "malformed"  # ambiguous or broken MIME structure
    SUSPICIOUS = "suspicious"  # a heuristic (disguised name, RTL override) that scores, not refuses


@dataclass(frozen=True, slots=True)
class Finding:
    engine: str  # "clamav"
    kind: FindingKind
    name: str  # signature or rule name: "Eicar-Test-Signature", "MB_Exe_Disguised_As_Document"
    where: str = ""  # "part 2 invoice.zip/setup.exe"

    def __str__(self) -> str:
        return f"{self.name}@{self.where}" if self.where else self.name


@dataclass(frozen=True, slots=True)
class Part:
    """One decoded piece of the message: a MIME leaf, an attached message, or an archive member."""

    where: str  # a path a human can follow: "2/invoice.zip/a/setup.exe"
    data: bytes
    filename: str = ""  # the name the sender gave (may be empty, may lie)
    declared_type: str = ""  # the Content-Type the sender gave
    depth: int = 0  # 0 = a MIME part, n = inside n archives
    is_body: bool = False  # an inline text body rather than an attachment
    kind: str = ""  # the type by content (core.filetype.detect), when the walk already knows it


@dataclass(frozen=True, slots=True)
class ScanSubject:
    raw: bytes
    parts: tuple[Part, ...] = ()
    digest: str = ""  # sha256 of raw: the cache key
    notes: tuple[Finding, ...] = ()  # what unpacking itself found (limits hit, encryption, malformed MIME)
    # False when the MIME walk found broken or ambiguous structure, or stopped early: where parsers disagree,
    # engines with a MIME parser of their own (clamd, ICAP products) also get the raw message, a second opinion.
    well_formed: bool = True


@dataclass(frozen=True, slots=True)
class ScanResult:
    engine: str
    findings: tuple[Finding, ...] = ()
    cached: bool = False

    @property
    def is_clean(self) -> bool:
        return not self.findings

    @property
    def malware(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.kind is FindingKind.MALWARE)


@dataclass(frozen=True, slots=True)
class EngineInfo:
    name: str  # "clamav"
    vendor: str  # "clamav" (Cisco Talos), "virustotal/yara", "mailbastion"
    version: str  # engine version: "1.4.6"
    signature_version: str = ""  # "27000"
    signature_date: datetime | None = None  # aware UTC; None when the engine has no signature date
    extra: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Scanner(Protocol):
    """One adapter per product. `scan` raises EngineUnavailable when the engine cannot answer."""

    name: str  # the configured engine name: "clamav", "yara", "attachments", "icap"
    vendor: str  # compliance counts distinct vendors (measure 2)
    vendor_signatures: bool  # signatures maintained by the vendor: only these count towards measure 2

    async def scan(self, subject: ScanSubject) -> ScanResult: ...

    async def info(self) -> EngineInfo: ...


def is_small(subject: ScanSubject) -> bool:
    """Whether an engine may scan `subject` on the event loop (see INLINE_BYTES)."""
    total = len(subject.raw)
    for part in subject.parts:
        total += len(part.data)
        if total > INLINE_BYTES:
            return False
    return total <= INLINE_BYTES


def distinct_blobs(subject: ScanSubject, *, whole_message: bool = False) -> list[tuple[bytes, str]]:
    """(data, where) of each distinct decoded part, once; the raw message first when `whole_message` is
    asked for, when the MIME was not well formed, or when there are no parts at all."""
    seen: dict[bytes, tuple[bytes, str]] = {}
    if whole_message or not subject.well_formed or not subject.parts:
        seen[hashlib.sha256(subject.raw).digest()] = (subject.raw, "message")
    for part in subject.parts:
        if part.data:
            seen.setdefault(hashlib.sha256(part.data).digest(), (part.data, part.where))
    return list(seen.values())


def unique(findings: Sequence[Finding]) -> tuple[Finding, ...]:
    seen: dict[tuple[str, str, str], Finding] = {}
    for f in findings:
        seen.setdefault((f.kind, f.name, f.where), f)
    return tuple(seen.values())


@dataclass(frozen=True, slots=True)
class EngineStatus:
    name: str
    vendor: str
    info: EngineInfo | None
    error: str = ""
    max_age: timedelta | None = None
    checked_at: datetime | None = None
    auto: bool = False  # used only while it answers (ClamAV enabled = "auto")

    @property
    def age(self) -> timedelta | None:
        if self.info is None or self.info.signature_date is None or self.checked_at is None:
            return None
        return self.checked_at - self.info.signature_date

    @property
    def is_available(self) -> bool:
        return self.info is not None

    @property
    def is_stale(self) -> bool:
        """Older than the limit, or of unknown age while there is a limit. An unreachable engine is not
        stale: it is reported as such, and scanning with it fails closed (or, if auto, it is off)."""
        if self.max_age is None or self.info is None:
            return False
        age = self.age
        return age is None or age > self.max_age

    @property
    def age_text(self) -> str:
        """"3:12:00 old", "unknown: local database only", "unknown"."""
        if self.info is None:
            return "unknown"
        age = self.age
        if age is not None:
            source = self.info.extra.get("signature_date_source")
            return f"{age} old" + (f" ({source})" if source else "")
        why = self.info.extra.get("database")
        return f"unknown: {why}" if why else "unknown"

    def describe(self) -> str:
        if self.error:
            if self.auto:
                return f"{self.name}: off (used once it answers with signatures): {self.error}"
            return f"{self.name}: unreachable: {self.error}"
        limit = f" > {self.max_age}" if self.max_age is not None and self.is_stale and self.age is not None else ""
        return f"{self.name}: signature age {self.age_text}{limit}"
