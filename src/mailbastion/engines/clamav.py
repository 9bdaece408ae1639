"""ClamAV through its daemon: INSTREAM over a unix socket or TCP, a bounded pool of sessions.

Each pooled connection is a clamd `IDSESSION`, so one connection carries many scans (clamd closes
idle sessions after its IdleTimeout; a closed session is replaced and the scan retried once). Each
distinct decoded part is streamed once, in chunks (the raw message too with `scan_whole_message`, or
when the MIME was not well formed); a reply of `FOUND` is a finding, `OK` is clean,
anything else (ERROR, a timeout, a refused connection) raises EngineUnavailable.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import struct
import time
from datetime import UTC, datetime
from pathlib import Path

from mailbastion.core.errors import EngineUnavailable
from mailbastion.engines.base import EngineInfo, Finding, FindingKind, ScanResult, ScanSubject, distinct_blobs, unique
from mailbastion.engines.cache import ScanCache
from mailbastion.engines.freshness import LOCAL_DATABASE

log = logging.getLogger("mailbastion.engines.clamav")

__all__ = ["DATABASE_SUFFIXES", "ClamdScanner", "newest_database_file", "parse_version"]

# What clamd loads from its DatabaseDirectory (libclamav's CLI_DBEXT): signed and unsigned containers, and the
# plain signature files a site or a test writes itself.
DATABASE_SUFFIXES = frozenset({
    ".cvd", ".cld", ".cud", ".db", ".hdb", ".hdu", ".hsb", ".hsu", ".mdb", ".mdu", ".msb", ".msu", ".ndb",
    ".ndu", ".ldb", ".ldu", ".sdb", ".zmd", ".rmd", ".idb", ".fp", ".sfp", ".gdb", ".pdb", ".wdb", ".cbc",
    ".ftm", ".cfg", ".cdb", ".cat", ".crb", ".ign", ".ign2", ".imp", ".yar", ".yara", ".pwdb",
})

_REPLY = re.compile(rb"^(?:\d+: )?(?P<where>[^:]*): (?P<body>.*?)(?: (?P<status>FOUND|ERROR))?$", re.DOTALL)


def parse_version(text: str) -> tuple[str, str, datetime | None]:
    """'ClamAV 1.4.6/27000/Sat Nov 28 02:09:18 2026' → ("1.4.6", "27000", aware datetime).

    clamd prints the database build time with ctime() in its own local time zone, which is this
    host's (clamd runs beside the gateway or on a host in the same zone).
    """
    text = text.strip().strip("\0")
    head, *rest = text.split("/", 2)
    version = head.removeprefix("ClamAV ").strip()
    if len(rest) < 2:
        return version, rest[0] if rest else "", None
    try:
        local = time.strptime(rest[1].strip(), "%a %b %d %H:%M:%S %Y")
        stamp = datetime.fromtimestamp(time.mktime(local), tz=UTC)
    except (ValueError, OverflowError):
        stamp = None
    return version, rest[0], stamp


class _Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.last_id = 0  # IDSESSION numbers each command's reply "<n>: ..."; a mismatch means a stale reply

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - closing a broken socket must not raise
            pass


class ClamdScanner:
    """A Scanner backed by clamd. Safe to share between tasks; at most `pool_size` scans at once."""

    name = "clamav"
    vendor = "clamav"
    vendor_signatures = True  # Cisco Talos' signature database, kept fresh by freshclam

    def __init__(
        self,
        *,
        socket_path: str | None = None,
        address: str | None = None,
        connect_timeout: float = 2.0,
        scan_timeout: float = 60.0,
        pool_size: int = 8,
        chunk_size: int = 64 * 1024,
        stream_max_length: int = 25 * 1024 * 1024,
        cache: ScanCache | None = None,
        scan_whole_message: bool = False,
        undated_signatures: str = "stale",
        database_dir: str | None = None,
    ) -> None:
        if not socket_path and not address:
            raise ValueError("ClamdScanner needs socket_path or address")
        self.socket_path = None if address else socket_path
        self.host, self.port = _split_address(address) if address else ("", 0)
        self.connect_timeout = connect_timeout
        self.scan_timeout = scan_timeout
        self.chunk_size = chunk_size
        self.stream_max_length = stream_max_length
        self.cache = cache
        self.scan_whole_message = scan_whole_message
        self.undated_signatures = undated_signatures  # "stale" | "newest_file"
        self.database_dir = database_dir
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[_Session] = []
        self._generation = ""  # the signature version: a cache entry from older signatures is not reused

    @property
    def generation(self) -> str:
        return self._generation

    @property
    def endpoint(self) -> str:
        return self.socket_path or f"{self.host}:{self.port}"

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            if self.socket_path:
                coro = asyncio.open_unix_connection(self.socket_path)
            else:
                coro = asyncio.open_connection(self.host, self.port)
            return await asyncio.wait_for(coro, self.connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise EngineUnavailable(f"clamd at {self.endpoint} unreachable: {str(exc) or type(exc).__name__}") from None

    async def _session(self) -> _Session:
        if self._idle:
            return self._idle.pop()
        reader, writer = await self._open()
        writer.write(b"zIDSESSION\0")
        return _Session(reader, writer)

    async def command(self, cmd: str) -> str:
        """A one-shot command on its own connection (PING, VERSION, RELOAD)."""
        reader, writer = await self._open()
        try:
            writer.write(b"z" + cmd.encode() + b"\0")
            await writer.drain()
            data = await asyncio.wait_for(reader.readuntil(b"\0"), self.connect_timeout + 3)
            return data.rstrip(b"\0").decode("utf-8", "replace")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise EngineUnavailable(f"clamd {cmd} failed: {str(exc) or type(exc).__name__}") from None
        finally:
            writer.close()

    async def ping(self) -> bool:
        return (await self.command("PING")) == "PONG"

    async def info(self) -> EngineInfo:
        """Version, signature version and build date from clamd's VERSION.

        A clamd loaded with local databases only (.ndb, .hdb, ... and no daily/main .cvd/.cld) prints no
        signature version nor date: the info says so (`extra["database"]`), and the date stays unknown
        unless `undated_signatures = "newest_file"`, which takes the newest database file's modification
        time in `database_dir` (that folder must be readable here: clamd on this host)."""
        version, sig_version, sig_date = parse_version(await self.command("VERSION"))
        extra = {"endpoint": self.endpoint}
        if sig_date is None and not sig_version:
            extra["database"] = LOCAL_DATABASE
            if self.undated_signatures == "newest_file" and self.database_dir:
                newest = await asyncio.to_thread(newest_database_file, Path(self.database_dir))
                if newest is not None:
                    sig_date = newest[1]
                    sig_version = f"local:{int(newest[1].timestamp())}"  # changes with the files: fresh cache keys
                    extra["signature_date_source"] = f"mtime of {newest[0]}"
                else:
                    extra["database"] = f"{LOCAL_DATABASE}, no database file readable in {self.database_dir}"
        self._generation = sig_version
        return EngineInfo(self.name, self.vendor, version, sig_version, sig_date, extra)

    async def _instream_once(self, session: _Session, data: bytes) -> bytes:
        w = session.writer
        session.last_id += 1
        # Blobs over clamd's StreamMaxLength make clamd close mid-stream (a broken pipe, so EngineUnavailable):
        # keep antivirus.clamav.stream_max_length at or below it, and larger blobs are reported UNSCANNABLE instead.
        w.write(b"zINSTREAM\0")
        view = memoryview(data)
        for start in range(0, len(view), self.chunk_size):
            chunk = view[start : start + self.chunk_size]
            w.write(struct.pack(">I", len(chunk)))
            w.write(chunk)
            await w.drain()
        w.write(struct.pack(">I", 0))
        await w.drain()
        reply = (await session.reader.readuntil(b"\0")).rstrip(b"\0")
        expected = f"{session.last_id}: ".encode()
        if not reply.startswith(expected):
            # Not the answer to this command: never trust a misaligned session.
            raise EngineUnavailable(f"clamd at {self.endpoint}: reply out of step: {reply[:80]!r}")
        return reply

    async def scan_bytes(self, data: bytes) -> str | None:
        """Scan one blob; return the signature name when found, None when clean."""
        if len(data) > self.stream_max_length:
            return "ClamAV.Limits.StreamMaxLength"
        async with self._slots:
            for attempt in (1, 2):
                reused = bool(self._idle)
                session = await self._session()
                try:
                    reply = await asyncio.wait_for(self._instream_once(session, data), self.scan_timeout)
                except TimeoutError:  # before OSError: TimeoutError is one
                    session.close()
                    raise EngineUnavailable(f"clamd at {self.endpoint}: no answer in {self.scan_timeout:g}s") from None
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                    session.close()
                    if reused and attempt == 1:
                        while self._idle:  # clamd restarted or timed the sessions out: all are stale
                            self._idle.pop().close()
                        continue  # clamd closed an idle session: retry once on a fresh one
                    raise EngineUnavailable(f"clamd at {self.endpoint}: {str(exc) or type(exc).__name__}") from None
                except EngineUnavailable:
                    session.close()
                    raise
                except BaseException:
                    session.close()
                    raise
                m = _REPLY.match(reply)
                if b"size limit exceeded" in reply:
                    session.close()  # clamd closes the connection after this reply
                    return "ClamAV.Limits.StreamMaxLength"  # clamd's StreamMaxLength is below ours: unscannable
                if m is None or m.group("status") == b"ERROR":
                    session.close()
                    text = reply.decode("utf-8", "replace")
                    raise EngineUnavailable(f"clamd at {self.endpoint} answered: {text[:200]}")
                self._idle.append(session)
                if m.group("status") == b"FOUND":
                    return m.group("body").decode("utf-8", "replace").removesuffix(".UNOFFICIAL")
                return None
        raise EngineUnavailable(f"clamd at {self.endpoint}: session lost")  # pragma: no cover

    async def _scan_cached(self, data: bytes) -> str | None:
        if self.cache is None:
            return await self.scan_bytes(data)
        key = (self.name, self._generation, hashlib.sha256(data).hexdigest())
        hit = self.cache.get(key)
        if hit is not None:
            return hit or None
        found = await self.scan_bytes(data)
        self.cache.put(key, found or "")
        return found

    async def scan(self, subject: ScanSubject) -> ScanResult:
        """Each distinct decoded part once; the raw message too only when asked (`scan_whole_message`) or
        when the MIME was not well formed (clamd's own MIME parser is then a second opinion)."""
        blobs = distinct_blobs(subject, whole_message=self.scan_whole_message)
        names = await asyncio.gather(*(self._scan_cached(data) for data, _ in blobs))
        findings = [Finding(self.name, _kind(n), n, where) for (_, where), n in zip(blobs, names, strict=True) if n]
        return ScanResult(self.name, unique(findings))

    async def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def newest_database_file(folder: Path) -> tuple[str, datetime] | None:
    """The newest ClamAV database file in `folder` (name, modification time), or None when none is readable."""
    newest: tuple[str, datetime] | None = None
    try:
        entries = list(folder.iterdir())
    except OSError:
        return None
    for entry in entries:
        if entry.suffix.lower() not in DATABASE_SUFFIXES:
            continue
        try:
            stamp = datetime.fromtimestamp(entry.stat().st_mtime, tz=UTC)
        except OSError:
            continue
        if newest is None or stamp > newest[1]:
            newest = (entry.name, stamp)
    return newest


def _kind(signature: str) -> FindingKind:
    if signature.startswith(("Heuristics.Limits.Exceeded", "ClamAV.Limits")):
        return FindingKind.ARCHIVE_LIMIT if "Limits.Exceeded" in signature else FindingKind.UNSCANNABLE
    if signature.startswith("Heuristics.Encrypted"):
        return FindingKind.ENCRYPTED
    return FindingKind.MALWARE


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)
