"""Header edits on raw message bytes: strip our internal headers, apply a verdict's `Edit`s, prepend.

Works on the header section only and never re-serialises the body, so DKIM body hashes and MIME
structure stay exactly as received. Input is CRLF text (the edge refuses bare CR/LF).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mailbastion.core.headers import INTERNAL_PREFIX
from mailbastion.core.verdict import Edit

__all__ = ["apply_edits", "field", "split_fields", "strip_internal"]

_FIELD_START = re.compile(rb"^[!-9;-~]+[ \t]*:")
_INTERNAL = INTERNAL_PREFIX.lower().encode("ascii")


def split_fields(raw: bytes) -> tuple[list[bytes], bytes]:
    """(header fields, rest). Each field keeps its folded lines and CRLFs; `rest` starts at the
    blank line (or at the first line that is not a header, for a message without one)."""
    fields: list[bytes] = []
    pos, size = 0, len(raw)
    while pos < size:
        end = raw.find(b"\r\n", pos)
        end = size if end < 0 else end + 2
        line = raw[pos:end]
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        elif _FIELD_START.match(line):
            fields.append(line)
        else:
            break
        pos = end
    return fields, raw[pos:]


def _name(f: bytes) -> bytes:
    return f.split(b":", 1)[0].strip().lower()


def field(name: str, value: str) -> bytes:
    """One header field; a multi-line value is folded (RFC 5322 §2.2.3), never left with bare breaks."""
    lines = [ln.strip() for ln in value.splitlines() if ln.strip()] or [""]
    return (f"{name}: " + "\r\n\t".join(lines) + "\r\n").encode("utf-8")


def strip_internal(raw: bytes) -> tuple[bytes, int]:
    """Remove every `X-Mailbastion-*` field (core/headers.py: only we may set them). Returns the
    message and how many were removed."""
    fields, rest = split_fields(raw)
    kept = [f for f in fields if not _name(f).startswith(_INTERNAL)]
    if len(kept) == len(fields):
        return raw, 0
    return b"".join(kept) + rest, len(fields) - len(kept)


def _subject_tag(fields: list[bytes], tag: str) -> list[bytes]:
    tag_b = tag.encode("utf-8")
    for i, f in enumerate(fields):
        if _name(f) == b"subject":
            value = f.split(b":", 1)[1].lstrip(b" \t")
            if not value.startswith(tag_b):
                fields[i] = b"Subject: " + tag_b + b" " + value
            return fields
    return [*fields, field("Subject", tag)]


def apply_edits(raw: bytes, edits: Iterable[Edit], prepend: Iterable[tuple[str, str]] = ()) -> bytes:
    """Apply `remove` and `subject_tag` edits, then the `prepend` edits, then `prepend` (given top
    first: the first pair ends up as the first line, where trace fields belong, RFC 5321 §4.4)."""
    fields, rest = split_fields(raw)
    top: list[bytes] = []
    for edit in edits:
        if edit.kind == "remove":
            name = edit.name.lower().encode("ascii")
            needle = edit.value.encode("utf-8")
            fields = [f for f in fields if not (_name(f) == name and needle in f.split(b":", 1)[1])]
        elif edit.kind == "subject_tag":
            fields = _subject_tag(fields, edit.value)
        elif edit.kind == "prepend":
            top.insert(0, field(edit.name, edit.value))
    head = [field(n, v) for n, v in prepend]
    return b"".join(head + top + fields) + rest
