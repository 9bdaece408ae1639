"""Inputs that made the MIME readers quadratic or raise (a sweep of the readers outside the spam stage, issue 8's
ninth pass: docs/spam-quality.md, "Ninth session"). Each runs under a timeout: linear is milliseconds, the
quadratic readings took seconds to minutes."""

from __future__ import annotations

import binascii
import email.message

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbastion.core import mime_parts
from mailbastion.core.message import SpooledMessage
from mailbastion.core.mime_parts import MessagePart, uudecode_blocks
from mailbastion.spam.features import extract_bytes


@pytest.mark.timeout(60)
def test_begin_lines_without_end_are_read_once() -> None:
    """20,000 "begin" lines and no "end" (260 KB): each block was decoded to the end of the data, quadratically
    (4,000 took 6.6 s; these would take minutes); now each stops at the next begin line. The anti-virus stage
    reads these parts on the event loop."""
    raw = b"From: a@b.example\r\n\r\n" + b"begin 644 x\r\n" * 20_000
    assert SpooledMessage(raw).parts is not None
    assert uudecode_blocks(raw.split(b"\r\n\r\n", 1)[1]) == []


def test_a_text_that_only_says_begin_is_no_block_and_no_error() -> None:
    """The word "begin" with no begin line after it: no block (a first form of the bounded reading raised
    ValueError here, which the walk reported as a malformed message: AV_MIME_MALFORMED on an ordinary ham)."""
    assert uudecode_blocks(b"We begin at nine.\nbegin the meeting\n") == []
    raw = b"From: a@b.example\r\nSubject: agenda\r\n\r\nWe begin at nine.\r\n"
    assert SpooledMessage(raw).parts is not None
    assert mime_parts.decode_parts(SpooledMessage(raw).parsed).notes == ()


def test_uuencoded_blocks_are_read_as_before() -> None:
    encoded = b"".join(binascii.b2a_uu(b"hello world " * 3) for _ in range(3))
    text = b"text\nbegin 644 a.txt\n" + encoded + b"end\nmore\nbegin 600 b.bin\n" + encoded + b"end\n"
    assert uudecode_blocks(text) == [("a.txt", b"hello world " * 9), ("b.bin", b"hello world " * 9)]
    # A block that never ends stops where the next one begins, instead of decoding that one's lines too.
    unended = b"begin 644 a.txt\n" + encoded + b"begin 644 b.txt\n" + encoded + b"end\n"
    assert uudecode_blocks(unended) == [("a.txt", b"hello world " * 9), ("b.txt", b"hello world " * 9)]


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=';"\\= aB\t', max_size=40))
def test_the_parameter_splitter_reads_as_the_standard_librarys(value: str) -> None:
    assert mime_parts._parseparam(value) == mime_parts._STDLIB_PARSEPARAM(value)


def test_the_standard_librarys_message_uses_the_linear_splitter() -> None:
    assert email.message._parseparam is mime_parts._parseparam  # type: ignore[attr-defined]
    msg = email.message_from_string('Content-Type: multipart/mixed; boundary="a;b"; charset=UTF-8\n\nx')
    assert msg.get_boundary() == "a;b" and msg.get_content_charset() == "utf-8"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("param", ["boundary", "charset"])
def test_a_quoted_run_of_semicolons_in_a_parameter_is_read_in_one_pass(param: str) -> None:
    """A 512 KB quoted run of ";" as the boundary or charset: every parse (get_boundary, get_content_charset)
    counted quotes from the start again for each ";" (at 64 KB, 3.5 s for the MIME walk and 6.5 s for the spam
    stage's features; 256 KB took 51 s); now a fraction of a second."""
    kind = "multipart/mixed" if param == "boundary" else "text/plain"
    raw = (f"From: a@b.example\r\nContent-Type: {kind}; {param}=\"".encode()
           + b"\r\n ".join([b";" * 900] * 568) + b'"\r\n\r\nx')
    assert SpooledMessage(raw).parts is not None
    assert extract_bytes(raw).from_address == "a@b.example"


def test_a_nul_in_a_charset_name_reads_the_text_as_latin1() -> None:
    """charset*=us-ascii''a%00b: bytes.decode raised ValueError ("embedded null character"), and the portal's
    view of such a message answered 500."""
    part = MessagePart(where="body", data=b"caf\xe9", declared_type="text/plain", sniffed_type="text", charset="a\x00b")
    assert part.text() == "caf\u00e9"
    raw = b"From: a@b.example\r\nContent-Type: text/plain; charset*=us-ascii''a%00b\r\n\r\nx\r\n"
    parts = SpooledMessage(raw).parts
    assert any(p.text() == "x\r\n" for p in parts)
