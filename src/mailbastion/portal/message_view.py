"""A held message as inert text: every header field as received, each text part's content as text (HTML
parts as their source), and a list of the other parts. Nothing of the message is ever rendered as HTML,
fetched, or offered for download: the page's template escapes all of it and the CSP forbids scripts and
remote loads anyway.

    view = inert_view(raw)        # InertView(headers=[(name, value)], parts=[...], attachments=[...])
"""

from __future__ import annotations

from dataclasses import dataclass

from mailbastion.core.encoded_words import decoded_text
from mailbastion.core.header_block import HeaderBlock
from mailbastion.core.message import SpooledMessage

__all__ = ["InertPart", "InertView", "decoded_header", "inert_view"]

MAX_TEXT = 200_000  # characters of each text part shown; the rest is named, not shown
MAX_PARTS = 50


@dataclass(frozen=True, slots=True)
class InertPart:
    where: str
    declared_type: str
    sniffed_type: str
    filename: str
    size: int
    text: str | None  # None: not text, not shown
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class InertView:
    headers: tuple[tuple[str, str], ...]  # (name as written, value unfolded) in order, malformed lines too
    subject: str  # RFC 2047 decoded, for reading; the raw field is in `headers`
    sender: str
    parts: tuple[InertPart, ...]  # text parts, with their text
    attachments: tuple[InertPart, ...]  # everything else: named and measured, never opened here
    notes: tuple[str, ...]


def decoded_header(value: str) -> str:
    """RFC 2047 encoded words decoded; on any error the value as it was. Control characters become
    visible escapes (a header could carry terminal or bidi tricks). Any MessageError, not only
    HeaderParseError: a non-ASCII charset name raises CharsetError, which made the page a 500."""
    text = decoded_text(value)
    return "".join(c if c.isprintable() or c in " \t" else f"\\u{ord(c):04x}" for c in text)


def inert_view(raw: bytes) -> InertView:
    block = HeaderBlock.parse(raw)
    headers = []
    for f in block.fields:
        name = f.raw.split(b":", 1)[0].decode("utf-8", "replace") if f.name else "(malformed line)"
        headers.append((name, f.value))
    message = SpooledMessage(raw)
    parts: list[InertPart] = []
    attachments: list[InertPart] = []
    for p in message.parts[:MAX_PARTS]:
        is_text = p.declared_type.startswith("text/") or (not p.declared_type and p.sniffed_type in ("text", "html"))
        if is_text and p.disposition != "attachment":
            text = p.text(MAX_TEXT + 1)
            parts.append(InertPart(p.where, p.declared_type or "text/plain", p.sniffed_type, p.filename, len(p.data),
                                   text[:MAX_TEXT], len(text) > MAX_TEXT))
        else:
            attachments.append(InertPart(p.where, p.declared_type, p.sniffed_type, p.filename, len(p.data), None))
    notes = tuple(f"{n.kind}: {n.name}" + (f" ({n.where})" if n.where else "") for n in message.mime_notes)
    if len(message.parts) > MAX_PARTS:
        notes += (f"{len(message.parts) - MAX_PARTS} more parts not listed",)
    return InertView(tuple(headers), decoded_header(block.first("subject") or ""),
                     decoded_header(block.first("from") or ""), tuple(parts), tuple(attachments), notes)
