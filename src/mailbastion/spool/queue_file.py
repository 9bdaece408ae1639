"""One file per queued message, its record in front (Postfix keeps envelope records and content in one
queue file): a state change is then one rename of one file, and removal is one unlink.

    MBQ2 <n>\\n            magic and the record's length in bytes (ASCII)
    <record JSON>\\n       n bytes of spool/record.py's JSON, then a newline
    <message bytes>        exactly as received; their length is the record's `size`

A file is written whole and fsynced before it is renamed into a state directory, so a state directory
never holds a torn file; a length that does not add up still reads as RecordError (the entry goes to
corrupt/ for a human), never as a shorter message.
"""

from __future__ import annotations

import os
from pathlib import Path

from mailbastion.core.header_block import HeaderBlock
from mailbastion.spool.record import QueueRecord, RecordError

MAGIC = b"MBQ2 "
_HEAD_MAX = 32  # "MBQ2 " + up to 20 digits + "\n"
_FIRST_READ = 64 * 1024


def encode(record: QueueRecord, message: bytes) -> bytes:
    body = record.to_json()
    return b"".join((MAGIC, str(len(body)).encode("ascii"), b"\n", body, b"\n", message))


def _split_head(data: bytes) -> tuple[int, int]:
    """(offset of the record, its length) from the first bytes of a queue file."""
    end = data.find(b"\n", 0, _HEAD_MAX)
    if not data.startswith(MAGIC) or end < 0:
        raise RecordError("not a queue file (bad header line)")
    digits = data[len(MAGIC):end]
    if not digits.isdigit():
        raise RecordError("not a queue file (bad record length)")
    return end + 1, int(digits)


def decode(data: bytes) -> tuple[QueueRecord, bytes]:
    """The record and the message of a whole queue file. Raises RecordError when malformed."""
    start, length = _split_head(data)
    stop = start + length
    if data[stop:stop + 1] != b"\n":
        raise RecordError("queue file cut short inside its record")
    record = QueueRecord.from_json(data[start:stop])
    message = data[stop + 1:]
    if len(message) != record.size:
        raise RecordError(f"queue file holds {len(message)} message bytes, its record says {record.size}")
    return record, message


def read(path: Path | str) -> tuple[QueueRecord, bytes]:
    """Read a queue file. Raises FileNotFoundError (moved or removed meanwhile) or RecordError."""
    with open(path, "rb") as fh:
        return decode(fh.read())


def read_record(path: Path) -> QueueRecord:
    """Only the record, without reading the message (listing, scanning deferred entries)."""
    with open(path, "rb") as fh:
        data = fh.read(_FIRST_READ)
        start, length = _split_head(data)
        if len(data) < start + length + 1:
            data += fh.read(start + length + 1 - len(data))
        if data[start + length:start + length + 1] != b"\n":
            raise RecordError("queue file cut short inside its record")
        return QueueRecord.from_json(data[start:start + length])


def read_headers(path: Path, limit: int = 256 * 1024) -> bytes:
    """The header block of the queued message (`queue show`), at most `limit` bytes of it."""
    with open(path, "rb") as fh:
        start, length = _split_head(fh.read(_HEAD_MAX))
        fh.seek(start + length + 1)
        data = fh.read(limit)
    return HeaderBlock.parse(data).header_bytes


def message_size(path: Path) -> int:
    """Message bytes in a queue file, from its size and header (no JSON parsing)."""
    with open(path, "rb") as fh:
        start, length = _split_head(fh.read(_HEAD_MAX))
        return max(0, os.fstat(fh.fileno()).st_size - start - length - 1)
