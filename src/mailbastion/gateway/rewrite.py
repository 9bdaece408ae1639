"""Header edits on a message: strip our internal headers, apply a verdict's `Edit`s, prepend trace fields.

Built on the one header-section parser (`core/header_block.py`), so the gateway removes exactly the
fields every other part of mailbastion sees. Works on the header section only and never
re-serialises the body, so DKIM body hashes and MIME structure stay exactly as received. Input is
CRLF text (the edge refuses bare CR/LF).
"""

from __future__ import annotations

from collections.abc import Iterable

from mailbastion.core.header_block import HeaderBlock, HeaderField, field_bytes
from mailbastion.core.headers import INTERNAL_PREFIX
from mailbastion.core.verdict import Edit

__all__ = ["apply_edits", "field", "is_internal", "strip_internal", "without_internal"]

_INTERNAL = INTERNAL_PREFIX.lower()
_INTERNAL_BYTES = _INTERNAL.encode("ascii")


def field(name: str, value: str) -> bytes:
    """One header field; a multi-line value is folded (RFC 5322 §2.2.3), never left with bare breaks."""
    return field_bytes(name, value)


def is_internal(f: HeaderField) -> bool:
    """An `X-Mailbastion-*` field. A malformed line counts by its start (so `X-Mailbastion-Junk yes`,
    without a colon, is still ours and removed): no reader may see one we did not write."""
    if f.name:
        return f.name.startswith(_INTERNAL)
    return f.raw.lstrip(b" \t")[: len(_INTERNAL_BYTES)].lower() == _INTERNAL_BYTES


def without_internal(block: HeaderBlock) -> tuple[HeaderBlock, int]:
    """The block without `X-Mailbastion-*` fields (core/headers.py: only we may set them), and how
    many were removed. The same block when there were none."""
    kept = block.where(lambda f: not is_internal(f))
    removed = len(block.fields) - len(kept.fields)
    return (kept, removed) if removed else (block, 0)


def strip_internal(raw: bytes) -> tuple[bytes, int]:
    """`without_internal` on raw bytes: the message and how many fields were removed."""
    block, removed = without_internal(HeaderBlock.parse(raw))
    return (block.to_bytes(), removed) if removed else (raw, 0)


def _value_bytes(f: HeaderField) -> bytes:
    return f.raw.partition(b":")[2]


def _subject_tag(block: HeaderBlock, tag: str) -> HeaderBlock:
    tag_b = tag.encode("utf-8")
    for i, f in enumerate(block.fields):
        if f.name == "subject":
            value = _value_bytes(f).lstrip(b" \t")
            if value.startswith(tag_b):
                return block
            return block.replace_field(i, b"Subject: " + tag_b + b" " + value)
    return block.append_field(field("Subject", tag))


def apply_edits(message: bytes | HeaderBlock, edits: Iterable[Edit], prepend: Iterable[tuple[str, str]] = ()) -> bytes:
    """Apply `remove` and `subject_tag` edits, then the `prepend` edits, then `prepend` (given top
    first: the first pair ends up as the first line, where trace fields belong, RFC 5321 §4.4)."""
    block = message if isinstance(message, HeaderBlock) else HeaderBlock.parse(message)
    top: list[bytes] = []
    for edit in edits:
        if edit.kind == "remove":
            name = edit.name.lower()
            needle = edit.value.encode("utf-8")
            block = block.where(lambda f, n=name, v=needle: not (f.name == n and v in _value_bytes(f)))  # type: ignore[misc]
        elif edit.kind == "subject_tag":
            block = _subject_tag(block, edit.value)
        elif edit.kind == "prepend":
            top.insert(0, field(edit.name, edit.value))
    head = [field(n, v) for n, v in prepend]
    return b"".join(head) + b"".join(top) + block.to_bytes()
