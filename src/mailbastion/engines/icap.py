"""ICAP (RFC 3507) client: a commercial engine a site already licenses, behind its ICAP service.

RESPMOD with each distinct decoded part (and the raw message when asked, or when the MIME was not
well formed) as an encapsulated HTTP response body, chunked,
with `Allow: 204`. `204` means clean; `200` with `X-Infection-Found`, `X-Virus-ID` or
`X-Violations-Found` (the de-facto headers of Sophos, Kaspersky, Trend Micro, McAfee, Symantec, ESET
and c-icap) or with an encapsulated HTTP 403 is a finding; anything else is EngineUnavailable.
`info()` asks OPTIONS for the Service and ISTag (which changes with each signature update).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from urllib.parse import urlsplit

from mailbastion.core.errors import EngineUnavailable
from mailbastion.engines.base import EngineInfo, Finding, FindingKind, ScanResult, ScanSubject, distinct_blobs, unique
from mailbastion.engines.cache import ScanCache

__all__ = ["IcapScanner", "parse_threat"]

_MAX_RESPONSE = 1024 * 1024
_THREAT = re.compile(r"Threat=([^;]+)", re.IGNORECASE)


def parse_threat(headers: dict[str, str]) -> str | None:
    """The threat name from the vendor headers, or None."""
    for key in ("x-infection-found", "x-virus-id", "x-violations-found", "x-virus-name"):
        value = headers.get(key)
        if not value:
            continue
        m = _THREAT.search(value)
        if m:
            return m.group(1).strip()
        if key == "x-violations-found":
            lines = [ln.strip() for ln in value.split("\n") if ln.strip()]
            return lines[2] if len(lines) > 2 else value.strip()
        return value.strip()
    return None


class IcapScanner:
    name = "icap"
    vendor_signatures = True  # a commercial engine: its vendor maintains the signatures

    def __init__(self, url: str, *, vendor: str = "icap", timeout: float = 60.0, concurrency: int = 4,
                 cache: ScanCache | None = None, scan_whole_message: bool = False) -> None:
        u = urlsplit(url)
        if u.scheme not in ("icap", "icaps") or not u.hostname:
            raise ValueError(f"not an icap:// URL: {url!r}")
        self.url = url
        self.host = u.hostname
        self.port = u.port or 1344
        self.service = u.path or "/"
        self.vendor = vendor
        self.timeout = timeout
        self.cache = cache
        self.scan_whole_message = scan_whole_message
        self._slots = asyncio.Semaphore(concurrency)
        self._istag = ""

    @property
    def generation(self) -> str:
        return self._istag

    async def _exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 5.0)
        except (OSError, TimeoutError) as exc:
            raise EngineUnavailable(f"icap {self.url} unreachable: {exc or type(exc).__name__}") from None
        try:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("ICAP/"):
                raise EngineUnavailable(f"icap {self.url}: bad status line {status_line[:80]!r}")
            status = int(parts[1])
            headers: dict[str, str] = {}
            for line in lines:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = (headers.get(k.strip().lower(), "") + "\n" + v.strip()).strip()
            body = b""
            if status == 200 and "encapsulated" in headers:
                body = await reader.read(_MAX_RESPONSE)
            return status, headers, body
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise EngineUnavailable(f"icap {self.url}: {type(exc).__name__}: {exc}") from None
        finally:
            writer.close()

    async def options(self) -> dict[str, str]:
        req = (f"OPTIONS icap://{self.host}:{self.port}{self.service} ICAP/1.0\r\n"
               f"Host: {self.host}\r\nEncapsulated: null-body=0\r\nConnection: close\r\n\r\n").encode()
        status, headers, _ = await asyncio.wait_for(self._exchange(req), self.timeout)
        if status != 200:
            raise EngineUnavailable(f"icap {self.url}: OPTIONS answered {status}")
        return headers

    async def info(self) -> EngineInfo:
        try:
            headers = await self.options()
        except TimeoutError:
            raise EngineUnavailable(f"icap {self.url}: OPTIONS timed out") from None
        self._istag = headers.get("istag", "").strip('"')
        return EngineInfo(self.name, self.vendor, headers.get("service", "ICAP service"), self._istag, None,
                          {"url": self.url})

    def _respmod(self, data: bytes) -> bytes:
        req_hdr = b"GET /message.eml HTTP/1.1\r\nHost: mailbastion\r\n\r\n"
        res_hdr = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                   b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n")
        icap = (f"RESPMOD icap://{self.host}:{self.port}{self.service} ICAP/1.0\r\n"
                f"Host: {self.host}\r\nAllow: 204\r\nConnection: close\r\n"
                f"Encapsulated: req-hdr=0, res-hdr={len(req_hdr)}, res-body={len(req_hdr) + len(res_hdr)}\r\n\r\n")
        body = (f"{len(data):x}\r\n".encode() + data + b"\r\n") if data else b""
        return icap.encode() + req_hdr + res_hdr + body + b"0\r\n\r\n"

    async def scan_bytes(self, data: bytes) -> str | None:
        key = ("icap", self._istag, hashlib.sha256(data).digest())
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return hit or None
        async with self._slots:
            try:
                status, headers, body = await asyncio.wait_for(self._exchange(self._respmod(data)), self.timeout)
            except TimeoutError:
                raise EngineUnavailable(f"icap {self.url}: no answer in {self.timeout:g}s") from None
        if status == 204:
            found = None
        elif status == 200:
            found = parse_threat(headers)
            if found is None and re.match(rb"HTTP/1\.[01] 403", body.lstrip()):
                found = "icap.blocked"
        else:
            raise EngineUnavailable(f"icap {self.url}: RESPMOD answered {status}")
        if self.cache is not None:
            self.cache.put(key, found or "")
        return found

    async def scan(self, subject: ScanSubject) -> ScanResult:
        """Each distinct decoded part once (the raw message too when the MIME was not well formed)."""
        blobs = distinct_blobs(subject, whole_message=self.scan_whole_message)
        names = await asyncio.gather(*(self.scan_bytes(d) for d, _ in blobs))
        findings = [Finding(self.name, FindingKind.MALWARE, n, w) for (_, w), n in zip(blobs, names, strict=True) if n]
        return ScanResult(self.name, unique(findings))
