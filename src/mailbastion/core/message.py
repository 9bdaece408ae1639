"""A message as received: the exact bytes, and the views every check shares, each made once, on demand.

    message.header        # HeaderBlock: the header section (core/header_block.py), the one header parser
    message.parsed        # email.message.Message: the MIME tree (compat32), parsed once
    message.parts         # tuple[MessagePart, ...]: every decoded leaf, with declared and sniffed types
    message.mime_notes    # tuple[MimeNote, ...]: what the MIME walk found broken or ambiguous

The anti-virus engines, the spam features and any other check read these instead of parsing `raw`
again. Views are computed at most once per message even when checks ask from several threads at once
(the anti-virus stage decodes in a worker thread); `forget_views()` drops them when the message has
been judged, so a spooled message holds only its bytes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from functools import cached_property
from typing import TypeVar

from mailbastion.core.header_block import HeaderBlock
from mailbastion.core.mime_parts import MessagePart, MimeNote, MimeParts, decode_parts, parse_message

__all__ = ["SpooledMessage"]

_T = TypeVar("_T")
_PARSED = "core.parsed"
_MIME = "core.mime"


@dataclass(eq=False)
class SpooledMessage:
    """The raw message bytes (CRLF or LF line ends as received, dot-unstuffed) and lazily parsed views.

    `raw` never changes; checks that want to change the message return `Edit`s instead. `_cache` also
    holds views other packages derive from the message (keyed by their own names, e.g. "spam.features").
    """

    raw: bytes
    path: str | None = None  # where it lives on disk, once spooled
    _cache: dict[str, object] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @property
    def size(self) -> int:
        return len(self.raw)

    def _once(self, key: str, make: Callable[[], _T]) -> _T:
        """The view under `key`, made by `make()` the first time: once, whichever thread asks first."""
        try:
            return self._cache[key]  # type: ignore[return-value]
        except KeyError:
            pass
        with self._lock:
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]  # type: ignore[return-value]

    @property
    def parsed(self) -> Message:
        """The MIME tree, parsed once with the compat32 policy (lenient like mail clients, several times
        faster than `email.policy.default`; header values are the received strings). Read it, never
        change it: every check shares this one object."""
        return self._once(_PARSED, lambda: parse_message(self.raw))

    @property
    def parts(self) -> tuple[MessagePart, ...]:
        """Every decoded leaf of the message, in document order (`core/mime_parts.py`): MIME leaves with
        their transfer encoding undone, the leaves of attached messages, uuencoded blocks, and the other
        readings a lenient client may make of malformed MIME (`part.reading != ""`). Each carries its
        declared and sniffed types, file name, disposition, charset and `is_body`. Archives are not opened.
        Most readers want `[p for p in message.parts if not p.reading]`; the anti-virus stage scans all."""
        return self._mime().parts

    @property
    def mime_notes(self) -> tuple[MimeNote, ...]:
        """What the MIME walk found broken or ambiguous, and whether it stopped at a limit."""
        return self._mime().notes

    @property
    def mime_complete(self) -> bool:
        """False when the walk gave up part of the message (nesting or part limits, unparsable)."""
        return self._mime().complete

    def _mime(self) -> MimeParts:
        return self._once(_MIME, lambda: decode_parts(self.parsed))

    def forget_views(self) -> None:
        """Drop every parsed view (they hold about twice the message in memory); they are rebuilt if asked."""
        with self._lock:
            self._cache.clear()
        self.__dict__.pop("header", None)
        self.__dict__.pop("headers", None)

    @cached_property
    def headers(self) -> Message:
        """Headers only (cheap): the body is not parsed. Prefer `header`, the one header parser."""
        from email.parser import BytesHeaderParser
        from email.policy import compat32

        return BytesHeaderParser(policy=compat32).parsebytes(self.raw)

    @cached_property
    def header(self) -> HeaderBlock:
        """The header section, split by the one parser every part uses (core/header_block.py)."""
        return HeaderBlock.parse(self.raw)

    @property
    def header_block(self) -> bytes:
        """The raw bytes of the header section, without the empty line that ends it."""
        return self.header.header_bytes

    @property
    def body_bytes(self) -> bytes:
        return self.header.body_bytes
