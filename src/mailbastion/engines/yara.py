"""YARA rules (yara-python): rule folders compiled once, recompiled when a file changes.

Our own rule set (`engines/rules/*.yar`) is loaded first, then each configured folder; every file
is its own namespace. A rule's `meta: kind = "malware" | "suspicious" | "blocked"` says what a match
is (default malware). A folder that fails to compile keeps the last good rules running and logs
the error; at first load, a broken rule file is a ConfigError (refuse to start).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

from mailbastion.core.errors import ConfigError, EngineUnavailable
from mailbastion.core.threads import run_blocking
from mailbastion.engines.base import EngineInfo, Finding, FindingKind, ScanResult, ScanSubject, is_small, unique
from mailbastion.engines.cache import ScanCache

log = logging.getLogger("mailbastion.engines.yara")

__all__ = ["SHIPPED_RULES", "YaraScanner", "compile_rules"]

SHIPPED_RULES = Path(__file__).parent / "rules"
_KINDS = {"malware": FindingKind.MALWARE, "suspicious": FindingKind.SUSPICIOUS, "blocked": FindingKind.BLOCKED}


def _rule_files(dirs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        if d.is_file():
            files.append(d)
        elif d.is_dir():
            files.extend(sorted(p for p in d.rglob("*") if p.suffix in (".yar", ".yara") and p.is_file()))
    return files


def compile_rules(dirs: list[Path]) -> tuple[object, str, float]:
    """Compile every rule file; return (rules, fingerprint, newest mtime). Raises yara.Error."""
    import yara  # type: ignore[import-not-found]

    files = _rule_files(dirs)
    sources: dict[str, str] = {}
    h = hashlib.sha256()
    newest = 0.0
    for i, f in enumerate(files):
        text = f.read_text(encoding="utf-8")
        sources[f"{i:03d}_{f.stem}"] = text
        h.update(f.name.encode() + b"\0" + text.encode())
        newest = max(newest, f.stat().st_mtime)
    rules = yara.compile(sources=sources) if sources else None
    return rules, h.hexdigest()[:16], newest


# The last compiled set per rule folders, with the files' stamp it was compiled from. A scanner built
# again for the same unchanged files (a SIGHUP rebuilds the features; each acceptor process builds its
# own after the parent did) reuses it: forked acceptors then share the parent's compiled rules.
_COMPILED: dict[tuple[str, ...], tuple[tuple[tuple[str, float, int], ...], tuple[object, str, float]]] = {}


def _compiled(dirs: list[Path], stamp: tuple[tuple[str, float, int], ...]) -> tuple[object, str, float]:
    key = tuple(str(d) for d in dirs)
    known = _COMPILED.get(key)
    if known is not None and known[0] == stamp:
        return known[1]
    result = compile_rules(dirs)
    _COMPILED[key] = (stamp, result)
    return result


class YaraScanner:
    name = "yara"
    vendor = "yara"
    vendor_signatures = False  # our own rules and the site's: defence in depth, not measure 2

    def __init__(
        self,
        rule_dirs: list[Path | str] = (),  # type: ignore[assignment]
        *,
        include_shipped: bool = True,
        timeout: float = 30.0,
        reload_interval: float = 30.0,
        cache: ScanCache | None = None,
    ) -> None:
        self.dirs = ([SHIPPED_RULES] if include_shipped else []) + [Path(d) for d in rule_dirs]
        self.timeout = timeout
        self.reload_interval = reload_interval
        self.cache = cache
        self._stamp = self._files_stamp()
        try:
            self._rules, self.fingerprint, self._newest = _compiled(self.dirs, self._stamp)
        except Exception as exc:  # noqa: BLE001 - yara.Error / SyntaxError / OSError: refuse to start
            raise ConfigError(f"YARA rules do not compile: {exc}", key="antivirus.yara.rule_dirs") from None
        self.loaded_at = datetime.now(UTC)
        self._task: asyncio.Task[None] | None = None

    def _files_stamp(self) -> tuple[tuple[str, float, int], ...]:
        out = []
        for f in _rule_files(self.dirs):
            try:
                st = f.stat()
            except OSError:
                continue
            out.append((str(f), st.st_mtime, st.st_size))
        return tuple(out)

    def reload_if_changed(self) -> bool:
        """Recompile when a rule file was added, removed or changed. Keeps the old rules on error."""
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return False
        try:
            rules, fingerprint, newest = _compiled(self.dirs, stamp)
        except Exception as exc:  # noqa: BLE001 - a bad edit must not stop scanning with the good rules
            log.error("yara: rules changed but do not compile, keeping the previous set: %s", exc)
            self._stamp = stamp
            return False
        self._rules, self.fingerprint, self._newest, self._stamp = rules, fingerprint, newest, stamp
        self.loaded_at = datetime.now(UTC)
        log.info("yara: rules reloaded (%s)", fingerprint)
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval)
            await asyncio.to_thread(self.reload_if_changed)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="yara-reload")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    @property
    def generation(self) -> str:
        return self.fingerprint

    @property
    def rule_count(self) -> int:
        return sum(1 for _ in self._rules) if self._rules is not None else 0  # type: ignore[attr-defined,misc]

    async def info(self) -> EngineInfo:
        import yara

        date = datetime.fromtimestamp(self._newest, tz=UTC) if self._newest else None
        return EngineInfo(self.name, self.vendor, yara.__version__, self.fingerprint, date,
                          {"rules": str(self.rule_count), "loaded": self.loaded_at.isoformat(timespec="seconds")})

    def _match(self, data: bytes, where: str) -> list[Finding]:
        rules = self._rules
        if rules is None:
            return []
        key = ("yara", self.fingerprint, hashlib.sha256(data).digest())
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return [Finding(self.name, k, n, where) for k, n in hit]
        try:
            matches = rules.match(data=data, timeout=max(1, int(self.timeout)))  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - yara.TimeoutError / yara.Error: fail closed
            raise EngineUnavailable(f"yara: {type(exc).__name__}: {exc}") from None
        found = [(_KINDS.get(str(m.meta.get("kind", "malware")), FindingKind.MALWARE), m.rule) for m in matches]
        if self.cache is not None:
            self.cache.put(key, found)
        return [Finding(self.name, k, n, where) for k, n in found]

    def _scan_all(self, subject: ScanSubject) -> tuple[Finding, ...]:
        deadline = time.monotonic() + self.timeout
        out = self._match(subject.raw, "message")
        for part in subject.parts:
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"yara: no answer in {self.timeout:g}s")
            out.extend(self._match(part.data, part.where))
        return unique(out)

    def scan_inline(self, subject: ScanSubject) -> ScanResult:
        """`scan` without the worker thread, for a small subject (engines.base.is_small)."""
        return ScanResult(self.name, self._scan_all(subject))

    async def scan(self, subject: ScanSubject) -> ScanResult:
        if is_small(subject):
            return self.scan_inline(subject)
        return ScanResult(self.name, await run_blocking(self._scan_all, subject))
