"""Our attachment policy, as an engine: what each decoded part is, by content, and whether we allow it.

Reports, per part: BLOCKED (executables, scripts, disk images, shortcuts, ... by content, or by a
name Windows would run), MACRO (Office documents with VBA or XLM macros, found by oletools),
PDF_JAVASCRIPT (a PDF with /JavaScript, /JS, /Launch, even in compressed object streams),
ENCRYPTED (a password-protected document), SUSPICIOUS (a bidi override or a double extension in
the name), plus everything unpacking noted (archive limits, encryption, malformed MIME). The
check turns each kind into an action by configuration.

Encrypted MAIL (S/MIME enveloped-data, OpenPGP) is not an ENCRYPTED finding: that kind is for password-
protected archives and documents (a classic malware carrier, quarantined by default), while encrypted mail
is ordinary business between people who hold keys. `encrypted_mail_kind(part)` recognises such parts; the
parts are opaque here (nothing can be scanned inside them on the gateway, which holds no private keys), and
the encryption check (`crypto/inbound.py`) reports them as ENCRYPTED_SMIME / ENCRYPTED_PGP with its own
setting (`encryption.inbound_encrypted`). The recipient's mail client decrypts, and the workstation's
anti-virus scans what it shows.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable

from mailbastion import __version__
from mailbastion.core.filetype import OFFICE_TYPES, detect, name_type, suspicious_name
from mailbastion.core.threads import run_blocking
from mailbastion.engines.base import (EngineInfo, Finding, FindingKind, Part, ScanResult, ScanSubject, is_small,
                                     unique)

__all__ = ["DEFAULT_BLOCKED", "AttachmentPolicy", "encrypted_mail_kind"]

DEFAULT_BLOCKED = frozenset({
    "pe", "elf", "macho", "msi", "script", "shortcut", "disk_image", "html_application", "java", "chm",
    "registry", "office_addin",
})
# /JS must be followed by its value (a string, hex string, array or reference): a bare "/JS" also turns up
# by chance in compressed binary streams.
_PDF_ACTIVE = re.compile(rb"/(JavaScript|Launch)\b|/(JS)\s*(?:[(<\[]|\d+\s+\d+\s+R)")
_PDF_STREAM_BODY = re.compile(rb"stream\r?\n.*?endstream", re.DOTALL)
_PDF_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_PDF_STREAM = re.compile(rb"stream\r?\n")
_PDF_INFLATE_BUDGET = 8 * 1024 * 1024
_PDF_WORDS = {b"JavaScript": "pdf.javascript", b"JS": "pdf.javascript", b"Launch": "pdf.launch"}
# CMS content types (DER OIDs, RFC 5652 / RFC 5083) that carry encrypted content, as they appear near the start
# of a ContentInfo: envelopedData 1.2.840.113549.1.7.3, authEnvelopedData 1.2.840.113549.1.9.16.1.23.
_CMS_ENCRYPTED = (bytes.fromhex("06092a864886f70d010703"), bytes.fromhex("060b2a864886f70d0109100117"))
_SMIME_TYPES = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})
_PGP_ARMOR = b"-----BEGIN PGP MESSAGE-----"


def encrypted_mail_kind(declared_type: str, filename: str, data: bytes) -> str:
    """"smime" for a CMS enveloped-data part (application/pkcs7-mime, or a .p7m by name), "pgp" for PGP/MIME
    or an inline PGP message, "" otherwise. Looks at the declared type, the name and the first bytes only
    (a `Part` or a `core.mime_parts.MessagePart` gives all three). Such a part is judged like any other
    here (by name: a CMS blob is no executable type); the encryption check reports it."""
    declared = declared_type
    head = data[:64]
    if declared in _SMIME_TYPES or filename.lower().endswith(".p7m"):
        return "smime" if any(oid in data[:32] for oid in _CMS_ENCRYPTED) else ""
    if declared == "application/pgp-encrypted":
        return "pgp"
    if head.lstrip().startswith(_PGP_ARMOR):
        return "pgp"
    return ""


class AttachmentPolicy:
    name = "attachments"
    vendor = "mailbastion"
    vendor_signatures = False  # a policy on file types, no malware signatures

    def __init__(self, *, blocked_types: Iterable[str] = DEFAULT_BLOCKED, check_macros: bool = True) -> None:
        self.blocked_types = frozenset(blocked_types)
        self.check_macros = check_macros

    async def info(self) -> EngineInfo:
        from importlib.metadata import version

        return EngineInfo(self.name, self.vendor, __version__, f"oletools {version('oletools')}", None)

    def scan_inline(self, subject: ScanSubject) -> ScanResult:
        """`scan` without the worker thread, for a small subject (engines.base.is_small)."""
        return ScanResult(self.name, self.judge(subject))

    async def scan(self, subject: ScanSubject) -> ScanResult:
        if is_small(subject):
            return self.scan_inline(subject)
        findings = await run_blocking(self.judge, subject)
        return ScanResult(self.name, findings)

    def judge(self, subject: ScanSubject) -> tuple[Finding, ...]:
        out: list[Finding] = list(subject.notes)
        for part in subject.parts:
            out.extend(self.judge_part(part))
        return unique(out)

    def judge_part(self, part: Part) -> list[Finding]:
        out: list[Finding] = []
        kind = part.kind or detect(part.data)
        where = part.where
        names = [n.strip() for n in part.filename.split(" | ") if n.strip()]
        # A text body that merely mentions PowerShell is not a script file: bodies are judged by binary types only.
        if kind in self.blocked_types and not (part.is_body and kind in ("text", "script", "unix_script", "html")):
            out.append(Finding(self.name, FindingKind.BLOCKED, f"type.{kind}", where))
        for n in names:
            by_name = name_type(n)
            if by_name and by_name in self.blocked_types:
                out.append(Finding(self.name, FindingKind.BLOCKED, f"name.{by_name}", where))
            why = suspicious_name(n)
            if why:
                out.append(Finding(self.name, FindingKind.SUSPICIOUS, f"name.{why}", where))
        if kind == "office_encrypted" or (kind == "ole" and _is_encrypted_office(part.data)):
            out.append(Finding(self.name, FindingKind.ENCRYPTED, "document.encrypted", where))
        elif self.check_macros and (kind in OFFICE_TYPES or kind == "ooxml_macro"):
            macro = _macros(part.data, names[0] if names else "document")
            if macro is None and kind == "ooxml_macro":
                macro = "office.vba_project"  # the package holds a VBA project even if olevba cannot read it
            if macro:
                out.append(Finding(self.name, FindingKind.MACRO, macro, where))
        elif kind == "pdf":
            active = pdf_active_content(part.data)
            if active:
                out.append(Finding(self.name, FindingKind.PDF_JAVASCRIPT, active, where))
        return out


def _is_encrypted_office(data: bytes) -> bool:
    """Legacy Office encryption (RC4, XOR) that olefile alone does not show; msoffcrypto comes with oletools."""
    try:
        import io

        import msoffcrypto  # type: ignore[import-untyped]

        return bool(msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted())
    except Exception:  # noqa: BLE001 - not an Office file msoffcrypto knows: not encrypted as far as we can tell
        return False


def _macros(data: bytes, filename: str) -> str | None:
    """'office.vba_macro' / 'office.xlm_macro' when oletools finds macros; None otherwise."""
    try:
        from oletools.olevba import VBA_Parser

        parser = VBA_Parser(filename, data=data)
    except Exception:  # noqa: BLE001 - not an Office container olevba can read: nothing to report
        return None
    try:
        if parser.detect_vba_macros():
            return "office.vba_macro"
        detect_xlm = getattr(parser, "detect_xlm_macros", None)
        if detect_xlm is not None and detect_xlm():
            return "office.xlm_macro"
    except Exception:  # noqa: BLE001 - a parse failure inside a document we know is Office
        return "office.unparsable"
    finally:
        parser.close()
    return None


def pdf_active_content(data: bytes) -> str | None:
    """Find /JavaScript, /JS or /Launch in a PDF, through #xx name escapes and Flate object streams."""

    def search(blob: bytes) -> str | None:
        norm = _PDF_NAME_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), blob)
        for m in _PDF_ACTIVE.finditer(norm):
            word = _PDF_WORDS.get(m.group(1) or m.group(2))
            if word:
                return word
        return None

    found = search(_PDF_STREAM_BODY.sub(b"stream\nendstream", data))  # dictionaries only, not stream bytes
    if found:
        return found
    budget = _PDF_INFLATE_BUDGET
    for m in _PDF_STREAM.finditer(data):
        if budget <= 0:
            break
        d = zlib.decompressobj()
        try:
            chunk = d.decompress(data[m.end() : m.end() + budget], budget)
        except zlib.error:
            continue
        budget -= len(chunk)
        found = search(chunk)
        if found:
            return found
    return None
