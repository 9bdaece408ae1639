"""Header edits on raw message bytes: strip our internal headers, apply a verdict's `Edit`s, prepend.

Works on the header section only and never re-serialises the body, so DKIM body hashes and MIME
structure stay exactly as received. Input is CRLF text (the edge refuses bare CR/LF).
"""

from __future__ import annotations

from collections.abc import Iterable

from mailbastion.core.headers import INTERNAL_PREFIX
from mailbastion.core.verdict import Edit

__all__ = ["apply_edits", "field", "split_fields", "strip_internal"]

_INTERNAL = INTERNAL_PREFIX.lower().encode("ascii")


def split_fields(raw: bytes) -> tuple[list[bytes], bytes]:
    """(header lines grouped as fields, rest). The header section is everything before the first
    blank line (RFC 5322 §2.1); each field keeps its folded lines and CRLFs. A line that is not a
    valid field (an mbox `From ` line, garbage) is kept as a field of its own rather than ending the
    section: parsers disagree on where such a header section ends (Python's skips a misplaced
    `From ` line and reads on), so everything before the blank line is treated as header here, and
    no `X-Mailbastion-*` line can hide behind one."""
    end = raw.find(b"\r\n\r\n")
    if raw.startswith(b"\r\n"):
        return [], raw
    head, rest = (raw, b"") if end < 0 else (raw[: end + 2], raw[end + 2:])
    fields: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields, rest


def _name(f: bytes) -> bytes:
    """Lower-case field name; for a line without a colon, its whole first line (so a line such as
    `X-Mailbastion-Junk yes` is still recognised as ours and removed)."""
    return f.split(b":", 1)[0].split(b"\r\n", 1)[0].strip().lower()


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
            value = f.partition(b":")[2].lstrip(b" \t")
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
            fields = [f for f in fields if not (_name(f) == name and needle in f.partition(b":")[2])]
        elif edit.kind == "subject_tag":
            fields = _subject_tag(fields, edit.value)
        elif edit.kind == "prepend":
            top.insert(0, field(edit.name, edit.value))
    head = [field(n, v) for n, v in prepend]
    return b"".join(head + top + fields) + rest
