"""Every part of a message, decoded the way a mail client would read it, archives opened.

`build_subject(raw, limits)` walks the MIME tree once per message and gives every engine the same
`ScanSubject`: the raw message plus every decoded part. It reads as leniently as clients do:

- base64, quoted-printable and x-uuencode transfer encodings; uuencoded blocks inside text bodies;
- attached messages (message/rfc822, and .eml attachments whatever their declared type), recursed;
- broken structure: a multipart whose boundary never appears is re-split on the boundary-like lines
  it does contain; duplicate Content-Type or Content-Transfer-Encoding headers are decoded every way
  a client might choose; each of these is noted as MALFORMED;
- archives (zip, tar, gzip, bzip2, xz, 7z, rar) are opened down to `max_depth`, within the
  message's `Budget`; limits, encryption and unreadable formats become notes.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.header
import email.policy
import email.utils
import hashlib
import quopri
import re
from collections.abc import Iterator
from email.message import Message

from mailbastion.engines.archives import Budget, Limits, Member, _LimitsLike, open_archive
from mailbastion.engines.base import Finding, FindingKind, Part, ScanSubject
from mailbastion.engines.filetype import ARCHIVE_TYPES, detect

__all__ = ["build_subject"]

ENGINE = "attachments"
_MAX_MESSAGE_DEPTH = 12  # attached messages inside attached messages
_UU_BEGIN = re.compile(rb"^begin(?:-base64)? [0-7]{3,4} (.+?)\r?$", re.MULTILINE)
_BOUNDARY_LINE = re.compile(rb"^--([^\s-][^\r\n]{0,69}?)(--)?[ \t]*\r?$", re.MULTILINE)


class _Walk:
    def __init__(self, limits: _LimitsLike, max_parts: int) -> None:
        self.limits = limits
        self.max_parts = max_parts
        self.budget = Budget(limits)
        self.parts: list[Part] = []
        self.notes: list[Finding] = []
        self._seen: set[tuple[bytes, str]] = set()
        self.stopped = False

    def note(self, kind: FindingKind, name: str, where: str) -> None:
        self.notes.append(Finding(ENGINE, kind, name, where))

    def add(self, part: Part) -> bool:
        key = (hashlib.sha256(part.data).digest(), part.filename)
        if key in self._seen:
            return False
        self._seen.add(key)
        if len(self.parts) >= self.max_parts:
            if not self.stopped:
                self.note(FindingKind.ARCHIVE_LIMIT, f"mime.limit: more than {self.max_parts} parts", part.where)
            self.stopped = True
            return False
        self.parts.append(part)
        return True

    # ---- MIME

    def message(self, msg: Message, prefix: str, depth: int) -> None:
        if depth > _MAX_MESSAGE_DEPTH:
            self.note(FindingKind.ARCHIVE_LIMIT, "mime.limit: attached messages nested too deep", prefix or "message")
            return
        self.entity(msg, prefix or "1", depth)

    def entity(self, part: Message, where: str, depth: int) -> None:
        if self.stopped:
            return
        for defect in getattr(part, "defects", []):
            name = type(defect).__name__
            if name in ("StartBoundaryNotFoundDefect", "CloseBoundaryNotFoundDefect", "MultipartInvariantViolationDefect",
                        "InvalidBase64PaddingDefect", "InvalidBase64CharactersDefect", "MissingHeaderBodySeparatorDefect"):
                self.note(FindingKind.MALFORMED, f"mime.{name}", where)
        if len(part.get_all("Content-Type") or []) > 1 or len(part.get_all("Content-Transfer-Encoding") or []) > 1:
            self.note(FindingKind.MALFORMED, "mime.duplicate_header", where)
        ctype = part.get_content_type()
        if ctype.startswith("multipart/") and not part.is_multipart():
            self.resplit(part, where, depth)  # the boundary never appeared: the parser kept the body as text
            return
        if ctype == "message/partial":
            # RFC 2046 fragments: some clients reassemble them, no scanner sees the whole. Refuse to guess.
            self.note(FindingKind.UNSCANNABLE, "mime.message_partial", where)
        if part.is_multipart():
            children = part.get_payload()
            assert isinstance(children, list)
            if ctype.startswith("message/"):
                for i, child in enumerate(children, 1):
                    self.message(child, f"{where}.{i}", depth + 1)
                return
            if not children or any(type(d).__name__ == "StartBoundaryNotFoundDefect" for d in part.defects):
                self.resplit(part, where, depth)
            if len(children) == 0:
                return
            for i, child in enumerate(children, 1):
                self.entity(child, f"{where}.{i}", depth)
            epilogue = (part.epilogue or "").encode("latin-1", "replace")
            if len(epilogue.strip()) > 16:
                self.text_blob(epilogue, f"{where}.epilogue", depth)
            return
        for data in self.decodings(part):
            self.leaf(part, data, where, depth)

    def resplit(self, part: Message, where: str, depth: int) -> None:
        """A multipart whose declared boundary never appears: split on the boundary lines it has."""
        body = _raw_payload(part)
        found = {m.group(1) for m in _BOUNDARY_LINE.finditer(body)}
        for boundary in sorted(found)[:5]:
            pieces = re.split(rb"(?m)^--" + re.escape(boundary) + rb"(?:--)?[ \t]*\r?$", body)
            for i, piece in enumerate(pieces[1:], 1):
                if piece.strip():
                    sub = email.message_from_bytes(piece.lstrip(b"\r\n"), policy=email.policy.compat32)
                    self.entity(sub, f"{where}.resplit{i}", depth)
        if body.strip():
            self.text_blob(body, f"{where}.body", depth)

    def decodings(self, part: Message) -> list[bytes]:
        """The payload as each plausible transfer encoding decodes it (one, unless headers are ambiguous)."""
        body = _raw_payload(part)
        ctes = [str(v).strip().lower() for v in (part.get_all("Content-Transfer-Encoding") or [])] or ["7bit"]
        out: list[bytes] = []
        for cte in dict.fromkeys(ctes):
            data = _decode(body, cte)
            if data not in out:
                out.append(data)
        return out

    def leaf(self, part: Message, data: bytes, where: str, depth: int) -> None:
        filename = _filename(part)
        ctype = part.get_content_type()
        is_body = not filename and ctype.startswith("text/") and part.get("Content-Disposition", "").lower() != "attachment"
        self.content(data, where, filename, ctype, depth, archive_depth=0, is_body=is_body)
        if is_body and data.endswith(b"\n") and detect(data) not in ("text", "html", "message"):
            # Binary pasted into a body: the final line break is SMTP's, not the file's.
            trimmed = data[:-2] if data.endswith(b"\r\n") else data[:-1]
            self.content(trimmed, f"{where}.trimmed", "", ctype, depth, archive_depth=0, is_body=True)

    def content(self, data: bytes, where: str, filename: str, ctype: str, depth: int, *, archive_depth: int,
                is_body: bool = False) -> None:
        label = where if not filename or where.endswith(filename) else f"{where} {filename}"
        if not self.add(Part(label, data, filename, ctype, archive_depth, is_body)):
            return
        kind = detect(data)
        if kind == "message" or ctype in ("message/rfc822", "message/global"):
            sub = email.message_from_bytes(data, policy=email.policy.compat32)
            if sub.keys():
                self.message(sub, f"{where}.msg", depth + 1)
            return
        if kind in ARCHIVE_TYPES:
            self.archive(data, kind, label, depth, archive_depth)
            return
        if ctype.startswith("text/") or kind in ("text", "html"):
            self.uuencoded(data, where, depth, archive_depth)

    def archive(self, data: bytes, kind: str, label: str, depth: int, archive_depth: int) -> None:
        if archive_depth >= self.limits.max_depth:
            self.note(FindingKind.ARCHIVE_LIMIT, f"archive.limit: nested deeper than {self.limits.max_depth}", label)
            return
        for item in open_archive(data, kind, label, self.budget):
            if isinstance(item, Finding):
                self.notes.append(item)
                if item.kind is FindingKind.ARCHIVE_LIMIT:
                    return
                continue
            assert isinstance(item, Member)
            self.content(item.data, f"{label}/{item.name}", item.name.rsplit("/", 1)[-1] or item.name, "", depth,
                         archive_depth=archive_depth + 1)
            if self.stopped:
                return

    def text_blob(self, data: bytes, where: str, depth: int) -> None:
        self.content(data, where, "", "text/plain", depth, archive_depth=0, is_body=True)

    def uuencoded(self, data: bytes, where: str, depth: int, archive_depth: int) -> None:
        for i, m in enumerate(_UU_BEGIN.finditer(data), 1):
            name = m.group(1).decode("latin-1", "replace").strip()
            decoded = _uudecode(data[m.end():], base64_form=m.group(0).startswith(b"begin-base64"))
            if decoded:
                self.content(decoded, f"{where}.uu{i}", name, "", depth, archive_depth=archive_depth)


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


def _filename(part: Message) -> str:
    names: list[str] = []
    try:
        fn = part.get_filename()
    except Exception:  # noqa: BLE001 - a broken RFC 2231 parameter is still a name to consider
        fn = None
    if fn:
        names.append(str(email.header.make_header(email.header.decode_header(fn))))
    try:
        n = part.get_param("name")
    except Exception:  # noqa: BLE001
        n = None
    if n:
        text = email.utils.collapse_rfc2231_value(n) if isinstance(n, tuple) else str(n)
        text = str(email.header.make_header(email.header.decode_header(text)))
        if text not in names:
            names.append(text)
    # Clients differ on which name wins; the policy judges the riskier, so keep both.
    return " | ".join(names)


def _decode(body: bytes, cte: str) -> bytes:
    if cte == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/=]", b"", body)
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


def build_subject(raw: bytes, limits: _LimitsLike | None = None, *, max_parts: int = 1000) -> ScanSubject:
    """Parse and decode once; never raises for a malformed message (it becomes MALFORMED notes)."""
    walk = _Walk(limits if limits is not None else Limits(), max_parts)
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        walk.message(msg, "", 0)
    except RecursionError:
        walk.note(FindingKind.ARCHIVE_LIMIT, "mime.limit: nesting too deep", "message")
    except Exception as exc:  # noqa: BLE001 - the raw message still goes to every engine
        walk.note(FindingKind.MALFORMED, f"mime.unparsable: {type(exc).__name__}", "message")
    return ScanSubject(raw, tuple(walk.parts), hashlib.sha256(raw).hexdigest(), tuple(walk.notes))


def iter_parts(subject: ScanSubject) -> Iterator[Part]:
    yield from subject.parts
