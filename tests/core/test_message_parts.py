"""One parsed message: the MIME tree and the decoded parts are made once, lazily, and shared; the walk
reads what clients read, says which reading each part comes from, and never raises."""

from __future__ import annotations

import base64
import email
import email.message
import email.policy
import email.utils
import threading
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.policy import SMTP

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mailbastion.core.message as message_module
import mailbastion.core.mime_parts as mime_parts
from mailbastion.core.encoded_words import decoded_text
from mailbastion.core.message import SpooledMessage
from mailbastion.core.mime_parts import MAX_MESSAGE_DEPTH, decode_parts, parse_message
from mailbastion.testing import av
from mailbastion.testing.clamd import EICAR


def _mixed() -> bytes:
    inner = EmailMessage(policy=SMTP)
    inner["From"] = "a@example.net"
    inner["Subject"] = "forwarded"
    inner.set_content("inner text\n")
    inner.add_attachment(av.clean_pdf(), maintype="application", subtype="pdf", filename="inner.pdf")
    outer = EmailMessage(policy=SMTP)
    outer["From"] = "b@example.net"
    outer["Subject"] = "outer"
    outer.set_content("Grüße aus Köln\n", charset="iso-8859-1", cte="quoted-printable")
    outer.add_alternative("<html><body><a href='https://x.example'>x</a></body></html>\n", subtype="html")
    outer.add_attachment(av.clean_pdf(), maintype="application", subtype="octet-stream", filename="report.bin")
    outer.add_attachment(inner)
    return outer.as_bytes()


def test_parts_carry_declared_and_sniffed_types_and_bodies_decode_by_charset() -> None:
    m = SpooledMessage(_mixed())
    by_type = {(p.declared_type, p.depth): p for p in m.parts}
    plain = by_type[("text/plain", 0)]
    assert plain.is_body and plain.charset == "iso-8859-1" and plain.text().rstrip() == "Grüße aus Köln"
    html = by_type[("text/html", 0)]
    assert html.is_body and html.sniffed_type == "html" and "https://x.example" in html.text()
    attachment = next(p for p in m.parts if p.filename == "report.bin")
    assert attachment.declared_type == "application/octet-stream" and attachment.sniffed_type == "pdf"
    assert attachment.disposition == "attachment" and not attachment.is_body and attachment.data == av.clean_pdf()
    inner = [p for p in m.parts if p.depth == 1]
    assert {p.filename for p in inner} >= {"inner.pdf"} and any(p.text().rstrip() == "inner text" for p in inner)
    assert all(p.reading == "" for p in m.parts)
    assert m.mime_notes == () and m.mime_complete


def test_parsed_and_parts_are_made_once_even_from_many_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"parse": 0, "walk": 0}
    real_parse, real_walk = message_module.parse_message, message_module.decode_parts
    lock = threading.Lock()

    def counting_parse(raw: bytes):  # type: ignore[no-untyped-def]
        with lock:
            calls["parse"] += 1
        return real_parse(raw)

    def counting_walk(msg):  # type: ignore[no-untyped-def]
        with lock:
            calls["walk"] += 1
        return real_walk(msg)

    monkeypatch.setattr(message_module, "parse_message", counting_parse)
    monkeypatch.setattr(message_module, "decode_parts", counting_walk)
    m = SpooledMessage(_mixed())
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: (m.parts, m.parsed), range(32)))
    assert calls == {"parse": 1, "walk": 1}
    assert all(r[0] is results[0][0] and r[1] is results[0][1] for r in results)
    m.forget_views()
    assert m.parts == results[0][0] and calls == {"parse": 2, "walk": 2}  # rebuilt on demand, same content


def test_uuencoded_block_is_a_part_of_its_own_reading() -> None:
    m = SpooledMessage(av.WRAPPINGS["uuencode"](EICAR, "eicar.com"))
    uu = [p for p in m.parts if p.reading == "uuencode"]
    assert len(uu) == 1 and uu[0].data == EICAR and uu[0].filename == "eicar.com"


def test_broken_boundary_is_resplit_and_noted() -> None:
    m = SpooledMessage(av.WRAPPINGS["broken_boundary"](EICAR, "e.com"))
    assert any(p.reading == "resplit" and p.data == EICAR for p in m.parts)
    standard = [p for p in m.parts if not p.reading]
    assert standard and all(p.is_body for p in standard)  # a strict client shows the body as text
    assert any(n.kind == "malformed" for n in m.mime_notes)


def test_disagreeing_transfer_encodings_give_a_second_reading() -> None:
    raw = (b"From: a@b\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(EICAR))
    m = SpooledMessage(raw)
    assert [p.reading for p in m.parts] == ["", "cte"] and m.parts[1].data == EICAR
    assert any(n.name == "mime.duplicate_header" for n in m.mime_notes)


def test_binary_pasted_into_a_body_is_also_read_without_smtps_line_break() -> None:
    exe = b"MZ\x90\x00" + bytes(range(256))
    m = SpooledMessage(av.WRAPPINGS["inline_body"](exe, "x"))
    trimmed = [p for p in m.parts if p.reading == "trimmed"]
    assert len(trimmed) == 1 and trimmed[0].data == exe and trimmed[0].sniffed_type == "pe"


def test_message_partial_is_noted_unscannable() -> None:
    raw = (b"From: a@b\r\nSubject: part 1\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: message/partial; id="abc@b"; number=1; total=2\r\n\r\nFrom: a@b\r\n\r\nhalf\r\n')
    assert [n.kind for n in SpooledMessage(raw).mime_notes] == ["unscannable"]


def test_limits_make_the_walk_incomplete() -> None:
    many = av.attach([(f"f{i}.txt", "text/plain", b"x%d" % i) for i in range(30)])
    result = decode_parts(parse_message(many), max_parts=10)
    assert len(result.parts) == 10 and not result.complete and result.notes[0].kind == "limit"
    nested = b"hello\r\n"
    for i in range(MAX_MESSAGE_DEPTH + 3):
        nested = av.attach([(f"m{i}.eml", "message/rfc822", nested)]) if i else av.attach([("a.txt", "text/plain",
                                                                                             nested)])
    deep = SpooledMessage(nested)
    assert not deep.mime_complete and any("nested too deep" in n.name for n in deep.mime_notes)


def test_attachment_names_that_disagree_are_both_kept() -> None:
    raw = (b"From: a@b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: application/pdf; name=\"setup.exe\"\r\nContent-Disposition: attachment; "
           b"filename=\"invoice.pdf\"\r\n\r\n%PDF-1.4\r\n--b--\r\n")
    part = SpooledMessage(raw).parts[0]
    assert part.filenames == ("invoice.pdf", "setup.exe")


MIME_PIECES = st.sampled_from([
    b"From: a@b\r\n", b"MIME-Version: 1.0\r\n", b"Content-Type: multipart/mixed; boundary=x\r\n",
    b"Content-Type: message/rfc822\r\n", b"Content-Type: text/plain; charset=\"bogus\"\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Disposition: attachment; filename*=utf-8''%FF%FE.exe\r\n", b"\r\n", b"--x\r\n", b"--x--\r\n",
    b"begin 644 a.exe\r\n", b"M5DU/(5`E0$%06S1<4%I8-30H4%XI-T-#*3=])$5)0T%2+5-404Y$05)$+4%.\r\n", b"end\r\n",
    b"=?utf-8?b?AAAA?=\r\n", b"TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQA==\r\n", b"\x00\xff\xfe", b" folded\r\n",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(MIME_PIECES | st.binary(max_size=40), max_size=40))
def test_no_input_makes_the_walk_raise(pieces: list[bytes]) -> None:
    m = SpooledMessage(b"".join(pieces))
    for p in m.parts:
        assert isinstance(p.data, bytes) and isinstance(p.text(), str)
    assert isinstance(m.mime_complete, bool)


def test_the_boundary_matcher_matches_as_the_feedparsers_expression() -> None:
    """core.mime_parts gives email.feedparser a boundary matcher instead of a regular expression compiled per
    message: on any line it must answer exactly as the expression would."""
    import random
    import re as real_re

    import email.feedparser

    from mailbastion.core import mime_parts

    assert isinstance(email.feedparser.re, mime_parts._FeedparserRe)
    rng = random.Random(9)
    pieces = ["--", "-", " ", "\t", "\r", "\n", "\r\n", "x", "=", "."]
    for boundary in ["simple", "===============1234==", "a.b*c+d?(e)[f]{g}|h^$\\i", "-- odd ", "ünï"]:
        sep = "--" + boundary
        pattern = ("(?P<sep>" + real_re.escape(sep) + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$")
        ours = email.feedparser.re.compile(pattern)
        assert isinstance(ours, mime_parts._BoundaryMatcher)
        theirs = real_re.compile(pattern)
        lines = [sep + "".join(rng.choice(pieces) for _ in range(rng.randrange(6))) for _ in range(3000)]
        lines += [sep[:-1], "x" + sep, "", sep, sep + "--", sep + "--\r\n", sep + " \t\r\n", sep + "\r\n\n"]
        for line in lines:
            a, b = ours.match(line), theirs.match(line)
            assert (a is None) == (b is None), repr(line)
            if a is not None and b is not None:
                for g in ("sep", "end", "ws", "linesep", 0):
                    assert a.group(g) == b.group(g), (repr(line), g)
    # Every other pattern is compiled as it was
    assert email.feedparser.re.compile(r"\r\n|\r|\n") is real_re.compile(r"\r\n|\r|\n")


def test_messages_parse_the_same_with_the_boundary_matcher() -> None:
    import email.feedparser
    import re as real_re

    msgs = [
        b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npre\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--b1  \r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n--b2\r\n\r\na\r\n--b2\r\n\r\nb\r\n--b2--\r\n"
        b"--b1--\r\nepilogue\r\n",
        b"Content-Type: multipart/mixed; boundary=\"x.y+z\"\n\n--x.y+z\n\none\n--x.y+z--trailing\n--x.y+z--\n",
        b"Content-Type: multipart/mixed; boundary=never\r\n\r\n--other\r\n\r\nbody\r\n",
    ]
    shim = email.feedparser.re
    try:
        with_shim = [parse_message(m) for m in msgs]
        email.feedparser.re = real_re  # type: ignore[assignment]
        without = [parse_message(m) for m in msgs]
    finally:
        email.feedparser.re = shim
    for a, b in zip(with_shim, without, strict=True):
        assert a.as_bytes() == b.as_bytes()
        assert [type(d) for p in a.walk() for d in p.defects] == [type(d) for p in b.walk() for d in p.defects]
        assert [p.get_payload() if not p.is_multipart() else None for p in a.walk()] == \
               [p.get_payload() if not p.is_multipart() else None for p in b.walk()]
        assert [p.preamble for p in a.walk()] == [p.preamble for p in b.walk()]
        assert [p.epilogue for p in a.walk()] == [p.epilogue for p in b.walk()]


# -- the parameter pre-check (`_may_have`): the same names and charsets as asking the parser every time --

def _filename_by_parser(part: email.message.Message) -> str:
    names: list[str] = []
    try:
        fn = part.get_filename()
    except Exception:  # noqa: BLE001
        fn = None
    if fn:
        names.append(decoded_text(fn))
    try:
        n = part.get_param("name")
    except Exception:  # noqa: BLE001
        n = None
    if n:
        text = decoded_text(email.utils.collapse_rfc2231_value(n) if isinstance(n, tuple) else str(n))
        if text not in names:
            names.append(text)
    return " | ".join(names)


def _charset_by_parser(part: email.message.Message) -> str:
    try:
        return (part.get_content_charset() or "").lower()
    except Exception:  # noqa: BLE001
        return ""


_PARAMS = st.sampled_from([
    'name="a.pdf"', "NAME=a.exe", "filename=b.txt", 'FileName="c d.zip"', "filename*=utf-8''%E2%82%AC.pdf",
    "filename*0=x; filename*1=.js", "name*0*=utf-8''a; name*1=.scr", "charset=UTF-8", 'CHARSET="iso-8859-1"',
    "charset*=us-ascii'en'utf-8", "format=flowed", "boundary=x", "nom=x", "filenames=x", "x-name=y", "",
    "name", "charset", "=?utf-8?b?YS5leGU=?=", 'name="=?utf-8?q?r=C3=A9sum=C3=A9.pdf?="', "name=a;name=b",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(_PARAMS, max_size=4), st.lists(_PARAMS, max_size=3), st.booleans(), st.booleans())
def test_names_and_charsets_are_what_the_parser_gives(ct: list[str], cd: list[str], with_cd: bool,
                                                      twice: bool) -> None:
    head = "Content-Type: " + "; ".join(["application/octet-stream", *ct]) + "\r\n"
    if with_cd:
        head += "Content-Disposition: " + "; ".join(["attachment", *cd]) + "\r\n"
    if twice:
        head += "Content-Type: text/plain; name=second.exe; charset=koi8-r\r\n"
    part = email.message_from_bytes((head + "\r\nbody\r\n").encode(), policy=email.policy.compat32)
    assert mime_parts._filename(part) == _filename_by_parser(part)
    assert mime_parts._charset(part) == _charset_by_parser(part)
