"""Anti-virus at DATA: every engine on the message's decoded parts, in parallel, fail closed.

What it reports (weights in config/scores/antivirus.toml):

    AV_CLAMAV_VIRUS, AV_YARA_VIRUS, AV_ICAP_VIRUS, AV_ATTACHMENTS_VIRUS    malware → forced reject (550 5.7.1)
    AV_ATTACHMENT_BLOCKED, AV_OFFICE_MACRO, AV_PDF_JAVASCRIPT,             attachment policy → reject or
    AV_ENCRYPTED_ARCHIVE, AV_ARCHIVE_LIMIT, AV_UNSCANNABLE                 quarantine, by configuration
    AV_MIME_MALFORMED, AV_SUSPICIOUS                                       scored (and optionally forced)
    AV_ENGINE_UNAVAILABLE       a required engine down or too slow → forced 451 4.7.0; optional: scored only
    AV_SIGNATURES_STALE         signatures over their age limit, or of unknown age → hold, soft reject or alarm only
    AV_MEASURE2_NOT_MET         no engine with vendor signatures scanned it (ClamAV "auto" and off, or none
                                configured) → the same policy as stale signatures

An engine the freshness watch reports off (ClamAV with `enabled = "auto"` while clamd does not answer) is
skipped; it is back in the next message after the watch sees it answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mailbastion.core import replies
from mailbastion.core.errors import EngineUnavailable
from mailbastion.core.filetype import ARCHIVE_TYPES
from mailbastion.core.message import SpooledMessage
from mailbastion.core.replies import Reply
from mailbastion.core.stages import Stage
from mailbastion.core.threads import run_blocking
from mailbastion.core.verdict import Action, CheckResult, Edit, Forced, Symbol
from mailbastion.engines.archives import Limits, _LimitsLike
from mailbastion.engines.base import (INLINE_BYTES, Finding, FindingKind, Scanner, ScanResult, ScanSubject,
                                     is_small)
from mailbastion.engines.cache import ScanCache
from mailbastion.engines.freshness import FreshnessWatch
from mailbastion.engines.mime_walk import build_subject
from mailbastion.policy.check import BaseCheck, CheckContext

log = logging.getLogger("mailbastion.policy.antivirus")

__all__ = ["SYMBOLS", "AntivirusCheck", "AntivirusReport", "AvPolicy"]

VIRUS_SYMBOLS = {f"AV_{e}_VIRUS" for e in ("CLAMAV", "YARA", "ICAP", "ATTACHMENTS")}
KIND_SYMBOLS: dict[FindingKind, str] = {
    FindingKind.BLOCKED: "AV_ATTACHMENT_BLOCKED",
    FindingKind.MACRO: "AV_OFFICE_MACRO",
    FindingKind.PDF_JAVASCRIPT: "AV_PDF_JAVASCRIPT",
    FindingKind.ENCRYPTED: "AV_ENCRYPTED_ARCHIVE",
    FindingKind.ARCHIVE_LIMIT: "AV_ARCHIVE_LIMIT",
    FindingKind.UNSCANNABLE: "AV_UNSCANNABLE",
    FindingKind.MALFORMED: "AV_MIME_MALFORMED",
    FindingKind.SUSPICIOUS: "AV_SUSPICIOUS",
}
SYMBOLS = frozenset(VIRUS_SYMBOLS | set(KIND_SYMBOLS.values())
                    | {"AV_ENGINE_UNAVAILABLE", "AV_SIGNATURES_STALE", "AV_MEASURE2_NOT_MET"})
_REPLIES: dict[FindingKind, Reply] = {
    FindingKind.BLOCKED: replies.BLOCKED_ATTACHMENT,
    FindingKind.MACRO: replies.MACRO_ATTACHMENT,
    FindingKind.PDF_JAVASCRIPT: replies.ACTIVE_PDF,
    FindingKind.ENCRYPTED: replies.ENCRYPTED_ATTACHMENT,
    FindingKind.ARCHIVE_LIMIT: replies.ARCHIVE_LIMIT,
    FindingKind.UNSCANNABLE: replies.UNSCANNABLE_ATTACHMENT,
    FindingKind.MALFORMED: replies.MIME_MALFORMED,
    FindingKind.SUSPICIOUS: replies.REJECTED,
}
_ACTIONS = {"reject": Action.REJECT, "quarantine": Action.QUARANTINE, "accept": None}


@dataclass(frozen=True, slots=True)
class AvPolicy:
    """What each kind of finding does: "reject", "quarantine" or "accept" (= scored only)."""

    on_blocked: str = "reject"
    on_macro: str = "quarantine"
    on_pdf_javascript: str = "quarantine"
    on_encrypted: str = "quarantine"
    on_archive_limit: str = "reject"
    on_unscannable: str = "quarantine"
    on_malformed: str = "accept"
    on_suspicious: str = "accept"
    stale_policy: str = "soft_reject"  # hold | soft_reject | alarm_only

    def action_for(self, kind: FindingKind) -> Action | None:
        return _ACTIONS[getattr(self, f"on_{kind.value}")]


@dataclass(frozen=True, slots=True)
class AntivirusReport:
    """Put in the CheckContext for later readers (quarantine, logs): what each engine said."""

    results: tuple[ScanResult, ...]
    failures: tuple[tuple[str, str], ...] = ()  # (engine, reason)
    findings: tuple[Finding, ...] = field(default=())
    skipped: tuple[str, ...] = ()  # auto engines that were off (not asked)

    @property
    def engines(self) -> tuple[str, ...]:
        return tuple(r.engine for r in self.results) + tuple(n for n, _ in self.failures)


class AntivirusCheck(BaseCheck):
    name = "antivirus"
    stage = Stage.DATA
    emits = SYMBOLS
    # An unscanned message must not be accepted; 451 lets the sender retry.
    on_error = Action.SOFT_REJECT
    timeout = 120.0
    priority = 20

    def __init__(
        self,
        scanners: Sequence[Scanner],
        *,
        required: Iterable[str] | None = None,
        policy: AvPolicy | None = None,
        limits: _LimitsLike | None = None,
        max_parts: int = 1000,
        engine_timeout: float = 90.0,
        freshness: FreshnessWatch | None = None,
        cache: ScanCache | None = None,
        max_concurrent: int = 8,
    ) -> None:
        self.scanners = list(scanners)
        self.required = frozenset(required) if required is not None else frozenset(s.name for s in self.scanners)
        self.policy = policy or AvPolicy()
        self.limits: _LimitsLike = limits if limits is not None else Limits()
        self.max_parts = max_parts
        self.engine_timeout = engine_timeout
        # The pipeline's limit; ours fires first and says 4.7.0. Per instance: it follows the configuration.
        self.timeout = engine_timeout + 30.0  # type: ignore[misc]
        self.freshness = freshness
        self.cache = cache
        # Each scan may hold its unpacked archives in memory: a bound on scans is a bound on memory.
        self._scans = asyncio.Semaphore(max_concurrent)

    async def scan(self, message: SpooledMessage | bytes) -> AntivirusReport:
        """Run every engine on the message's decoded parts (`SpooledMessage.parts`, parsed once and shared
        with the other checks); never raises for one engine's failure."""
        if not isinstance(message, SpooledMessage):
            message = SpooledMessage(message)
        raw = message.raw
        results: list[ScanResult] = []
        failures: list[tuple[str, str]] = []
        pending: list[Scanner] = []
        digest = ""
        scanners = self.scanners
        skipped: tuple[str, ...] = ()
        if self.freshness is not None:
            await self.freshness.ensure_checked()
            scanners = [s for s in self.scanners if self.freshness.is_active(s.name)]
            skipped = tuple(s.name for s in self.scanners if s not in scanners)
        if self.cache is not None:
            digest = hashlib.sha256(raw).hexdigest()
            for s in scanners:
                hit = self.cache.get(("message", s.name, getattr(s, "generation", ""), digest))
                if hit is not None:
                    results.append(hit)
                else:
                    pending.append(s)
        else:
            pending = list(scanners)
        if pending:
            async with self._scans:
                if len(raw) <= INLINE_BYTES and not any(p.sniffed_type in ARCHIVE_TYPES for p in message.parts):
                    # A small message without archives: its walk and the engines that can are cheaper here
                    # than in a worker thread (engines.base.INLINE_BYTES); the MIME parse is shared anyway.
                    subject = build_subject(message, self.limits, max_parts=self.max_parts)
                else:
                    subject = await run_blocking(lambda: build_subject(message, self.limits, max_parts=self.max_parts))
                outcomes = await self._run_engines(pending, subject)
                del subject
            for s, out in zip(pending, outcomes, strict=True):
                if isinstance(out, ScanResult):
                    results.append(out)
                    if self.cache is not None:
                        self.cache.put(("message", s.name, getattr(s, "generation", ""), digest), out)
                elif isinstance(out, TimeoutError):
                    failures.append((s.name, f"no answer in {self.engine_timeout:g}s"))
                elif isinstance(out, Exception):
                    if not isinstance(out, EngineUnavailable):
                        log.warning("engine %s failed: %s: %s", s.name, type(out).__name__, out)
                    failures.append((s.name, f"{type(out).__name__}: {out}"[:200]))
                else:
                    raise out  # CancelledError and friends
        if failures and self.freshness is not None and any(n in self.freshness.auto for n, _ in failures):
            self.freshness.recheck_soon()  # an auto engine that fails is probably going away: look now
        findings = tuple(f for r in results for f in r.findings)
        return AntivirusReport(tuple(results), tuple(failures), findings, skipped)

    async def _run_engines(self, pending: Sequence[Scanner], subject: ScanSubject) -> list[object]:
        """Each engine's ScanResult or exception, in `pending` order. Engines that can scan a small subject
        at once (`scan_inline`) do so; the others run concurrently, each within `engine_timeout`."""
        inline = is_small(subject)
        now = [s for s in pending if inline and hasattr(s, "scan_inline")]
        later = [s for s in pending if s not in now]
        running = asyncio.gather(*(asyncio.wait_for(s.scan(subject), self.engine_timeout) for s in later),
                                 return_exceptions=True) if later else None
        results: dict[int, object] = {}
        for s in now:
            try:
                results[id(s)] = s.scan_inline(subject)  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - as gather(return_exceptions=True) would give it
                results[id(s)] = exc
        if running is not None:
            for s, out in zip(later, await running, strict=True):
                results[id(s)] = out
        return [results[id(s)] for s in pending]

    async def __call__(self, ctx: CheckContext) -> CheckResult:
        if ctx.message is None:
            return CheckResult()
        try:
            async with asyncio.timeout(self.engine_timeout + 20.0):
                report = await self.scan(ctx.message)
        except TimeoutError:
            raise EngineUnavailable("anti-virus stage timed out") from None
        except EngineUnavailable:
            raise
        except Exception as exc:  # any failure to scan is "not scanned": 451 4.7.0, never 250
            raise EngineUnavailable(f"anti-virus stage failed: {type(exc).__name__}: {exc}") from exc
        ctx.put(report)
        if self.freshness is not None:
            await self.freshness.recheck_if_stale()
        return self.judge(report)

    def judge(self, report: AntivirusReport) -> CheckResult:
        symbols: list[Symbol] = []
        forced: list[Forced] = []
        for engine, reason in report.failures:
            symbols.append(Symbol("AV_ENGINE_UNAVAILABLE", f"{engine}: {reason}"))
            if engine in self.required:
                forced.append(Forced(Action.SOFT_REJECT, replies.SCAN_UNAVAILABLE, by=self.name))
        for f in report.findings:
            detail = f"{f.engine}:{f}"[:200]
            if f.kind is FindingKind.MALWARE:
                symbols.append(Symbol(f"AV_{f.engine.upper()}_VIRUS", f"{f.name}@{f.where}"[:200]
                                      if f.where else f.name))
                forced.append(Forced(Action.REJECT, replies.VIRUS_FOUND, by=self.name))
                continue
            symbols.append(Symbol(KIND_SYMBOLS[f.kind], detail))
            action = self.policy.action_for(f.kind)
            if action is not None:
                reply = _REPLIES[f.kind] if action is Action.REJECT else replies.OK
                forced.append(Forced(action, reply, by=self.name))
        if self.freshness is not None:
            stale = self.freshness.stale()
            for status in stale:
                symbols.append(Symbol("AV_SIGNATURES_STALE", status.describe()[:200]))
                forced.extend(self._stale_policy(replies.SIGNATURES_STALE))
            if self.freshness.measure2_enforced and not stale and not report.failures:
                measure2 = self.freshness.measure2()
                if not measure2.met:
                    # No vendor-signature engine scanned this message (ClamAV off, without signatures, ...):
                    # YARA and the attachment policy alone do not make it safe; treated as stale signatures.
                    symbols.append(Symbol("AV_MEASURE2_NOT_MET", measure2.describe()[:200]))
                    forced.extend(self._stale_policy(replies.SCAN_UNAVAILABLE))
        # Malware is certain even if another engine is down: reject beats 451 (max by severity).
        strongest = max(forced, key=lambda f: f.action) if forced else None
        edits: tuple[Edit, ...] = ()
        if not report.failures:
            edits = (Edit.prepend("X-Virus-Scanned", "mailbastion (" + ", ".join(report.engines) + ")"),)
        return CheckResult(tuple(dict.fromkeys(symbols)), strongest, edits)

    def _stale_policy(self, reply: Reply) -> list[Forced]:
        if self.policy.stale_policy == "soft_reject":
            return [Forced(Action.SOFT_REJECT, reply, by=self.name)]
        if self.policy.stale_policy == "hold":
            return [Forced(Action.QUARANTINE, replies.OK, by=self.name)]
        return []  # alarm_only: the symbol and the watch's log line are the alarm
