"""The compat32 MIME tree of well-formed mail, built without the standard library's line-by-line feed parser.

    tree = parse_well_formed(raw)   # email.message.Message, or None: then use email.message_from_bytes

`email.feedparser` reads a message one line at a time through a generator, a line buffer with a stack of
end-of-part predicates and a header regular expression per line: ~0.3 ms for a 5 KB multipart message,
~2 ms with a 100 KB attachment, the largest single cost of the message path after the SMTP exchange
itself (docs/performance.md). Most mail is well formed: headers, a blank line, parts between boundary
lines. For that mail this module builds the very tree the compat32 parser builds (the same
`email.message.Message` objects, header pairs, payload strings, preambles and epilogues) with whole-list
operations: the text is split into lines once, and only lines that start with `--` are ever tested
against a boundary.

It returns None, and the caller parses with the standard library, for anything where the feed parser
would note a defect or take a path this module does not follow: a line ending other than CRLF or LF
(a bare CR, or a character `str.splitlines` would split on that the parser does not), a header line
that is not one, a continuation as the first header line, a misplaced `From ` line, a part without its
blank line, a multipart without a boundary, with a transfer encoding, without its first or closing
boundary, or with two boundary lines in a row, a boundary of an enclosing multipart inside a part,
`message/*` parts (attached messages are parsed recursively by the stdlib), and multipart/digest. The
module is equal or absent: tests/core compares every tree it builds with the stdlib's, attribute by
attribute, on every message of the shared corpora and on generated messages.
"""

from __future__ import annotations

import bisect
import email.feedparser
import re
from collections.abc import Callable
from email._policybase import compat32
from email.message import Message

__all__ = ["parse_well_formed"]

# email.feedparser's own expressions, so that a header line is a header line by the same test.
_HEADER_LINE = email.feedparser.headerRE.match
_BLANK = email.feedparser.NLCRE.match
# What ends a line for str.splitlines or the parser's reader (\r\n, \r, \n) other than \n: the subset has
# none but the \r of \r\n, so every line ends at a \n. (Decoded as ASCII + surrogateescape, no byte above
# 0x7f can be a line break.)
_OTHER_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e")
_MAX_DEPTH = 64  # nested multiparts; deeper goes to the stdlib (and the walk's own limits)


class _Fallback(Exception):
    """Not the well-formed subset: the stdlib parses this message."""


_Matcher = Callable[[str], object]


def _boundary_matcher(boundary: str) -> _Matcher:
    """The matcher email.feedparser makes for `boundary`, through the same `re` it uses."""
    pattern = ("(?P<sep>" + re.escape("--" + boundary)
               + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$")
    return email.feedparser.re.compile(pattern).match  # type: ignore[no-any-return]


def _eol(text: str) -> int:
    """The length of the line break `text` ends with (email.feedparser's NLCRE_eol)."""
    if text.endswith("\r\n"):
        return 2
    return 1 if text.endswith(("\n", "\r")) else 0


def parse_well_formed(raw: bytes) -> Message | None:
    """The tree `email.message_from_bytes(raw, policy=compat32)` builds, when `raw` is in the well-formed
    subset (module docstring); None otherwise."""
    text = raw.decode("ascii", "surrogateescape")
    if text.count("\r") != text.count("\r\n") or any(c in text for c in _OTHER_BREAKS):
        return None
    # Where the only lines that can be boundaries start: a part ends at the first of them that matches.
    dashes = [0] if text.startswith("--") else []
    find = text.find
    at = find("\n--")
    while at >= 0:
        dashes.append(at + 1)
        at = find("\n--", at + 3)
    try:
        msg, end = _Tree(text, dashes).entity(0, (), None, 0)
    except (_Fallback, RecursionError):
        return None
    return msg if end == len(text) else None  # the top ends at the end (nothing encloses it); stay safe


class _Tree:
    """Offsets into the text; a line runs from an offset to just after its \\n (or to the end)."""

    __slots__ = ("dashes", "n", "text")

    def __init__(self, text: str, dashes: list[int]) -> None:
        self.text, self.dashes, self.n = text, dashes, len(text)

    def _line(self, at: int) -> tuple[str, int]:
        """The line starting at `at`, and where the next one starts."""
        end = self.text.find("\n", at)
        nxt = self.n if end < 0 else end + 1
        return self.text[at:nxt], nxt

    def _next_boundary(self, start: int, matchers: tuple[_Matcher, ...]) -> int:
        """Where the first line at or after `start` that one of `matchers` matches starts; n when none."""
        if matchers:
            dashes = self.dashes
            for k in range(bisect.bisect_left(dashes, start), len(dashes)):
                line = self._line(dashes[k])[0]
                for m in matchers:
                    if m(line):
                        return dashes[k]
        return self.n

    def entity(self, start: int, matchers: tuple[_Matcher, ...], parent: Message | None,
               depth: int) -> tuple[Message, int]:
        """Parse the entity starting at offset `start`, enclosed by the multiparts whose `matchers` end it;
        (the message, where the line that ended it starts)."""
        if depth > _MAX_DEPTH:
            raise _Fallback
        n = self.n
        msg = Message(policy=compat32)
        if parent is not None:
            if parent.get_content_type() == "multipart/digest":
                raise _Fallback  # its parts default to message/rfc822
            parent.attach(msg)
        # -- headers: up to the blank line; a boundary or the end before it is a path we do not follow
        at = start
        headers: list[str] = []
        while True:
            if at >= n:
                raise _Fallback  # headers up to the end of the input, no body
            line, nxt = self._line(at)
            if matchers and line.startswith("--") and any(m(line) for m in matchers):
                raise _Fallback  # a part without its blank line
            if not _HEADER_LINE(line):
                if not _BLANK(line):
                    raise _Fallback  # MissingHeaderBodySeparatorDefect
                at = nxt
                break
            headers.append(line)
            at = nxt
        self._headers(msg, headers)
        ctype = msg.get_content_type()
        if ctype.startswith("message/"):
            raise _Fallback  # attached messages (and delivery-status blocks): the stdlib's recursion
        if not ctype.startswith("multipart/"):
            end = self._next_boundary(at, matchers)
            msg._payload = self.text[at:end]  # what set_payload(str) stores
            return msg, end
        return msg, self._multipart(msg, at, matchers, depth)

    def _headers(self, msg: Message, headers: list[str]) -> None:
        """email.feedparser's _parse_headers for the defect-free case."""
        value: list[str] = []
        for lineno, line in enumerate(headers):
            if line[0] in " \t":
                if not value:
                    raise _Fallback  # FirstHeaderLineIsContinuationDefect
                value.append(line)
                continue
            if value:
                msg.set_raw(*compat32.header_source_parse(value))
                value = []
            if line.startswith("From "):
                if lineno != 0:
                    raise _Fallback  # a misplaced envelope line, or the body's first line
                msg.set_unixfrom(line[:len(line) - _eol(line)])
                continue
            if line.find(":") <= 0:
                raise _Fallback  # no header name
            value = [line]
        if value:
            msg.set_raw(*compat32.header_source_parse(value))

    def _multipart(self, msg: Message, at: int, outer: tuple[_Matcher, ...], depth: int) -> int:
        """The body of multipart `msg` from offset `at`: preamble, parts, epilogue. Returns where it ended."""
        boundary = msg.get_boundary()
        if boundary is None:
            raise _Fallback  # NoBoundaryInMultipartDefect
        if str(msg.get("content-transfer-encoding", "8bit")).lower() not in ("7bit", "8bit", "binary"):
            raise _Fallback  # InvalidMultipartContentTransferEncodingDefect
        match = _boundary_matcher(boundary)
        inner = (*outer, match)
        n, text = self.n, self.text
        # The preamble runs to the first boundary line; an enclosing boundary or the end first is a defect.
        first = self._next_boundary(at, inner)
        if first >= n or _own(self._line(first)[0], match, outer).group("end"):  # type: ignore[attr-defined]
            raise _Fallback  # StartBoundaryNotFoundDefect, or the closing boundary before any part
        if first > at:  # RFC 2046: the line break before a boundary belongs to the boundary
            preamble = text[at:first]
            msg.preamble = preamble[:len(preamble) - _eol(preamble)]
        line = self._line(first)
        while True:
            start = line[1]
            if start >= n:
                raise _Fallback  # a boundary as the last line
            if text.startswith("--", start) and any(m(self._line(start)[0]) for m in inner):
                raise _Fallback  # two boundary lines in a row, or an enclosing one
            part, end = self.entity(start, inner, msg, depth + 1)
            if end >= n:
                raise _Fallback  # CloseBoundaryNotFoundDefect
            line = self._line(end)
            mo = _own(line[0], match, outer)  # else an enclosing boundary ended the part: never closed
            _drop_final_eol(part)
            if mo.group("end"):  # type: ignore[attr-defined]
                break
        # The epilogue: the rest, up to an enclosing boundary. (After a closing boundary without a line
        # break nothing follows; with one, the parser keeps the rest as it is.)
        rest = line[1]
        stop = self._next_boundary(rest, outer)
        msg.epilogue = text[rest:stop]
        return stop


def _own(line: str, match: _Matcher, outer: tuple[_Matcher, ...]) -> object:
    """The match of this multipart's boundary on `line`. The parser tests the enclosing boundaries first
    (they end the part and this multipart with it: a defect), so a line any of them matches falls back."""
    mo = match(line)
    if not mo or any(m(line) for m in outer):
        raise _Fallback
    return mo


def _drop_final_eol(part: Message) -> None:
    """The line break before a boundary belongs to the boundary (email.feedparser after each subpart)."""
    if part.get_content_maintype() == "multipart":
        epilogue = part.epilogue
        if epilogue == "":
            part.epilogue = None
        elif epilogue is not None:
            part.epilogue = epilogue[:len(epilogue) - _eol(epilogue)]
        return
    payload = part._payload
    if isinstance(payload, str):
        part._payload = payload[:len(payload) - _eol(payload)]
