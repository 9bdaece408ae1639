"""Report files out of a report mail: the attachments (or body) that carry a DMARC or TLS-RPT report,
uncompressed under limits. Hostile input is refused with a clear message, never a traceback or a bomb.

    for name, data in report_payloads(raw_message, limits):       # raises ReportRejected
        ...   # data: the XML or JSON, uncompressed

Accepted: gzip (application/gzip, application/x-gzip, application/tlsrpt+gzip, *.gz), zip (application/zip,
application/x-zip-compressed, *.zip; one level, no encryption), and plain XML or JSON. Limits: the
compressed size, the uncompressed size (counted while inflating, never trusting a header), the ratio, the
members of a zip; a zip inside a zip is refused; so is a mail with a Content-* field over 8 KiB.
"""

from __future__ import annotations

import email
import email.policy
import io
import re
import zipfile
import zlib
from dataclasses import dataclass
from email.message import EmailMessage


class ReportRejected(ValueError):
    """A report this reader will not open: hostile or malformed. The message says which and why."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_compressed: int = 10 * 1024 * 1024
    max_uncompressed: int = 50 * 1024 * 1024
    max_ratio: int = 200  # uncompressed/compressed; real reports compress 10-30x
    max_members: int = 10


_GZIP_TYPES = {"application/gzip", "application/x-gzip", "application/tlsrpt+gzip", "application/x-gzip-compressed"}
_ZIP_TYPES = {"application/zip", "application/x-zip-compressed", "application/x-zip"}
_PLAIN_TYPES = {"text/xml", "application/xml", "application/json", "application/tlsrpt+json"}
MAX_MIME_FIELD = 8 * 1024  # bytes of one Content-* field, folded; real ones are a few hundred
MAX_MIME_FIELDS = 16 * 1024  # bytes of all of them in the message (a report mail has a few)
# Every Content-* field anywhere in the message (any line start, as the feed parser splits lines), with its
# continuation lines: counted before the stdlib parses them, whatever MIME structure it later finds.
_MIME_FIELD = re.compile(rb"(?<![^\r\n])content-[\x21-\x39\x3b-\x7e]*[ \t]*:[^\r\n]*"
                         rb"(?:(?:\r\n|\r|\n)[ \t][^\r\n]*)*", re.IGNORECASE)


def gunzip(data: bytes, limits: Limits, name: str = "report") -> bytes:
    """Inflate a gzip stream (several members allowed), refusing output over the limits as it grows."""
    if len(data) > limits.max_compressed:
        raise ReportRejected(f"{name}: {len(data)} compressed bytes, over the limit of {limits.max_compressed}")
    cap = min(limits.max_uncompressed, max(len(data), 1) * limits.max_ratio)
    out = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = inflater.decompress(rest, cap + 1 - len(out))
            while inflater.unconsumed_tail and len(out) + len(chunk) <= cap:
                chunk += inflater.decompress(inflater.unconsumed_tail, cap + 1 - len(out) - len(chunk))
        except zlib.error as exc:
            raise ReportRejected(f"{name}: not a valid gzip stream ({exc})") from None
        out += chunk
        if len(out) > cap:
            raise ReportRejected(f"{name}: inflates past {cap} bytes (a compression bomb?); refused")
        if not inflater.eof:
            raise ReportRejected(f"{name}: truncated gzip stream")
        rest = inflater.unused_data.lstrip(b"\0")
    return bytes(out)


def unzip(data: bytes, limits: Limits, name: str = "report") -> list[tuple[str, bytes]]:
    """The members of a zip, each read under the limits (sizes counted while reading)."""
    if len(data) > limits.max_compressed:
        raise ReportRejected(f"{name}: {len(data)} compressed bytes, over the limit of {limits.max_compressed}")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise ReportRejected(f"{name}: not a valid zip file ({exc})") from None
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) > limits.max_members:
        raise ReportRejected(f"{name}: {len(members)} files in the zip, over the limit of {limits.max_members}")
    cap = min(limits.max_uncompressed, max(len(data), 1) * limits.max_ratio)
    out, total = [], 0
    for member in members:
        if member.flag_bits & 0x1:
            raise ReportRejected(f"{name}: {member.filename} is encrypted; refused")
        if member.filename.lower().endswith((".zip", ".gz", ".7z", ".rar")):
            raise ReportRejected(f"{name}: archive {member.filename} inside the zip; refused")
        try:
            with archive.open(member) as f:
                content = f.read(cap - total + 1)
        except (zipfile.BadZipFile, NotImplementedError, zlib.error, EOFError, OSError) as exc:
            raise ReportRejected(f"{name}: cannot read {member.filename} ({exc})") from None
        total += len(content)
        if total > cap:
            raise ReportRejected(f"{name}: inflates past {cap} bytes (a compression bomb?); refused")
        out.append((member.filename, content))
    return out


def _decode(name: str, ctype: str, data: bytes, limits: Limits) -> list[tuple[str, bytes]]:
    low = name.lower()
    if ctype in _ZIP_TYPES or low.endswith(".zip") or data[:4] == b"PK\x03\x04":
        return unzip(data, limits, name)
    if ctype in _GZIP_TYPES or low.endswith(".gz") or data[:2] == b"\x1f\x8b":
        return [(low[:-3] if low.endswith(".gz") else low, gunzip(data, limits, name))]
    if len(data) > limits.max_uncompressed:
        raise ReportRejected(f"{name}: {len(data)} bytes, over the limit of {limits.max_uncompressed}")
    return [(name, data)]


def report_payloads(raw: bytes, limits: Limits | None = None) -> list[tuple[str, bytes]]:
    """Every report file a report mail carries. Raises ReportRejected for a hostile or broken one."""
    try:
        return _report_payloads(raw, limits or Limits())
    except RecursionError:  # a Content-Type or Content-Disposition with comments nested a thousand deep
        raise ReportRejected("a header field nests too deep to read") from None


def _refuse_long_mime_fields(raw: bytes) -> None:
    """policy.default parses Content-Type and Content-Disposition in quadratic time on ';', '"' and long
    parameter values (a 64 KiB field: over a minute); it parses each part's Content-Type while it reads the
    message. Real report mail has short ones, so a long one is refused before the parse."""
    total = 0
    for m in _MIME_FIELD.finditer(raw):
        size = m.end() - m.start()
        total += size
        if size > MAX_MIME_FIELD:
            name = m.group().split(b":", 1)[0].rstrip().decode("ascii", "replace")
            raise ReportRejected(f"a {name} field of {size} bytes, over the limit of {MAX_MIME_FIELD}; refused")
        if total > MAX_MIME_FIELDS:
            raise ReportRejected(f"over {MAX_MIME_FIELDS} bytes of Content-* fields; refused")


def _report_payloads(raw: bytes, limits: Limits) -> list[tuple[str, bytes]]:
    _refuse_long_mime_fields(raw)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    out: list[tuple[str, bytes]] = []
    parts = list(msg.walk()) if msg.is_multipart() else [msg]
    for part in parts:
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        name = part.get_filename() or ""
        if not (ctype in _GZIP_TYPES | _ZIP_TYPES | _PLAIN_TYPES or name.lower().endswith(
                (".gz", ".zip", ".xml", ".json"))):
            continue
        try:
            data = part.get_payload(decode=True)
        except (ValueError, TypeError):
            raise ReportRejected(f"{name or ctype}: undecodable attachment") from None
        if isinstance(data, bytes) and data:
            out.extend(_decode(name or ctype, ctype, data, limits))
    return out


__all__ = ["Limits", "ReportRejected", "gunzip", "report_payloads", "unzip"]
