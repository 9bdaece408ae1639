"""The message header block as raw bytes: split it, drop fields, add trace fields, without re-encoding.

We never parse and re-serialize a message (that changes bytes and breaks DKIM); fields are located by
name and removed or prepended as whole raw lines, folding included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIELD = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:")


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    fields: tuple[bytes, ...]  # each raw, with its folded continuation lines and line endings
    rest: bytes  # the blank line and the body (empty when the message has no body)

    @classmethod
    def parse(cls, data: bytes) -> HeaderBlock:
        fields: list[bytes] = []
        pos = 0
        for line in data.splitlines(keepends=True):
            if line in (b"\r\n", b"\n"):
                break
            if line[:1] in (b" ", b"\t") and fields:
                fields[-1] += line
            elif _FIELD.match(line):
                fields.append(line)
            else:
                break  # not a header line: the body starts here (no blank line was sent)
            pos += len(line)
        return cls(tuple(fields), data[pos:])

    def values(self, name: str) -> list[str]:
        """Unfolded, stripped values of every field called `name` (case-insensitive)."""
        return [_value(f) for f in self.fields if _name(f) == name.lower()]

    def without(self, name: str) -> HeaderBlock:
        return HeaderBlock(tuple(f for f in self.fields if _name(f) != name.lower()), self.rest)

    def prepend(self, *lines: tuple[str, str]) -> HeaderBlock:
        new = tuple(f"{n}: {v}\r\n".encode() for n, v in lines)
        return HeaderBlock(new + self.fields, self.rest)

    def to_bytes(self) -> bytes:
        return b"".join(self.fields) + self.rest


def _name(field: bytes) -> str:
    m = _FIELD.match(field)
    return m.group(1).decode("ascii").lower() if m else ""


def _value(field: bytes) -> str:
    raw = field.split(b":", 1)[1]
    return re.sub(r"\r?\n[ \t]", " ", raw.decode("utf-8", "replace")).strip()


def to_lf(data: bytes) -> bytes:
    """CRLF → LF, the line ending of messages on disk in a Unix Maildir."""
    return data.replace(b"\r\n", b"\n")


__all__ = ["HeaderBlock", "to_lf"]
