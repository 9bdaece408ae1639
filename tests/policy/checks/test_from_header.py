"""The From header check: each spoofing trick is a symbol, and the ambiguous ones are refused outright.

There must be exactly one From address that every parser agrees on; that is the one DMARC judges.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "auth"))

import authkit
from authkit import Rig, message, names

from mailbastion.auth.from_header import analyze_from
from mailbastion.core import replies
from mailbastion.core.verdict import Action

dns_server, resolver, rig = authkit.dns_server, authkit.resolver, authkit.rig  # fixtures

REFUSED = [
    ("no From at all", b"To: bob@ours.test\r\nSubject: x", "FROM_MISSING"),
    ("empty From", b"From:   \r\nTo: bob@ours.test", "FROM_MISSING"),
    ("two From headers", b"From: alice@example.org\r\nFrom: ceo@victim.test", "FROM_MULTIPLE_HEADERS"),
    ("two From headers, case variant", b"From: alice@example.org\r\nfROM: ceo@victim.test", "FROM_MULTIPLE_HEADERS"),
    ("several addresses", b"From: alice@example.org, ceo@victim.test", "FROM_MULTIPLE_ADDRESSES"),
    ("group syntax", b"From: staff: ceo@victim.test, a@evil.test;", "FROM_MULTIPLE_ADDRESSES"),
    ("bare address then angle address", b"From: ceo@victim.test <a@evil.test>", "FROM_MULTIPLE_ADDRESSES"),
    ("angle address then trailing address", b"From: <a@evil.test>ceo@victim.test", "FROM_MULTIPLE_ADDRESSES"),
    ("unterminated angle", b"From: CEO <ceo@victim.test", "FROM_UNPARSEABLE"),
    ("unterminated quote", b"From: \"CEO <ceo@victim.test>", "FROM_UNPARSEABLE"),
    ("no address", b"From: just a name", "FROM_UNPARSEABLE"),
    ("NUL byte hides a second address", b"From: a@evil.test\x00ceo@victim.test", "FROM_UNPARSEABLE"),
    ("invalid UTF-8", b"From: a@evil.test\xff\xfe", "FROM_UNPARSEABLE"),
    ("comment inside angle address", b"From: <ceo@victim.test(a@evil.test)>", "FROM_UNPARSEABLE"),
    ("encoded-word hides an address",
     b"From: =?utf-8?q?ceo=40victim.test?= <a@evil.test>", "FROM_AMBIGUOUS"),
    ("encoded-word hides angle brackets and a comma",
     b"From: =?utf-8?q?CEO_=3Cceo=40victim.test=3E=2C?= <a@evil.test>", "FROM_AMBIGUOUS"),
    ("base64 encoded-word hides an address",
     b"From: =?utf-8?b?Y2VvQHZpY3RpbS50ZXN0?= <a@evil.test>", "FROM_AMBIGUOUS"),
    ("quoted local part holds an address", b"From: \"ceo@victim.test\"@evil.test", "FROM_AMBIGUOUS"),
    ("From hidden in a folded line", b"X-Note: hi\r\n From: ceo@victim.test\r\nFrom: a@evil.test",
     "FROM_FOLDING_TRICK"),
    ("From in a folded first line (no field above it)", b" From: ceo@victim.test\r\nFrom: a@evil.test",
     "FROM_FOLDING_TRICK"),
    ("whitespace before the colon", b"From : ceo@victim.test", "FROM_FOLDING_TRICK"),
    ("bare CR in the header", b"From: a@evil.test\rFrom: ceo@victim.test", "FROM_FOLDING_TRICK"),
    ("domain literal", b"From: ceo@[192.0.2.1]", "FROM_INVALID_DOMAIN"),
    ("single-label domain", b"From: ceo@victim", "FROM_INVALID_DOMAIN"),
    # Raw 8-bit bytes are tolerated only in the display name, and only when every legacy charset reads the same
    # address: here a double-byte charset (Shift-JIS) swallows the backslash that Latin-1 reads as an escape.
    ("8-bit byte in the address", b"From: nosel\xf8@utel.no", "FROM_UNPARSEABLE"),
    ("8-bit byte before a backslash", b"From: \"\x81\\\" <ceo@victim.test> \" <a@evil.test>", "FROM_UNPARSEABLE"),
    ("8-bit byte joins a display name to an address", b"From: x\x81@victim.test <a@evil.test>", "FROM_UNPARSEABLE"),
    ("encoded-word in quotes hides an address",
     b"From: \"=?utf-8?q?ceo=40victim.test?=\" <a@evil.test>", "FROM_UNPARSEABLE"),
]

SCORED = [
    ("display name shows another domain", b"From: \"ceo@victim.test\" <a@evil.test>", "FROM_DISPLAY_SPOOF",
     "a@evil.test"),
    ("display name shows the same domain", b"From: \"alice@example.org\" <alice@example.org>",
     "FROM_DISPLAY_ADDRESS", "alice@example.org"),
    ("encoded display name shows the same address",
     b"From: =?utf-8?q?alice=40example.org?= <alice@example.org>", "FROM_ENCODED_ADDRESS", "alice@example.org"),
    ("comment holds an address", b"From: a@evil.test (ceo@victim.test)", "FROM_COMMENT_ADDRESS", "a@evil.test"),
    ("Sender of another domain", b"From: CEO <ceo@victim.test>\r\nSender: a@evil.test", "FROM_SENDER_MISMATCH",
     "ceo@victim.test"),
    ("header name in odd case", b"FROM: alice@example.org", "FROM_NAME_CASE", "alice@example.org"),
    # Legacy encodings that read as one address in every parser and charset are scored, not refused.
    ("raw Latin-1 display name", b"From: \"Nils O. Sel\xf8sdal\" <noselasd@Utel.no>", "FROM_RAW_8BIT",
     "noselasd@utel.no"),
    ("raw Latin-1 unquoted display name", b"From: J\xf6rg M\xfcller <joerg@example.org>", "FROM_RAW_8BIT",
     "joerg@example.org"),
    ("encoded-word inside a quoted display name",
     b"From: \"=?iso-2022-jp?B?GyRCMEtFbCEhP04bKEI=?=\" <hito@example.org>", "FROM_ENCODED_QUOTED", "hito@example.org"),
    ("base64 display name that is plain ASCII", b"From: =?UTF-8?B?U3VibWFyaW5v?= <news@example.org>",
     "FROM_BASE64_ASCII", "news@example.org"),
]


@pytest.mark.parametrize(("why", "block", "symbol"), REFUSED, ids=[r[0] for r in REFUSED])
def test_ambiguous_from_is_refused(why: str, block: bytes, symbol: str) -> None:
    analysis = analyze_from(block)
    assert symbol in {s.name for s in analysis.symbols}, why
    assert analysis.refuse and (analysis.domain is None or symbol == "FROM_FOLDING_TRICK")


@pytest.mark.parametrize(("why", "block", "symbol", "address"), SCORED, ids=[s[0] for s in SCORED])
def test_lesser_tricks_are_symbols(why: str, block: bytes, symbol: str, address: str) -> None:
    analysis = analyze_from(block)
    assert symbol in {s.name for s in analysis.symbols}, why
    assert not analysis.refuse and analysis.address == address


@pytest.mark.parametrize("block", [
    b"From: Alice <alice@example.org>",
    b"From: alice@example.org",
    b"From: \"Doe, Alice\" <alice@example.org>",
    b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.org>",
    b"From: =?utf-8?b?SsO2cmc=?= <joerg@example.org>",  # base64 where it is needed
    b"From: J\xc3\xb6rg <joerg@example.org>",
    b"From: Alice\r\n <alice@example.org>",
    b"From: alice@example.org (Alice)",
    b"From: \"alice smith\"@example.org",
    b"From: Alice <alice@Example.ORG>\r\nSender: list@example.org",
    "From: Jörg <jörg@example.org>".encode(),  # RFC 6532: UTF-8 local part (SMTPUTF8 mail)
])
def test_ordinary_from_headers_pass_clean(block: bytes) -> None:
    analysis = analyze_from(block)
    assert analysis.symbols == () and analysis.domain == "example.org"


def test_internationalized_domain_is_judged_in_a_labels() -> None:
    assert analyze_from("From: a@bücher.example".encode()).domain == "xn--bcher-kva.example"


async def test_refusal_is_a_forced_550(rig: Rig) -> None:
    raw = b"From: alice@example.org\r\nFrom: ceo@victim.test\r\nTo: bob@ours.test\r\n\r\nhi\r\n"
    verdict, _ = await rig.judge(raw)
    assert verdict.action is Action.REJECT and verdict.forced is not None and verdict.forced.by == "from_header"
    assert verdict.reply == replies.FROM_INVALID and verdict.reply.code == 550
    assert not any(n.startswith("DMARC_") for n in names(verdict))  # stopped before DMARC


async def test_dmarc_judges_the_agreed_address(rig: Rig) -> None:
    rig.dns.add("_dmarc.victim.test", "TXT", "v=DMARC1; p=reject")
    verdict, _ = await rig.judge(message("\"alice@example.org\" <ceo@victim.test>"), sender="x@evil.test")
    assert verdict.action is Action.REJECT and verdict.forced.by == "dmarc"  # type: ignore[union-attr]
    assert "FROM_DISPLAY_SPOOF" in names(verdict)


@pytest.mark.parametrize("block", [
    b"From: Alice Smith <alice@example.org>",
    b"From: alice.smith@example.org",
    b"From: O'Brien <ob+tag@mail.example.org>",
    b"From: ceo@victim.test\r\nSender: a@evil.test",
    b"From: Bob <bob@localhost>",
    b"From: Bob <bob@example..org>",
    b"FROM: Carol <carol@example.org>",
])
def test_fast_path_agrees_with_the_full_vote(block: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    import mailbastion.auth.from_header as fh

    fast = analyze_from(block)
    monkeypatch.setattr(fh, "_SIMPLE", re.compile(r"(?!x)x"))  # never matches: the three parsers vote
    assert analyze_from(block) == fast


def test_raw_latin1_display_name_is_shown_decoded() -> None:
    analysis = analyze_from(b"From: \"Nils O. Sel\xf8sdal\" <noselasd@Utel.no>")
    assert analysis.display_name == "Nils O. Sel\u00f8sdal" and analysis.domain == "utel.no"


async def test_raw_8bit_display_name_is_scored_not_refused(rig: Rig) -> None:
    rig.dns.add("_dmarc.victim.test", "TXT", "v=DMARC1; p=reject")
    raw = b"From: Sel\xf8sdal <a@victim.test>\r\nTo: bob@ours.test\r\nSubject: hei\r\n\r\nhei\r\n"
    verdict, _ = await rig.judge(raw, sender="x@evil.test")
    assert "FROM_RAW_8BIT" in names(verdict) and "FROM_UNPARSEABLE" not in names(verdict)
    assert verdict.forced is not None and verdict.forced.by == "dmarc"  # DMARC judged the agreed address


@pytest.mark.timeout(20)
@pytest.mark.parametrize("value", [")", "))))", "b@c.example (x))", "Bob ) <b@c.example>", "a)b@c.example"])
def test_a_stray_closing_parenthesis_is_refused_not_looped_on(value: str) -> None:
    """Our tokenizer had no branch for a ")" outside a comment: it took an atom of nothing and did not move, for ever,
    appending tokens (a 491-byte message stalled the gateway's event loop and grew its memory; found by fuzzing the
    scan pipeline in issue 8 item 11's eighth pass). Such a From is refused, as any From the parsers cannot read."""
    analysis = analyze_from(f"From: {value}\r\nSubject: x\r\n".encode())
    assert analysis.refuse and analysis.address is None
    assert {s.name for s in analysis.symbols} & {"FROM_UNPARSEABLE", "FROM_MULTIPLE_ADDRESSES"}
