"""What the anti-virus engines scan: the message's decoded parts (shared), plus archives opened with limits.

`build_subject(message, limits)` reads `SpooledMessage.parts`, the one MIME walk every check shares
(`core/mime_parts.py`: MIME leaves after base64/quoted-printable/uuencode, attached messages, the lenient
readings of broken structure), and adds what only the anti-virus stage does: archives (zip, tar, gzip,
bzip2, xz, 7z, rar) opened down to `max_depth` within the message's `Budget`, and inside their members the
same things the MIME walk looks for (attached messages, uuencoded blocks). Limits, encryption, unreadable
formats and malformed MIME become notes (Findings of the "attachments" engine).
"""

from __future__ import annotations

import hashlib

from mailbastion.core.filetype import ARCHIVE_TYPES, detect
from mailbastion.core.message import SpooledMessage
from mailbastion.core.mime_parts import MAX_MESSAGE_DEPTH, MimeNote, decode_parts, parse_message, uudecode_blocks
from mailbastion.engines.archives import Budget, Limits, Member, _LimitsLike, open_archive
from mailbastion.engines.base import Finding, FindingKind, Part, ScanSubject

__all__ = ["build_subject"]

ENGINE = "attachments"
_NOTE_KINDS = {"malformed": FindingKind.MALFORMED, "limit": FindingKind.ARCHIVE_LIMIT,
               "unscannable": FindingKind.UNSCANNABLE}


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

    def mime_notes(self, notes: tuple[MimeNote, ...]) -> None:
        for n in notes:
            self.note(_NOTE_KINDS.get(n.kind, FindingKind.MALFORMED), n.name, n.where)

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
            self.member(item.data, f"{label}/{item.name}", item.name.rsplit("/", 1)[-1] or item.name, depth,
                        archive_depth + 1)
            if self.stopped:
                return

    def member(self, data: bytes, label: str, filename: str, depth: int, archive_depth: int) -> None:
        """An archive member: scanned itself, and opened like a MIME part would be."""
        kind = detect(data)
        if not self.add(Part(label, data, filename, "", archive_depth, kind=kind)):
            return
        if kind in ARCHIVE_TYPES:
            self.archive(data, kind, label, depth, archive_depth)
        elif kind == "message":
            if depth + 1 > MAX_MESSAGE_DEPTH:
                self.note(FindingKind.ARCHIVE_LIMIT, "mime.limit: attached messages nested too deep", label)
                return
            inner = decode_parts(parse_message(data), prefix=f"{label}.msg", depth=depth + 1,
                                 max_parts=max(self.max_parts - len(self.parts), 1))
            self.mime_notes(inner.notes)
            for p in inner.parts:
                self.mime_part(p.where, p.data, p.filename, p.declared_type, p.sniffed_type, p.is_body, p.depth,
                               archive_depth)
        elif kind in ("text", "html"):
            for i, (name, decoded) in enumerate(uudecode_blocks(data), 1):
                self.member(decoded, f"{label}.uu{i}", name, depth, archive_depth)

    def mime_part(self, where: str, data: bytes, filename: str, declared: str, kind: str, is_body: bool,
                  depth: int, archive_depth: int) -> None:
        if self.stopped or not self.add(Part(where, data, filename, declared, archive_depth, is_body, kind)):
            return
        if kind in ARCHIVE_TYPES:
            self.archive(data, kind, where, depth, archive_depth)


def build_subject(message: SpooledMessage | bytes, limits: _LimitsLike | None = None, *,
                  max_parts: int = 1000) -> ScanSubject:
    """The message's shared decoded parts plus archive members; never raises for a malformed message
    (it becomes MALFORMED notes). CPU-heavy on big messages: call it in a worker thread."""
    msg = message if isinstance(message, SpooledMessage) else SpooledMessage(message)
    walk = _Walk(limits if limits is not None else Limits(), max_parts)
    walk.mime_notes(msg.mime_notes)
    try:
        for p in msg.parts:
            walk.mime_part(p.where, p.data, p.filename, p.declared_type, p.sniffed_type, p.is_body, 0, 0)
            if walk.stopped:
                break
    except RecursionError:
        walk.note(FindingKind.ARCHIVE_LIMIT, "mime.limit: nesting too deep", "message")
        walk.stopped = True
    well_formed = not msg.mime_notes and not walk.stopped
    return ScanSubject(msg.raw, tuple(walk.parts), hashlib.sha256(msg.raw).hexdigest(), tuple(walk.notes),
                       well_formed=well_formed)
