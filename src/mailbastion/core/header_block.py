"""The one header-section parser of mailbastion: raw bytes in, fields out, never re-encoded.

Every part that reads or edits a message's header section (the gateway's edits and hop count, the
checks, the spool's DSNs, the MDA's trace fields, DKIM signing) uses this parser, so that all of
them agree on where the header section ends and which field a line belongs to. Parsers that
disagree there are where header-smuggling tricks live.

The rules, in order, for each line (a line ends with LF, CRLF included; a last line may lack it):

1. An empty line (`CRLF` or `LF`) ends the header section (RFC 5322 §2.1). It belongs to `body`.
2. A line starting with SP or HTAB continues the previous field (RFC 5322 §2.2.3 folding). A
   continuation with no field before it (the section *starts* folded) becomes a field of its own
   with `name == ""`: malformed, kept, never attached to a later field.
3. A line `name:` with `name` of printable US-ASCII without colon (RFC 5322 §2.2; SP or HTAB
   before the colon tolerated, RFC 5322 §4.5.3 obsolete syntax) starts a field.
4. Any other line (no colon, an mbox `From ` line, 8-bit garbage, NUL) is a malformed field of its own
   with `name == ""`. It does NOT end the header section: everything before the first empty line is
   header, so nothing (an `X-Mailbastion-*` field, a second From) can hide behind a bad line from one
   reader and be seen by another.

A message without an empty line is all header and no body. Parsing never raises and keeps every
byte: `HeaderBlock.parse(raw).to_bytes() == raw` for every input.

    block = HeaderBlock.parse(raw)
    block.values("from")            # ['Alice <a@example.org>']  unfolded, stripped, decoded
    block.count("received")         # hop count
    block.without("x-mailbastion-junk").prepend(("Delivered-To", "a@example.org")).to_bytes()
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["HeaderBlock", "HeaderField", "field_bytes"]

_NAME_COLON = rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:"  # rule 3: a field name and its colon
_NAME = re.compile(_NAME_COLON)
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
# One field from the start of its line: a name (rule 3) when the line has one, the rest of the line, then
# every continuation line (rule 2). A line starting with SP or HTAB never has a name (the name's class
# excludes both), so an orphan continuation takes its followers as rule 2 says. The caller stops at the
# empty line (rule 1) first, so a match always takes at least one byte.
_FIELD = re.compile(rb"(?:" + _NAME_COLON + rb")?[^\n]*(?:\n|\Z)(?:[ \t][^\n]*(?:\n|\Z))*")


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One field exactly as received: its first line and continuation lines, line ends included."""

    raw: bytes
    name: str  # lower-case field name; "" for a malformed line (rule 2 orphan or rule 4)

    @property
    def is_malformed(self) -> bool:
        return not self.name

    @property
    def value_bytes(self) -> bytes:
        """The raw value after the colon, unfolded (line breaks before WSP removed), line end removed,
        surrounding whitespace stripped. For a malformed field, the whole unfolded line."""
        raw = self.raw
        if self.name:
            raw = raw.split(b":", 1)[1]
        return _FOLD.sub(b"", raw).rstrip(b"\r\n").strip(b" \t")

    @property
    def value(self) -> str:
        """`value_bytes` as text: UTF-8 (RFC 6532), undecodable bytes replaced."""
        return self.value_bytes.decode("utf-8", "replace")


def field_bytes(name: str, value: str, *, eol: bytes = b"\r\n") -> bytes:
    """One well-formed field. A multi-line value is folded (RFC 5322 §2.2.3), never left with bare
    line breaks; `name` must be a valid field name."""
    if not _NAME.fullmatch(name.encode("ascii", "replace") + b":"):
        raise ValueError(f"not a header field name: {name!r}")
    lines = [ln.strip() for ln in value.splitlines() if ln.strip()] or [""]
    fold = eol.decode("ascii") + "\t"
    return (f"{name}: " + fold.join(lines)).encode("utf-8") + eol


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    fields: tuple[HeaderField, ...]
    body: bytes  # everything after the header section: the empty line, then the body ("" when none)

    @classmethod
    def parse(cls, raw: bytes) -> HeaderBlock:
        """Split `raw` by the rules above. Never raises; keeps every byte. One regular-expression match
        per field, not a loop per line: the MDA parses every delivered message's header section."""
        fields: list[HeaderField] = []
        append, match = fields.append, _FIELD.match
        pos, size = 0, len(raw)
        while pos < size:
            first = raw[pos]
            if first == 0x0A or (first == 0x0D and raw[pos + 1:pos + 2] == b"\n"):
                break  # rule 1: the empty line
            m = match(raw, pos)
            assert m is not None  # the pattern matches any non-empty line
            name = m.group(1)
            append(HeaderField(m.group(), name.decode("ascii").lower() if name else ""))
            pos = m.end()
        return cls(tuple(fields), raw[pos:])

    # -- reading ---------------------------------------------------------------------------------

    @property
    def header_bytes(self) -> bytes:
        """The header section's bytes, without the empty line that ends it."""
        return b"".join(f.raw for f in self.fields)

    @property
    def body_bytes(self) -> bytes:
        """The body: what follows the empty line ("" when there is none)."""
        body = self.body
        if body.startswith(b"\r\n"):
            return body[2:]
        if body.startswith(b"\n"):
            return body[1:]
        return body

    @property
    def has_malformed(self) -> bool:
        return any(f.is_malformed for f in self.fields)

    def named(self, name: str) -> list[HeaderField]:
        key = name.lower()
        return [f for f in self.fields if f.name == key]

    def values(self, name: str) -> list[str]:
        """Unfolded, stripped values of every field called `name` (case-insensitive), in order."""
        return [f.value for f in self.named(name)]

    def first(self, name: str) -> str | None:
        found = self.named(name)
        return found[0].value if found else None

    def count(self, name: str) -> int:
        return len(self.named(name))

    # -- editing (each returns a new block; the body is never touched) ----------------------------

    def without(self, *names: str) -> HeaderBlock:
        """Every field called one of `names` removed."""
        keys = {n.lower() for n in names}
        return HeaderBlock(tuple(f for f in self.fields if f.name not in keys), self.body)

    def where(self, keep: Callable[[HeaderField], bool]) -> HeaderBlock:
        """Only the fields for which `keep` is true."""
        return HeaderBlock(tuple(f for f in self.fields if keep(f)), self.body)

    def prepend(self, *pairs: tuple[str, str], eol: bytes = b"\r\n") -> HeaderBlock:
        """Fields added on top, the first pair first (trace fields belong there, RFC 5321 §4.4)."""
        return self.prepend_fields(field_bytes(n, v, eol=eol) for n, v in pairs)

    def prepend_fields(self, raws: Iterable[bytes]) -> HeaderBlock:
        new = tuple(HeaderBlock.parse(r).fields[0] for r in raws)
        return HeaderBlock(new + self.fields, self.body)

    def replace_field(self, index: int, raw: bytes) -> HeaderBlock:
        fields = list(self.fields)
        fields[index] = HeaderBlock.parse(raw).fields[0]
        return HeaderBlock(tuple(fields), self.body)

    def append_field(self, raw: bytes) -> HeaderBlock:
        return HeaderBlock((*self.fields, HeaderBlock.parse(raw).fields[0]), self.body)

    def to_bytes(self) -> bytes:
        return self.header_bytes + self.body
