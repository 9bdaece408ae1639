"""The one header-section parser: its rules, and that no input makes it raise or lose a byte."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from mailbastion.core.header_block import HeaderBlock, field_bytes
from mailbastion.core.message import SpooledMessage


def test_fields_and_body() -> None:
    raw = b"From: a@example.org\r\nSubject: hi\r\n there\r\n\r\nbody\r\n"
    block = HeaderBlock.parse(raw)
    assert [f.name for f in block.fields] == ["from", "subject"]
    assert block.values("SUBJECT") == ["hi there"]
    assert block.body == b"\r\nbody\r\n" and block.body_bytes == b"body\r\n"
    assert block.to_bytes() == raw


def test_a_folded_first_line_is_an_orphan_not_a_crash() -> None:
    raw = b" folded start\r\nFrom: a@example.org\r\n\r\nbody"
    block = HeaderBlock.parse(raw)
    assert block.fields[0].is_malformed and block.fields[0].value == "folded start"
    assert block.values("from") == ["a@example.org"]
    assert block.to_bytes() == raw


def test_a_bad_line_does_not_end_the_header_section() -> None:
    # Everything before the first empty line is header: a field cannot hide behind garbage.
    raw = b"From: a@example.org\r\nnot a field\r\nX-Mailbastion-Junk: yes\r\n\r\nbody"
    block = HeaderBlock.parse(raw)
    assert block.count("x-mailbastion-junk") == 1
    assert block.without("X-Mailbastion-Junk").to_bytes() == b"From: a@example.org\r\nnot a field\r\n\r\nbody"


def test_lf_only_and_no_body() -> None:
    assert HeaderBlock.parse(b"A: 1\nB: 2\n\nbody").values("b") == ["2"]
    block = HeaderBlock.parse(b"A: 1\r\nB: 2")
    assert block.body == b"" and block.values("b") == ["2"]


def test_obsolete_space_before_colon_and_mbox_from_line() -> None:
    block = HeaderBlock.parse(b"From a@b Sat Nov 28 2026\r\nSubject : old\r\n\r\n")
    assert block.fields[0].is_malformed
    assert block.values("subject") == ["old"]


def test_prepend_and_field_folding() -> None:
    block = HeaderBlock.parse(b"From: a@example.org\r\n\r\nx").prepend(("Received", "from a\nby b"))
    assert block.to_bytes().startswith(b"Received: from a\r\n\tby b\r\nFrom:")
    assert field_bytes("X-Test", "v", eol=b"\n") == b"X-Test: v\n"


def test_spooled_message_uses_the_parser() -> None:
    m = SpooledMessage(b"From: a@example.org\r\nTo: b@example.org\r\n\r\nhello\r\n")
    assert m.header.values("to") == ["b@example.org"]
    assert m.body_bytes == b"hello\r\n"
    assert m.header_block.endswith(b"To: b@example.org\r\n")


_LINES = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([b"From: a@example.org", b" cont", b"\tcont", b"", b"X: \x00", b"Subject:", b":",
                         b"From a@b", b"\r", b"\xff\xfe: v"]),
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(_LINES, st.sampled_from([b"\r\n", b"\n"]), st.binary(max_size=30))
def test_any_input_parses_without_loss(lines: list[bytes], eol: bytes, tail: bytes) -> None:
    raw = eol.join(lines) + tail
    block = HeaderBlock.parse(raw)
    assert block.to_bytes() == raw
    for f in block.fields:
        assert isinstance(f.value, str)
        assert f.name == f.name.lower()
    assert block.header_bytes + block.body == raw


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(raw: bytes) -> None:
    block = HeaderBlock.parse(raw)
    assert block.to_bytes() == raw
    block.without("from").prepend(("X-A", "b")).to_bytes()


def _reference_parse(raw: bytes) -> tuple[list[tuple[bytes, str]], bytes]:
    """The module's rules applied line by line, as the parser did before it matched a field at a time."""
    name_re = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
    fields: list[tuple[bytes, str]] = []
    pos = 0
    while pos < len(raw):
        nl = raw.find(b"\n", pos)
        end = len(raw) if nl < 0 else nl + 1
        line = raw[pos:end]
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] = (fields[-1][0] + line, fields[-1][1])
        else:
            m = name_re.match(line) if line[:1] not in (b" ", b"\t") else None
            fields.append((line, m.group(1).decode("ascii").lower() if m else ""))
        pos = end
    return fields, raw[pos:]


@settings(max_examples=1500, deadline=None)
@given(_LINES, st.sampled_from([b"\r\n", b"\n", b"\r"]), st.binary(max_size=30))
def test_fields_are_those_of_the_line_by_line_rules(lines: list[bytes], eol: bytes, tail: bytes) -> None:
    raw = eol.join(lines) + tail
    block = HeaderBlock.parse(raw)
    assert ([(f.raw, f.name) for f in block.fields], block.body) == _reference_parse(raw)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_fields_are_those_of_the_line_by_line_rules_on_any_bytes(raw: bytes) -> None:
    block = HeaderBlock.parse(raw)
    assert ([(f.raw, f.name) for f in block.fields], block.body) == _reference_parse(raw)
