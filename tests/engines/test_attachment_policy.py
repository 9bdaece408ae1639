"""The attachment policy engine and the MIME walk it reads: types by content, names, macros, PDF JS."""

from __future__ import annotations

import pytest

from mailbastion.core.filetype import detect, name_type, suspicious_name
from mailbastion.engines.attachments import AttachmentPolicy, pdf_active_content
from mailbastion.engines.base import FindingKind
from mailbastion.engines.mime_walk import build_subject
from mailbastion.testing import av
from mailbastion.testing.clamd import EICAR

PE = b"MZ\x90\x00" + b"\0" * 200


def kinds(raw: bytes) -> dict[FindingKind, set[str]]:
    out: dict[FindingKind, set[str]] = {}
    for f in AttachmentPolicy().judge(build_subject(raw)):
        out.setdefault(f.kind, set()).add(f.name)
    return out


@pytest.mark.parametrize("data,expected", [
    (PE, "pe"), (b"\x7fELF\x02", "elf"), (av.clean_pdf(), "pdf"), (av.clean_png(), "image"),
    (av.clean_docx(), "ooxml"), (av.docm_with_macro(), "ooxml_macro"), (av.ole_with_macro(), "ole"),
    (av._zip([("a", b"b")]), "zip"), (b"\x1f\x8b\x08\0", "gzip"), (b"7z\xbc\xaf\x27\x1c\0", "7z"),
    (b"Rar!\x1a\x07\x01\0", "rar"), (b"L\x00\x00\x00\x01\x14\x02\x00rest", "shortcut"),
    (b"[InternetShortcut]\r\nURL=file://x", "shortcut"), (b"#!/bin/sh\nrm -rf /", "unix_script"),
    (b"#!/usr/bin/perl -w\nprint 1;\n", "unix_script"), (b"#!/bin/sh\npowershell -enc AAAA\n", "script"),
    (b'Set s = CreateObject("WScript.Shell")', "script"), (b"<html><hta:application>", "html_application"),
    (b"\0" * 0x8001 + b"CD001" + b"\0" * 100, "disk_image"), (b"quarter,revenue\n", "text"),
])
def test_detect_by_content(data: bytes, expected: str) -> None:
    assert detect(data) == expected


def test_names() -> None:
    assert name_type("invoice.pdf.exe") == "pe"
    assert name_type("run.JS ") == "script"
    assert name_type("report.pdf") is None
    assert suspicious_name("report\u202efdp.exe") == "bidi_override"
    assert suspicious_name("invoice.pdf.scr") == "double_extension"


def test_exe_renamed_as_pdf_is_blocked_by_content() -> None:
    found = kinds(av.WRAPPINGS["wrong_extension"](PE, "x"))
    assert "type.pe" in found[FindingKind.BLOCKED]


def test_script_name_blocked_even_if_content_is_text() -> None:
    found = kinds(av.attach([("update.js", "text/plain", b"var x = 1;")]))
    assert "name.script" in found[FindingKind.BLOCKED]


SHELL_SCRIPT = b"#!/bin/sh\n# sort the spool by size\nls -S /var/spool | head\n"


def test_a_unix_script_is_not_refused_unless_its_name_runs_or_the_site_says_so() -> None:
    """A #! script mailed to a list (easy_ham/00993 and /01561 of the SpamAssassin corpus: `swasort`, `rotate`)
    runs nothing when opened, so the default policy lets it through; a name Windows or macOS would run is
    refused as before, and a site that wants no scripts at all adds "unix_script" to its blocked types."""
    plain = av.attach([("rotate", "application/x-java-applet", SHELL_SCRIPT)])
    assert FindingKind.BLOCKED not in kinds(plain)
    assert "name.script" in kinds(av.attach([("rotate.sh", "application/octet-stream", SHELL_SCRIPT)]))[
        FindingKind.BLOCKED]
    strict = AttachmentPolicy(blocked_types={"pe", "script", "unix_script"})
    assert {f.name for f in strict.judge(build_subject(plain))} == {"type.unix_script"}
    dropper = av.attach([("notes", "application/octet-stream",
                          b"#!/bin/sh\npowershell -w hidden -enc SQBFAFgA\n")])
    assert "type.script" in kinds(dropper)[FindingKind.BLOCKED]


def test_rtl_override_is_suspicious_and_blocked() -> None:
    found = kinds(av.WRAPPINGS["rtl_override_name"](b"plain text", "x"))
    assert "name.bidi_override" in found[FindingKind.SUSPICIOUS]
    assert "name.pe" in found[FindingKind.BLOCKED]


def test_macros_found_by_oletools() -> None:
    assert kinds(av.attach([("a.doc", "application/msword", av.ole_with_macro())]))[FindingKind.MACRO]
    assert kinds(av.attach([("a.docm", "application/octet-stream", av.docm_with_macro())]))[FindingKind.MACRO]


def test_pdf_javascript_even_escaped_or_compressed() -> None:
    assert pdf_active_content(av.clean_pdf(javascript=True)) == "pdf.javascript"
    assert pdf_active_content(b"%PDF-1.4 << /S /J#61vaScript /JS (x) >>") == "pdf.javascript"
    import zlib

    hidden = b"%PDF-1.5\n5 0 obj << /Type /ObjStm /Filter /FlateDecode >>\nstream\n" + zlib.compress(
        b"<< /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >>") + b"\nendstream"
    assert pdf_active_content(hidden) == "pdf.javascript"
    assert pdf_active_content(av.clean_pdf()) is None


def test_clean_attachments_have_no_findings() -> None:
    raw = av.attach([("report.pdf", "application/pdf", av.clean_pdf()),
                     ("notes.docx", "application/octet-stream", av.clean_docx()),
                     ("chart.png", "image/png", av.clean_png()), ("figures.csv", "text/csv", b"a,b\n1,2\n")])
    assert kinds(raw) == {}


def test_encrypted_and_bomb_notes_from_the_walk() -> None:
    found = kinds(av.attach([("x.zip", "application/zip", av.encrypted_zip())]))
    assert FindingKind.ENCRYPTED in found


@pytest.mark.parametrize("wrapping", sorted(av.WRAPPINGS))
def test_every_wrapping_decodes_to_the_exact_file(wrapping: str) -> None:
    subject = build_subject(av.WRAPPINGS[wrapping](EICAR, "eicar.com"))
    if wrapping == "inline_body":  # text in a body keeps SMTP's final line break
        assert any(p.data.rstrip(b"\r\n") == EICAR for p in subject.parts)
    else:
        assert any(p.data == EICAR for p in subject.parts), [p.where for p in subject.parts]


def test_broken_mime_is_noted() -> None:
    subject = build_subject(av.WRAPPINGS["broken_boundary"](EICAR, "e.com"))
    assert any(n.kind is FindingKind.MALFORMED for n in subject.notes)


def test_duplicate_transfer_encoding_decoded_both_ways() -> None:
    import base64

    raw = (b"From: a@b\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(EICAR))
    subject = build_subject(raw)
    assert any(p.data == EICAR for p in subject.parts)
    assert any(n.name == "mime.duplicate_header" for n in subject.notes)


def test_nesting_depth_limit() -> None:
    from mailbastion.engines.archives import Limits

    data = EICAR
    for i in range(6):
        data = av._zip([(f"l{i}.zip" if i else "e.com", data)])
    subject = build_subject(av.attach([("deep.zip", "application/zip", data)]), Limits(max_depth=3))
    assert any(n.kind is FindingKind.ARCHIVE_LIMIT for n in subject.notes)


def test_part_count_limit() -> None:
    raw = av.attach([(f"f{i}.txt", "text/plain", b"x%d" % i) for i in range(30)])
    subject = build_subject(raw, max_parts=10)
    assert len(subject.parts) == 10 and any(n.kind is FindingKind.ARCHIVE_LIMIT for n in subject.notes)


def test_message_partial_is_unscannable() -> None:
    raw = (b"From: a@b\r\nSubject: part 1\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: message/partial; id="abc@b"; number=1; total=2\r\n\r\nFrom: a@b\r\n'
           b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nWDVPIVAl\r\n")
    assert FindingKind.UNSCANNABLE in kinds(raw)


def test_encrypted_ooxml_document() -> None:
    ole = av._cfb([("Root Entry", 5, [1, 2], b""), ("EncryptionInfo", 2, [], b"\x04\x00\x04\x00" + b"\0" * 40),
                   ("EncryptedPackage", 2, [], b"\0" * 64)])
    found = kinds(av.attach([("salary.xlsx", "application/octet-stream", ole)]))
    assert "document.encrypted" in found[FindingKind.ENCRYPTED]
