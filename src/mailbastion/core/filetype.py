"""File types decided by content, not by name; and the risk a file name carries on its own.

`detect(data)` looks at magic bytes and structure (PE, ELF, OLE2 and its CLSID, OOXML members,
ISO 9660, LNK, archives, PDF). `name_type(filename)` says what Windows would do with the name when
clicked: a script extension is dangerous whatever the bytes say. The policy refuses a part when
either is a blocked type, so renaming `setup.exe` to `invoice.pdf` changes nothing. A text that starts
with `#!` and carries no Windows script command is a "unix_script": opening it runs nothing, so the
default policy does not block it (a site can); its name still can (`tidy.sh` is a "script" by name).

It lives in `core/` because every reader of a message's parts needs it (`SpooledMessage.parts` carries
each part's sniffed type for the anti-virus engines and the spam features alike). Standard library only;
olefile (a dependency of oletools) is imported lazily for OLE2 files.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile

__all__ = ["ARCHIVE_TYPES", "OFFICE_TYPES", "detect", "name_type", "suspicious_name"]

ARCHIVE_TYPES = frozenset({"zip", "gzip", "bzip2", "xz", "tar", "7z", "rar", "cab", "arj", "cpio", "lzh", "ace"})
OFFICE_TYPES = frozenset({"ole", "ooxml", "ooxml_macro", "rtf", "odf", "office_xml"})

_EXTENSIONS: dict[str, str] = {}
for _kind, _exts in {
    "pe": "exe com scr pif cpl dll sys ocx drv efi xll wll",
    "msi": "msi msp mst appx appxbundle msix msixbundle",
    "script": "bat cmd vbs vbe js jse wsf wsh wsc ps1 ps1xml psc1 psm1 psd1 sh bash py pyw pl rb "
              "sct ws vb mjs msh msh1 msh2 mshxml scpt applescript command csh ksh",
    "html_application": "hta",
    "shortcut": "lnk url scf website pif settingcontent-ms library-ms searchconnector-ms desktop appref-ms",
    "disk_image": "iso img vhd vhdx dmg udf vmdk",
    "java": "jar class jnlp",
    "chm": "chm hlp",
    "registry": "reg",
    "office_addin": "xla xlam ppa ppam wbk vsto gadget application inf msc",
    "elf": "elf",
    "macho": "app",
}.items():
    for _e in _exts.split():
        _EXTENSIONS[_e] = _kind

_MSI_CLSIDS = {"000C1084-0000-0000-C000-000000000046", "000C1086-0000-0000-C000-000000000046"}
_BIDI_CONTROLS = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
                  "\u200e", "\u200f", "\u061c"}
_SCRIPT_HINTS = re.compile(
    rb"(wscript\.shell|createobject\s*\(|powershell(\.exe)?\s+-|invoke-expression|\biex\s*\(|"
    rb"frombase64string|new-object\s+net\.webclient|activexobject|shell\.application|@echo\s+off|"
    rb"start-process|downloadstring|certutil\s+-decode|bitsadmin\s+/transfer|mshta\s)"
)  # matched against lower-cased text
# A literal every alternative of _SCRIPT_HINTS contains: the regex runs only on text holding one (most text holds
# none, and a case-insensitive alternation over every position is the dearest step of sniffing a text part).
_SCRIPT_WORDS = (b"wscript", b"createobject", b"powershell", b"invoke-expression", b"iex", b"frombase64string",
                 b"new-object", b"activexobject", b"shell.application", b"@echo", b"start-process", b"downloadstring",
                 b"certutil", b"bitsadmin", b"mshta")


def name_type(filename: str) -> str | None:
    """The blocked type a name implies (the last extension, and the one before spaces or dots)."""
    if not filename:
        return None
    clean = "".join(c for c in filename if c not in _BIDI_CONTROLS)
    clean = clean.strip().rstrip(". ").lower()  # Windows ignores trailing dots and spaces
    if "." not in clean:
        return None
    ext = clean.rsplit(".", 1)[1]
    return _EXTENSIONS.get(ext)


def suspicious_name(filename: str) -> str | None:
    """Why a name deceives a reader: a right-to-left override, or a double extension hiding a program."""
    if any(c in _BIDI_CONTROLS for c in filename):
        return "bidi_override"
    norm = unicodedata.normalize("NFKC", filename).lower()
    m = re.search(r"\.(pdf|docx?|xlsx?|jpe?g|png|txt|zip)[\s._-]{0,40}\.([a-z0-9]{2,5})$", norm)
    if m and _EXTENSIONS.get(m.group(2)):
        return "double_extension"
    if re.search(r"\s{8,}\.\w+$", filename):
        return "padded_extension"
    return None


def detect(data: bytes) -> str:
    """The type of `data` by content. Unknown binary is "binary", unknown text is "text"."""
    head = data[:4096]
    if head.startswith(b"MZ"):
        return "pe"
    if head.startswith(b"\x7fELF"):
        return "elf"
    if head[:4] in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe"):
        return "macho"
    if head.startswith(b"\xca\xfe\xba\xbe"):
        return "java"  # Java class or a universal Mach-O: both programs
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return _ole_type(data)
    if head.startswith(b"L\x00\x00\x00\x01\x14\x02\x00"):
        return "shortcut"
    if head.startswith(b"ITSF"):
        return "chm"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return _zip_type(data)
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and len(head) > 4 and head[3:4].isdigit():
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if head.startswith(b"Rar!\x1a\x07"):
        return "rar"
    if head.startswith(b"MSCF"):
        return "cab"
    if head.startswith(b"\x60\xea"):
        return "arj"
    if head.startswith((b"070707", b"070701", b"070702", b"\xc7\x71", b"\x71\xc7")):
        return "cpio"
    if head.startswith(b"**ACE**", 7):
        return "ace"
    if len(head) >= 7 and head[2:7] in (b"-lh5-", b"-lh6-", b"-lh7-", b"-lh0-"):
        return "lzh"
    if len(data) > 262 and data[257:262] == b"ustar":
        return "tar"
    if _is_disk_image(data):
        return "disk_image"
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"{\\rt"):
        return "rtf"
    if head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")) or head[:4] in (
        b"II*\x00", b"MM\x00*") or (head.startswith(b"RIFF") and head[8:12] == b"WEBP"):
        return "image"
    return _text_type(head)


def _ole_type(data: bytes) -> str:
    try:
        import olefile

        ole = olefile.OleFileIO(io.BytesIO(data))
        try:
            clsid = (ole.root.clsid or "").upper()
            if clsid in _MSI_CLSIDS:
                return "msi"
            if ole.exists("EncryptedPackage"):
                return "office_encrypted"
        finally:
            ole.close()
    except Exception:  # noqa: BLE001 - a broken OLE file is still an OLE file to the scanners
        pass
    return "ole"


def _zip_type(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = {n.lower() for n in zf.namelist()[:5000]}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError):
        return "zip"
    if "[content_types].xml" in names:
        if any(n.endswith(("vbaproject.bin", "vbadata.xml")) or "/macrosheets/" in n for n in names):
            return "ooxml_macro"
        if any(n.startswith("appxmetadata/") or n == "appxmanifest.xml" for n in names):
            return "msi"
        return "ooxml"
    if "mimetype" in names and any(n == "content.xml" for n in names):
        return "odf"
    if "meta-inf/manifest.mf" in names and any(n.endswith(".class") for n in names):
        return "java"
    return "zip"


def _is_disk_image(data: bytes) -> bool:
    for off in (0x8001, 0x8801, 0x9001):
        if data[off : off + 5] in (b"CD001", b"BEA01", b"NSR02", b"NSR03"):
            return True
    if data[:8] == b"conectix" or data[-512:-504] == b"conectix":  # VHD
        return True
    if data[:8] == b"vhdxfile" or data[:4] == b"KDMV":  # VHDX, VMDK
        return True
    if len(data) >= 512 and data[-512:-508] == b"koly":  # Apple DMG
        return True
    boot = data[:512]
    return len(data) >= 512 and boot[510:512] == b"\x55\xaa" and (  # a raw FAT/NTFS floppy or disk image
        b"FAT12" in boot or b"FAT16" in boot or b"FAT32" in boot or boot[3:11] == b"NTFS    ")


def _text_type(head: bytes) -> str:
    if b"\x00" in head[:1024]:
        return "binary"
    low = head[:2048].lower().lstrip(b"\xef\xbb\xbf \t\r\n")
    if low.startswith(b"#!"):
        # A Unix script by its first line (#!/bin/sh, #!/usr/bin/perl). Opening it from a mail client runs
        # nothing: Windows has no handler for it and macOS and Linux save attachments without the execute bit.
        # What a click does run is decided by the name (name_type: .sh, .py, .pl, .command ... stay "script").
        # A "#!" file that carries Windows script commands is a "script" all the same.
        return "script" if _windows_script(head) else "unix_script"
    if b"<hta:application" in low:
        return "html_application"
    if low.startswith((b"[internetshortcut]", b"[shell]", b"[{000214a0")):
        return "shortcut"
    if low.startswith((b"regedit4", b"windows registry editor")):
        return "registry"
    if low.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<svg")):
        return "html"
    if low.startswith(b"<?xml") and b"<w:worddocument" in low or b"<?mso-application" in low:
        return "office_xml"
    if _windows_script(head):
        return "script"
    if _looks_like_message(low):
        return "message"
    return "text"


def _windows_script(head: bytes) -> bool:
    lowered = head.lower()
    return any(w in lowered for w in _SCRIPT_WORDS) and _SCRIPT_HINTS.search(lowered) is not None


def _looks_like_message(low: bytes) -> bool:
    lines = low.split(b"\n", 30)[:30]
    keys = {ln.split(b":", 1)[0].strip() for ln in lines if b":" in ln[:40]}
    return len(keys & {b"from", b"to", b"subject", b"date", b"received", b"mime-version", b"message-id",
                       b"content-type", b"return-path"}) >= 3
