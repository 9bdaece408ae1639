"""Every part of a message, decoded the way a mail client would read it: the one MIME walk of mailbastion.

`SpooledMessage.parts` runs it once per message, lazily, and every reader shares the result (the
anti-virus engines, the spam features, anything else that needs attachments or body text):

    for part in message.parts:               # MessagePart, in document order
        part.where, part.declared_type, part.sniffed_type, part.filename, part.data, part.text()
        if part.reading: ...                 # another reading of malformed MIME, not what RFC 2045 says

It reads as leniently as clients do, and says which reading each part comes from (`MessagePart.reading`):

- ""           the part as RFC 2045-2049 read it (compat32 parser): MIME leaves after base64,
               quoted-printable or x-uuencode, and the leaves of attached messages (message/rfc822,
               message/global, and any leaf whose content is a message, recursed to depth 12; an
               attached message sent base64 or quoted-printable, which RFC 2046 forbids, is decoded
               first, as clients do);
- "cte"        a second decoding when a part has several, disagreeing Content-Transfer-Encoding fields;
- "resplit"    a multipart whose declared boundary never appears, re-split on the boundary lines it has;
- "epilogue"   text after a multipart's closing boundary;
- "trimmed"    binary pasted into a text body, without the line break SMTP added at its end;
- "uuencode"   a uuencoded block inside a text part (clients show it as an attachment).

Archives are not opened here (that is the anti-virus stage's budgeted work, `engines/mime_walk.py`).
What the walk notices about broken structure is a `MimeNote`; the walk never raises, and `complete`
is False when it gave up part of the message (nesting or part limits, an unparsable message).
"""

from __future__ import annotations

import base64
import binascii
import email
import email.errors
import email.feedparser
import email.message
import email.policy
import email.utils
import hashlib
import quopri
import re
from dataclasses import dataclass
from email.message import Message

from mailbastion.core.encoded_words import decoded_text
from mailbastion.core.filetype import detect
from mailbastion.core.header_block import HeaderBlock
from mailbastion.core.mime_tree import parse_well_formed

__all__ = ["MAX_MESSAGE_DEPTH", "MAX_PARTS", "MessagePart", "MimeNote", "MimeParts", "decode_parts", "parse_message",
           "uudecode_blocks"]

MAX_PARTS = 1000  # decoded parts per message; past it the walk stops with a "limit" note
MAX_MESSAGE_DEPTH = 12  # attached messages inside attached messages
_UU_BEGIN = re.compile(rb"^begin(?:-base64)? [0-7]{3,4} (.+?)\r?$", re.MULTILINE)
_BOUNDARY_LINE = re.compile(rb"^--([^\s-][^\r\n]{0,69}?)(--)?[ \t]*\r?$", re.MULTILINE)
_NOT_BASE64 = bytes(set(range(256)) - set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="))
_ENCODINGS = frozenset({"base64", "quoted-printable", "x-uuencode", "uuencode", "x-uue", "uue"})
_DEFECTS = frozenset({"StartBoundaryNotFoundDefect", "CloseBoundaryNotFoundDefect", "MultipartInvariantViolationDefect",
                      "InvalidBase64PaddingDefect", "InvalidBase64CharactersDefect",
                      "MissingHeaderBodySeparatorDefect"})


# -- the multipart boundary matcher --------------------------------------------------------------------
# The compat32 parser (email.feedparser) compiles a regular expression for every multipart boundary it
# meets. Boundaries are unique per message, so `re`'s cache never hits: about 0.2 ms per boundary, ~40 %
# of parsing a 5 KB message. email.feedparser gets a `re` whose `compile` recognises exactly that one
# pattern and returns a matcher doing the same match with string operations; every other pattern (and this
# one, if a Python version writes it differently) goes to `re.compile` unchanged. tests/core checks it
# against the real expression.
_BOUNDARY_PREFIX = "(?P<sep>"
_BOUNDARY_SUFFIX = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)
_GROUPS = ("sep", "end", "ws", "linesep")


class _BoundaryMatch:
    """What email.feedparser reads of a boundary match: `group(name)`."""

    __slots__ = ("_values",)

    def __init__(self, sep: str, end: str | None, ws: str, linesep: str | None) -> None:
        self._values = (sep, end, ws, linesep)

    def group(self, name: str | int = 0) -> str | None:
        if name == 0:
            return "".join(v for v in self._values if v)
        return self._values[name - 1 if isinstance(name, int) else _GROUPS.index(name)]


class _BoundaryMatcher:
    """`re.compile('(?P<sep>' + re.escape(sep) + _BOUNDARY_SUFFIX).match` without compiling: `sep`, then
    an optional `--`, spaces or tabs, an optional line break, and the end of the line (`$`: the end, or
    just before a final newline). Anything else asked of it goes to the compiled expression."""

    __slots__ = ("_compiled", "pattern", "sep")

    def __init__(self, sep: str, pattern: str) -> None:
        self.sep, self.pattern, self._compiled = sep, pattern, None

    def match(self, line: str) -> _BoundaryMatch | None:
        sep = self.sep
        if not line.startswith(sep):
            return None
        i = len(sep)
        end = None
        if line.startswith("--", i):
            end, i = "--", i + 2
        j = i
        n = len(line)
        while j < n and line[j] in " \t":
            j += 1
        rest = line[j:]
        for linesep in ("\r\n", "\r", "\n"):  # the alternatives in the expression's order
            if rest.startswith(linesep) and rest[len(linesep):] in ("", "\n"):
                return _BoundaryMatch(sep, end, line[i:j], linesep)
        if rest in ("", "\n"):
            return _BoundaryMatch(sep, end, line[i:j], None)
        return None

    def __getattr__(self, name: str) -> object:
        compiled = object.__getattribute__(self, "_compiled")
        if compiled is None:
            compiled = re.compile(self.pattern)
            object.__setattr__(self, "_compiled", compiled)
        return getattr(compiled, name)


class _FeedparserRe:
    """The `re` module as email.feedparser sees it: `compile` knows the boundary pattern."""

    def __getattr__(self, name: str) -> object:
        return getattr(re, name)

    @staticmethod
    def compile(pattern: object, flags: int = 0) -> object:
        if flags == 0 and isinstance(pattern, str) and pattern.startswith(_BOUNDARY_PREFIX) \
                and pattern.endswith(_BOUNDARY_SUFFIX):
            escaped = pattern[len(_BOUNDARY_PREFIX):-len(_BOUNDARY_SUFFIX)]
            sep = _UNESCAPE.sub(r"\1", escaped)
            if sep and re.escape(sep) == escaped:
                return _BoundaryMatcher(sep, pattern)
        return re.compile(pattern, flags)  # type: ignore[call-overload]


if email.feedparser.re is re:
    email.feedparser.re = _FeedparserRe()  # type: ignore[assignment]


# -- the parameter splitter ---------------------------------------------------------------------------
# email.message._parseparam splits "a; b=1; c=\"x;y\"" at the semicolons outside quotes, and for each candidate
# semicolon counts the quotes from the start of the parameter again, then copies the rest of the value: a
# 64 KB Content-Type whose boundary is a quoted run of ";" took 3-13 s in every parse (get_boundary,
# get_content_charset, get_param). This does the same split in one pass, with the same reading of quotes
# (quotes minus backslash-quotes, odd = inside); tests/core checks it against the standard library's.
_STDLIB_PARSEPARAM = email.message._parseparam  # type: ignore[attr-defined]


def _parseparam(value: object) -> list[str]:
    s = ";" + str(value)
    semis = [m.start() for m in re.finditer(";", s)]
    quotes: list[int] = []  # at each semicolon: quotes minus backslash-quotes before it
    parity = previous = 0
    for at in semis:
        parity += s.count('"', previous, at) - s.count('\\"', previous, at)
        quotes.append(parity)
        previous = at
    out: list[str] = []
    j = 0
    while True:
        start = semis[j] + 1
        k = j + 1
        while k < len(semis) and semis[k] > start and (quotes[k] - quotes[j]) % 2:
            k += 1
        field = s[start:semis[k]] if k < len(semis) else s[start:]
        if "=" in field:
            i = field.index("=")
            field = field[:i].strip().lower() + "=" + field[i + 1:].strip()
        out.append(field.strip())
        if k >= len(semis):
            return out
        j = k


if email.message._parseparam is _STDLIB_PARSEPARAM:  # type: ignore[attr-defined]
    email.message._parseparam = _parseparam  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class MessagePart:
    """One decoded leaf of a message. `data` is the content with its transfer encoding undone."""

    where: str  # a path a human can follow: "1.2 invoice.pdf", "1.3.msg.2", "1.1.uu1 setup.exe"
    data: bytes
    declared_type: str  # the Content-Type the sender gave, lower-case ("application/pdf"); "" for uu blocks
    sniffed_type: str  # the type by content (core.filetype.detect): "pdf", "pe", "zip", "html", "text", ...
    filename: str = ""  # the name the sender gave; " | " between two names that disagree (clients differ)
    disposition: str = ""  # "attachment", "inline" or ""
    charset: str = ""  # the declared charset of a text part, lower-case
    is_body: bool = False  # inline text a client shows as the message, not as an attachment
    depth: int = 0  # how many attached messages it sits inside
    reading: str = ""  # "" = as RFC 2045 reads it; else the lenient reading it comes from (module docstring)

    @property
    def filenames(self) -> tuple[str, ...]:
        return tuple(n.strip() for n in self.filename.split(" | ") if n.strip())

    def text(self, limit: int | None = None) -> str:
        """The content as text in its declared charset (latin-1 when unknown), undecodable bytes replaced;
        at most `limit` bytes of it are decoded."""
        data = self.data if limit is None else self.data[:limit]
        charset = self.charset if self.charset not in ("", "unknown-8bit", "x-unknown", "default") else "latin-1"
        try:
            return data.decode(charset, "replace")
        except (LookupError, ValueError):  # ValueError: a NUL in the charset's name ("embedded null character")
            return data.decode("latin-1", "replace")


@dataclass(frozen=True, slots=True)
class MimeNote:
    """Something the walk noticed about the structure. `kind`: "malformed" (broken or ambiguous MIME),
    "limit" (nesting or part count reached: the rest was not walked), "unscannable" (message/partial)."""

    kind: str
    name: str  # "mime.StartBoundaryNotFoundDefect", "mime.duplicate_header", "mime.limit: ..."
    where: str


@dataclass(frozen=True, slots=True)
class MimeParts:
    parts: tuple[MessagePart, ...]
    notes: tuple[MimeNote, ...]

    @property
    def complete(self) -> bool:
        """False when part of the message was not walked (limits, or a message the parser gave up on)."""
        return not any(n.kind == "limit" or n.name.startswith("mime.unparsable") for n in self.notes)


class NestingTooDeep(email.errors.MessageDefect):
    """Multiparts nested deeper than the parsers can follow (they recurse per level; a thousand levels is
    14 KB): the message is kept as its header and one opaque body, and the walk notes a "limit"."""


def parse_message(raw: bytes) -> Message:
    """The MIME tree as the compat32 parser reads it: lenient, fast, header values as received. Well-formed
    mail is built by `core/mime_tree.py` (the same tree, without the line-by-line feed parser); the rest
    by the standard library. Never raises RecursionError: see `NestingTooDeep`."""
    try:
        tree = parse_well_formed(raw)
        return tree if tree is not None else email.message_from_bytes(raw, policy=email.policy.compat32)
    except RecursionError:
        return _opaque(raw)


def _opaque(raw: bytes) -> Message:
    """`raw` as a header section and one application/octet-stream body, marked NestingTooDeep. Split where the
    one header parser (`core/header_block.py`) ends the section."""
    block = HeaderBlock.parse(raw)
    msg = email.message_from_bytes(block.header_bytes + b"\r\n", policy=email.policy.compat32)
    for name in ("Content-Type", "Content-Transfer-Encoding"):
        del msg[name]
    msg["Content-Type"] = "application/octet-stream"
    msg.set_payload(block.body_bytes.decode("latin-1"))
    msg.defects.append(NestingTooDeep())
    return msg


def decode_parts(msg: Message, *, prefix: str = "", depth: int = 0, max_parts: int = MAX_PARTS) -> MimeParts:
    """Walk `msg` once and decode every leaf. Never raises: what goes wrong becomes a note."""
    walk = _Walk(max_parts)
    try:
        walk.message(msg, prefix, depth, "")
    except RecursionError:
        walk.note("limit", "mime.limit: nesting too deep", prefix or "message")
    except Exception as exc:  # noqa: BLE001 - a parser bug must not lose the parts found so far
        walk.note("malformed", f"mime.unparsable: {type(exc).__name__}", prefix or "message")
    return MimeParts(tuple(walk.parts), tuple(walk.notes))


def uudecode_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """Every uuencoded (or begin-base64) block in a text: (the name on its begin line, the decoded bytes)."""
    out: list[tuple[str, bytes]] = []
    if b"begin" not in data:
        return out
    # Each block is read up to the next begin line at most: reading from each begin to the end of the data made
    # 4,000 "begin" lines with no "end" (52 KB) cost 7 s, quadratically.
    begins = list(_UU_BEGIN.finditer(data))
    for i, m in enumerate(begins):
        block = data[m.end():begins[i + 1].start()] if i + 1 < len(begins) else data[m.end():]
        decoded = _uudecode(block, base64_form=m.group(0).startswith(b"begin-base64"))
        if decoded:
            out.append((m.group(1).decode("latin-1", "replace").strip(), decoded))
    return out


class _Walk:
    def __init__(self, max_parts: int) -> None:
        self.max_parts = max_parts
        self.parts: list[MessagePart] = []
        self.notes: list[MimeNote] = []
        self._seen: set[tuple[bytes, str]] = set()
        self.stopped = False

    def note(self, kind: str, name: str, where: str) -> None:
        self.notes.append(MimeNote(kind, name, where))

    def message(self, msg: Message, prefix: str, depth: int, reading: str) -> None:
        if depth > MAX_MESSAGE_DEPTH:
            self.note("limit", "mime.limit: attached messages nested too deep", prefix or "message")
            return
        self.entity(msg, prefix or "1", depth, reading)

    def entity(self, part: Message, where: str, depth: int, reading: str) -> None:
        if self.stopped:
            return
        for defect in getattr(part, "defects", []):
            if isinstance(defect, NestingTooDeep):
                self.note("limit", "mime.limit: nesting too deep", where)
            elif type(defect).__name__ in _DEFECTS:
                self.note("malformed", f"mime.{type(defect).__name__}", where)
        if len(part.get_all("Content-Type") or []) > 1 or len(part.get_all("Content-Transfer-Encoding") or []) > 1:
            self.note("malformed", "mime.duplicate_header", where)
        ctype = part.get_content_type()
        if ctype.startswith("multipart/") and not part.is_multipart():
            # The boundary never appeared: the parser (and a strict client) kept the body as text.
            self.resplit(part, where, depth, reading)
            return
        if ctype == "message/partial":
            # RFC 2046 §5.2.2 fragments: some clients reassemble them, no scanner sees the whole. Refuse to guess.
            self.note("unscannable", "mime.message_partial", where)
        if part.is_multipart():
            children = part.get_payload()
            assert isinstance(children, list)
            if ctype.startswith("message/"):
                cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
                if cte in _ENCODINGS and len(children) == 1:
                    # RFC 2046 §5.2.1 allows only 7bit, 8bit or binary here; clients decode the others anyway,
                    # and the parser took the encoded text for a message of its own.
                    self.note("malformed", "mime.encoded_message", where)
                    child = children[0]
                    assert isinstance(child, Message)
                    encoded = _raw_payload(child) if not child.keys() else child.as_bytes()
                    self.content(_decode(encoded, cte), where, _filename(part), "message/rfc822", depth,
                                 reading=reading, disposition=_disposition(part))
                    return
                for i, child in enumerate(children, 1):
                    self.message(child, f"{where}.{i}", depth + 1, reading)
                return
            if not children or any(type(d).__name__ == "StartBoundaryNotFoundDefect" for d in part.defects):
                self.resplit(part, where, depth, reading or "resplit")
            for i, child in enumerate(children, 1):
                self.entity(child, f"{where}.{i}", depth, reading)
            epilogue = (part.epilogue or "").encode("latin-1", "replace")
            if len(epilogue.strip()) > 16:
                self.content(epilogue, f"{where}.epilogue", "", "text/plain", depth, is_body=True,
                             reading=reading or "epilogue")
            return
        for i, data in enumerate(_decodings(part)):
            self.leaf(part, data, where, depth, reading or ("cte" if i else ""))

    def resplit(self, part: Message, where: str, depth: int, reading: str) -> None:
        """A multipart whose declared boundary never appears: split on the boundary lines it has."""
        body = _raw_payload(part)
        found = {m.group(1) for m in _BOUNDARY_LINE.finditer(body)}
        for boundary in sorted(found)[:5]:
            pieces = re.split(rb"(?m)^--" + re.escape(boundary) + rb"(?:--)?[ \t]*\r?$", body)
            for i, piece in enumerate(pieces[1:], 1):
                if piece.strip():
                    sub = email.message_from_bytes(piece.lstrip(b"\r\n"), policy=email.policy.compat32)
                    self.entity(sub, f"{where}.resplit{i}", depth, reading or "resplit")
        if body.strip():
            self.content(body, f"{where}.body", "", "text/plain", depth, is_body=True, reading=reading)

    def leaf(self, part: Message, data: bytes, where: str, depth: int, reading: str) -> None:
        filename = _filename(part)
        ctype = part.get_content_type()
        disposition = _disposition(part)
        is_body = not filename and ctype.startswith("text/") and disposition != "attachment"
        kind = self.content(data, where, filename, ctype, depth, is_body=is_body, reading=reading,
                            disposition=disposition, charset=_charset(part))
        if is_body and kind not in ("text", "html", "message", "") and data.endswith(b"\n"):
            # Binary pasted into a body: the final line break is SMTP's, not the file's.
            trimmed = data[:-2] if data.endswith(b"\r\n") else data[:-1]
            self.content(trimmed, f"{where}.trimmed", "", ctype, depth, is_body=True, reading=reading or "trimmed")

    def content(self, data: bytes, where: str, filename: str, ctype: str, depth: int, *, is_body: bool = False,
                reading: str = "", disposition: str = "", charset: str = "") -> str:
        """Add one decoded part and look inside it; returns its sniffed type ("" when it was a duplicate)."""
        key = (hashlib.sha256(data).digest(), filename)
        if key in self._seen:
            return ""
        self._seen.add(key)
        label = where if not filename or where.endswith(filename) else f"{where} {filename}"
        if len(self.parts) >= self.max_parts:
            if not self.stopped:
                self.note("limit", f"mime.limit: more than {self.max_parts} parts", label)
            self.stopped = True
            return ""
        kind = detect(data)
        self.parts.append(MessagePart(label, data, ctype, kind, filename, disposition, charset, is_body, depth,
                                      reading))
        if kind == "message" or ctype in ("message/rfc822", "message/global"):
            sub = email.message_from_bytes(data, policy=email.policy.compat32)
            if sub.keys():
                self.message(sub, f"{where}.msg", depth + 1, reading)
        elif ctype.startswith("text/") or kind in ("text", "html"):
            for i, (name, decoded) in enumerate(uudecode_blocks(data), 1):
                self.content(decoded, f"{where}.uu{i}", name, "", depth, reading=reading or "uuencode")
        return kind


def _decodings(part: Message) -> list[bytes]:
    """The payload as each transfer encoding it declares decodes it (one, unless the headers disagree)."""
    body = _raw_payload(part)
    ctes = [str(v).strip().lower() for v in (part.get_all("Content-Transfer-Encoding") or [])] or ["7bit"]
    out: list[bytes] = []
    for cte in dict.fromkeys(ctes):
        data = _decode(body, cte)
        if data not in out:
            out.append(data)
    return out


def _raw_payload(part: Message) -> bytes:
    """The undecoded body bytes exactly as received.

    The bytes parser stores 8-bit bytes as surrogate escapes; get_payload() would decode them with the
    part's charset and replace what does not fit, so the stored payload is read instead."""
    raw = getattr(part, "_payload", None)
    if not isinstance(raw, str):
        return b""
    try:
        return raw.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return raw.encode("utf-8", "surrogateescape")


def _may_have(part: Message, param: str, header: str = "content-type") -> bool:
    """False only when the `header` field the parameter parser reads (its first one) cannot hold `param`:
    a parameter's name is never encoded (RFC 2231 only adds `*0`, `*` after it), so a field without the
    name as text has no such parameter. Saves parsing every parameter of the field once per question
    (`Message.get_param` re-parses the field each time it is asked)."""
    value = part.get(header)
    return value is not None and param in str(value).lower()


def _filename(part: Message) -> str:
    names: list[str] = []
    try:  # get_filename: Content-Disposition's filename, else Content-Type's name
        fn = part.get_filename() if _may_have(part, "filename", "content-disposition") \
            or _may_have(part, "name") else None
    except Exception:  # noqa: BLE001 - a broken RFC 2231 parameter is still a name to consider
        fn = None
    if fn:
        names.append(decoded_text(fn))
    try:
        n = part.get_param("name") if _may_have(part, "name") else None
    except Exception:  # noqa: BLE001
        n = None
    if n:
        text = decoded_text(email.utils.collapse_rfc2231_value(n) if isinstance(n, tuple) else str(n))
        if text not in names:
            names.append(text)
    # Clients differ on which name wins; the attachment policy judges the riskier, so keep both.
    return " | ".join(names)


def _disposition(part: Message) -> str:
    try:
        return part.get_content_disposition() or ""
    except Exception:  # noqa: BLE001
        return ""


def _charset(part: Message) -> str:
    try:
        return (part.get_content_charset() or "").lower() if _may_have(part, "charset") else ""
    except Exception:  # noqa: BLE001 - a malformed charset parameter: unknown
        return ""


def _decode(body: bytes, cte: str) -> bytes:
    if cte == "base64":
        cleaned = body.translate(None, _NOT_BASE64)
        cleaned = cleaned.split(b"=", 1)[0] if b"=" in cleaned.rstrip(b"=") else cleaned.rstrip(b"=")
        cleaned += b"=" * (-len(cleaned) % 4)
        try:
            return base64.b64decode(cleaned, validate=False)
        except binascii.Error:
            return base64.b64decode(cleaned[: len(cleaned) - len(cleaned) % 4] or b"", validate=False)
    if cte == "quoted-printable":
        return quopri.decodestring(body)
    if cte in ("x-uuencode", "uuencode", "x-uue", "uue"):
        m = _UU_BEGIN.search(body)
        return _uudecode(body[m.end():] if m else body, base64_form=False)
    return body


def _uudecode(text: bytes, *, base64_form: bool) -> bytes:
    out = bytearray()
    for line in text.splitlines():
        s = line.strip(b"\r")
        if s in (b"end", b"====") or (base64_form and s.startswith(b"====")):
            break
        if not s:
            continue
        try:
            out += base64.b64decode(s) if base64_form else binascii.a2b_uu(s)
        except binascii.Error:
            # Some encoders pad short lines wrongly: decode by the declared length like uudecode does.
            try:
                n = (s[0] - 32) & 0x3F
                out += binascii.a2b_uu(s[: 1 + (n * 4 + 2) // 3])
            except (binascii.Error, IndexError):
                continue
    return bytes(out)
