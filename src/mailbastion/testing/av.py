"""Anti-virus test kit: fakes, the wrappings a sender can put malware in, and sample files made here.

    FakeScanner(vendor="clamav", infected="Eicar-Test-Signature")     # finds it in every message
    FakeScanner(name="icap", raises=EngineUnavailable("down"))        # fails like a dead engine
    WRAPPINGS["zip_nested3"](EICAR, "eicar.com")                       # the raw message bytes

Samples are built at test time (nothing hostile is fetched): a macro-carrying Word document (a
minimal OLE compound file with a VBA project storage), a .docm, an encrypted zip, zip/gzip/7z bombs,
and clean PDF, DOCX, PNG and CSV files.
"""

from __future__ import annotations

import base64
import binascii
import io
import itertools
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP

from mailbastion.engines.base import EngineInfo, Finding, FindingKind, ScanResult, ScanSubject

__all__ = [
    "WRAPPINGS",
    "FakeScanner",
    "clean_docx",
    "clean_pdf",
    "clean_png",
    "docm_with_macro",
    "encrypted_zip",
    "gzip_bomb",
    "ole_with_macro",
    "zip_bomb",
]


@dataclass(eq=False)
class FakeScanner:
    name: str = "clamav"
    vendor: str = "clamav"
    infected: str | None = None  # a signature name found in every message, or in messages containing `marker`
    marker: bytes | None = None
    raises: Exception | None = None
    delay: float = 0.0
    calls: int = 0
    version: str = "1.0"
    signature_date: object = None
    kind: FindingKind = FindingKind.MALWARE
    seen: list[ScanSubject] = field(default_factory=list)
    vendor_signatures: bool | None = None  # None: as the real engine of that name (clamav, icap: yes)

    def __post_init__(self) -> None:
        if self.vendor_signatures is None:
            self.vendor_signatures = self.name in ("clamav", "icap")

    async def scan(self, subject: ScanSubject) -> ScanResult:
        import asyncio

        self.calls += 1
        self.seen.append(subject)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.raises is not None:
            raise self.raises
        if self.infected and (self.marker is None or self.marker in subject.raw
                              or any(self.marker in p.data for p in subject.parts)):
            return ScanResult(self.name, (Finding(self.name, self.kind, self.infected, "message"),))
        return ScanResult(self.name)

    async def info(self) -> EngineInfo:
        if self.raises is not None:
            raise self.raises
        return EngineInfo(self.name, self.vendor, self.version, "1", self.signature_date)  # type: ignore[arg-type]


# ---- wrappings: payload bytes + a file name → a raw message

def _base(subject: str = "document") -> EmailMessage:
    m = EmailMessage(policy=SMTP)
    m["From"] = "sender@example.net"
    m["To"] = "user@example.org"
    m["Subject"] = subject
    m["Message-ID"] = "<test@example.net>"
    return m


def plain_attachment(data: bytes, name: str) -> bytes:
    m = _base()
    m.set_content("Please see the attachment.\n")
    m.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return m.as_bytes()


def inline_body(data: bytes, name: str) -> bytes:
    head = (b"From: sender@example.net\r\nTo: user@example.org\r\nSubject: inline\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
    return head + data + b"\r\n"


def base64_body(data: bytes, name: str) -> bytes:
    head = (b"From: sender@example.net\r\nTo: user@example.org\r\nSubject: single part\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
    return head + base64.encodebytes(data).replace(b"\n", b"\r\n")


def _qp_binary(data: bytes) -> bytes:
    """Binary-safe quoted-printable: every CR and LF encoded, soft line breaks under 76 characters."""
    lines, line = [], b""
    for byte in data:
        token = bytes([byte]) if 33 <= byte <= 126 and byte != 61 else b"=%02X" % byte
        if len(line) + len(token) > 73:
            lines.append(line + b"=")
            line = b""
        line += token
    lines.append(line)
    return b"\r\n".join(lines)


def quoted_printable(data: bytes, name: str) -> bytes:
    body = _qp_binary(data)
    return (b"From: sender@example.net\r\nTo: user@example.org\r\nSubject: qp\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
            b"--b1\r\nContent-Type: application/octet-stream; name=\"" + name.encode() + b"\"\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\nContent-Disposition: attachment\r\n\r\n"
            + body + b"\r\n--b1--\r\n")


def uuencoded(data: bytes, name: str) -> bytes:
    lines = [binascii.b2a_uu(data[i : i + 45]) for i in range(0, len(data), 45)]
    body = b"Here it is:\r\n\r\nbegin 644 " + name.encode() + b"\r\n" + b"".join(
        ln.replace(b"\n", b"\r\n") for ln in lines) + b"`\r\nend\r\n"
    return (b"From: sender@example.net\r\nTo: user@example.org\r\nSubject: uu\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain\r\n\r\n" + body)


def wrong_extension(data: bytes, name: str) -> bytes:
    m = _base("invoice")
    m.set_content("Invoice attached.\n")
    m.add_attachment(data, maintype="application", subtype="pdf", filename="invoice.pdf")
    return m.as_bytes()


def no_name(data: bytes, name: str) -> bytes:
    m = _base()
    m.set_content("see below\n")
    m.add_attachment(data, maintype="application", subtype="octet-stream")
    attachment = m.get_payload()[1]  # type: ignore[index]
    assert isinstance(attachment, EmailMessage)
    del attachment["Content-Disposition"]
    return m.as_bytes()


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in members:
            zf.writestr(n, d)
    return buf.getvalue()


def zipped(data: bytes, name: str) -> bytes:
    m = _base()
    m.set_content("zip attached\n")
    m.add_attachment(_zip([(name, data)]), maintype="application", subtype="zip", filename="files.zip")
    return m.as_bytes()


def zip_nested3(data: bytes, name: str) -> bytes:
    inner = _zip([(name, data)])
    inner = _zip([("level3.zip", inner)])
    inner = _zip([("level2.zip", inner)])
    m = _base()
    m.set_content("nested\n")
    m.add_attachment(inner, maintype="application", subtype="zip", filename="level1.zip")
    return m.as_bytes()


def tar_gz(data: bytes, name: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    m = _base()
    m.set_content("tarball\n")
    m.add_attachment(buf.getvalue(), maintype="application", subtype="gzip", filename="files.tar.gz")
    return m.as_bytes()


def message_in_message(data: bytes, name: str) -> bytes:
    inner = _base("forwarded")
    inner.set_content("original\n")
    inner.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    outer = _base("Fwd: forwarded")
    outer.set_content("see the forwarded message\n")
    outer.add_attachment(inner)  # message/rfc822
    return outer.as_bytes()


def message_in_message_base64(data: bytes, name: str) -> bytes:
    """A forwarded message sent base64-encoded: RFC 2046 forbids it for message/rfc822, clients decode it."""
    inner = _base("forwarded")
    inner.set_content("original\n")
    inner.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return attach([("forwarded.eml", "message/rfc822", inner.as_bytes())], subject="Fwd: forwarded")


def broken_boundary(data: bytes, name: str) -> bytes:
    # The declared boundary never appears; the parts use another one, and there is no closing line.
    b64 = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (b"From: sender@example.net\r\nTo: user@example.org\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"declared-boundary\"\r\n\r\n"
            b"--other-boundary\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
            b"--other-boundary\r\nContent-Type: application/octet-stream; name=\"" + name.encode() + b"\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64)


def rtl_override_name(data: bytes, name: str) -> bytes:
    m = _base()
    m.set_content("report\n")
    m.add_attachment(data, maintype="application", subtype="octet-stream", filename="report\u202efdp.exe")
    return m.as_bytes()


WRAPPINGS: dict[str, Callable[[bytes, str], bytes]] = {
    "plain_attachment": plain_attachment,
    "inline_body": inline_body,
    "base64": base64_body,
    "quoted_printable": quoted_printable,
    "uuencode": uuencoded,
    "wrong_extension": wrong_extension,
    "no_name": no_name,
    "zip": zipped,
    "zip_nested3": zip_nested3,
    "tar_gz": tar_gz,
    "message_in_message": message_in_message,
    "message_in_message_base64": message_in_message_base64,
    "broken_boundary": broken_boundary,
    "rtl_override_name": rtl_override_name,
}


# ---- sample files

def _cfb(streams: list[tuple[str, int, list[int], bytes]]) -> bytes:
    """A minimal OLE compound file (v3). `streams`: (name, type, children indexes as a sibling chain, data).
    Entry 0 is the root storage. Stream data are padded to 4096 bytes so no mini stream is needed."""
    sector = 512
    datas = []
    for _, typ, _, data in streams:
        datas.append(data.ljust(4096, b"\0") if typ == 2 else b"")
    n_dir_sectors = (len(streams) * 128 + sector - 1) // sector
    next_free = 1 + n_dir_sectors
    starts, chains = [], []
    for d in datas:
        if not d:
            starts.append(0xFFFFFFFE)
            continue
        count = (len(d) + sector - 1) // sector
        starts.append(next_free)
        chains.append((next_free, count))
        next_free += count
    total = next_free
    fat = [0xFFFFFFFF] * 128
    fat[0] = 0xFFFFFFFD
    for i in range(n_dir_sectors):
        fat[1 + i] = 2 + i if i < n_dir_sectors - 1 else 0xFFFFFFFE
    for start, count in chains:
        for i in range(count):
            fat[start + i] = start + i + 1 if i < count - 1 else 0xFFFFFFFE
    assert total <= 128
    entries = b""
    # sibling chains: children listed per storage become a right-sibling chain
    right = [0xFFFFFFFF] * len(streams)
    child = [0xFFFFFFFF] * len(streams)
    for idx, (_, _, kids, _) in enumerate(streams):
        if kids:
            child[idx] = kids[0]
            for a, b in itertools.pairwise(kids):
                right[a] = b
    for idx, (name, typ, _, _) in enumerate(streams):
        raw_name = name.encode("utf-16-le") + b"\0\0"
        entries += struct.pack(
            "<64sHBBIII16sIQQIQ", raw_name.ljust(64, b"\0"), len(raw_name), typ, 1, 0xFFFFFFFF, right[idx],
            child[idx], b"\0" * 16, 0, 0, 0, starts[idx] if typ == 2 else 0xFFFFFFFE, len(datas[idx]),
        )
    entries = entries.ljust(n_dir_sectors * sector, b"\0")
    difat = [0] + [0xFFFFFFFF] * 108
    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII", bytes.fromhex("D0CF11E0A1B11AE1"), b"\0" * 16, 0x3E, 3, 0xFFFE, 9, 6, b"\0" * 6,
        0, 1, 1, 0, 4096, 0xFFFFFFFE, 0, 0xFFFFFFFE, 0,
    ) + struct.pack("<109I", *difat)
    body = b"".join(d for d in datas if d)
    return header + struct.pack("<128I", *fat) + entries + body


def ole_with_macro() -> bytes:
    """A Word-like OLE file with a VBA project (PROJECT stream and VBA/dir): olevba reports macros."""
    project = b'ID="{00000000-0000-0000-0000-000000000000}"\r\nDocument=ThisDocument/&H00000000\r\nName="Project"\r\n'
    return _cfb([
        ("Root Entry", 5, [1, 3], b""),
        ("WordDocument", 2, [], b"\xec\xa5" + b"\0" * 100),
        ("PROJECT", 2, [], project),
        ("Macros", 1, [2, 4], b""),
        ("VBA", 1, [5, 6, 7], b""),
        ("dir", 2, [], b"\x01" + b"\0" * 50),
        ("_VBA_PROJECT", 2, [], b"\xcc\x61\xff\xff\x00"),
        ("ThisDocument", 2, [], b"Attribute VB_Name = \"ThisDocument\"\r\nSub AutoOpen()\r\nShell \"calc\"\r\nEnd Sub\r\n"),
    ])


def docm_with_macro() -> bytes:
    ct = (b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
          b'<Override PartName="/word/vbaProject.bin" ContentType="application/vnd.ms-office.vbaProject"/></Types>')
    return _zip([("[Content_Types].xml", ct), ("word/document.xml", b"<w:document/>"),
                 ("word/vbaProject.bin", ole_with_macro())])


def clean_docx() -> bytes:
    ct = (b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
          b'content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/'
          b'document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main'
          b'+xml"/></Types>')
    rels = (b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
            b'2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            b'relationships/officeDocument" Target="word/document.xml"/></Relationships>')
    doc = (b'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
           b'wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Quarterly report</w:t></w:r></w:p></w:body>'
           b'</w:document>')
    return _zip([("[Content_Types].xml", ct), ("_rels/.rels", rels), ("word/document.xml", doc)])


def clean_pdf(javascript: bool = False) -> bytes:
    js = b"/OpenAction << /S /JavaScript /JS (app.alert('x')) >>" if javascript else b""
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R " + js + b">>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length 44 >>\nstream\nBT /F1 24 Tf 100 700 Td (Hello) Tj ET\nendstream",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + o + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def clean_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\0" + b"\xff\x80\x00" * 8 for _ in range(8))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def encrypted_zip(data: bytes = b"secret payload", name: str = "invoice.pdf") -> bytes:
    """A zip whose member is marked encrypted (ZipCrypto flag): nothing can read it without the password."""
    raw = _zip([(name, data)])
    # Set bit 0 (encrypted) in the local header and the central directory entry.
    b = bytearray(raw)
    b[6] |= 0x01
    cd = b.find(b"PK\x01\x02")
    b[cd + 8] |= 0x01
    return bytes(b)


def zip_bomb(size: int = 300 * 1024 * 1024) -> bytes:
    """One member of `size` zero bytes, deflated (~1000:1), streamed so building it stays small."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("zeros.bin", "w", force_zip64=True) as fh:
        block = b"\0" * (1024 * 1024)
        for _ in range(size // len(block)):
            fh.write(block)
    return buf.getvalue()


def gzip_bomb(size: int = 300 * 1024 * 1024) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1024 * 1024)
    out = [z.compress(block) for _ in range(size // len(block))]
    out.append(z.flush())
    return b"".join(out)


def attach(files: list[tuple[str, str, bytes]], subject: str = "files") -> bytes:
    """A message with these (filename, mime type, data) attachments."""
    m = _base(subject)
    m.set_content("Hello,\n\nplease find the files attached.\n")
    for name, ctype, data in files:
        maintype, subtype = ctype.split("/", 1)
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return m.as_bytes()
