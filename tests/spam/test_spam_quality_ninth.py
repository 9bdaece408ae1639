"""Issue 8 item 11, ninth pass (docs/spam-quality.md, "Ninth session"): dots hidden by quoted-printable, poster-size
HTML type, one reader of a trace field's client, and the weights of ten signs raised where the ham that carry them
sit far below the mark."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from spamkit import mail, rule_names

from mailbastion.policy.scoring import load_score_table
from mailbastion.spam.features import extract_bytes
from mailbastion.spam.rules import RULE_SYMBOLS

QP = ("Content-Transfer-Encoding", "quoted-printable")
RAISED = ("MSGID_ADDED_BY_RELAY", "DATE_MALFORMED", "MUA_OUTLOOK_FORGED", "SUBJECT_ADV", "TO_IS_SENDER",
          "TEXT_EXCLAMATIONS", "URI_IP", "FREEMAIL_REPLYTO", "URI_USERINFO", "TO_UNDISCLOSED")


def multipart_qp(plain: str, html: str) -> bytes:
    """multipart/alternative whose two parts are both quoted-printable, as ratware and Outlook send it."""
    body = (f"--B\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            f"{plain}\r\n--B\r\nContent-Type: text/html; charset=us-ascii\r\nContent-Transfer-Encoding: "
            f"quoted-printable\r\n\r\n{html}\r\n--B--\r\n")
    head = mail(text=None).split(b"Content-Type:")[0].decode()
    return (head + 'Content-Type: multipart/alternative; boundary="B"\r\n\r\n' + body).encode()


FIRES = [
    mail(text="Claim your gift at http://www=2Ejohnsonhome2276=2Ecom today=2E", extra=[QP]),
    multipart_qp("Welcome", '<a href=3D"http://offers=2Eexample/">here</a>'),
]

QUIET = [
    # Outlook and most encoders leave "." alone; some write "=2E" where a line starts with a dot (the SMTP
    # terminator), which is no word.
    mail(text="Minutes of the meeting.\n=2E..and the rest follows.\nSee http://www.example.org/ =3D the page", extra=[QP]),
    # "=2E" read as text in a part that is not quoted-printable: a note about encodings.
    mail(text="In quoted-printable a dot may be written www=2Eexample=2Ecom, which is allowed but never needed."),
    # Base64 text is no quoted-printable either.
    mail(text="d3d3PTJFZXhhbXBsZT0yRWNvbQ==", extra=[("Content-Transfer-Encoding", "base64")]),
]


@pytest.mark.parametrize("raw", FIRES)
async def test_dots_written_as_qp_inside_words_are_marked(raw: bytes) -> None:
    assert extract_bytes(raw).qp_encoded_dots >= 1
    assert "QP_ENCODED_DOTS" in await rule_names(raw)


@pytest.mark.parametrize("raw", QUIET)
async def test_ordinary_quoted_printable_and_literal_text_are_not(raw: bytes) -> None:
    assert extract_bytes(raw).qp_encoded_dots == 0
    assert "QP_ENCODED_DOTS" not in await rule_names(raw)


def test_the_decoded_text_is_what_the_other_checks_read() -> None:
    """The count is taken from the encoded part; the text every other check reads is decoded as before."""
    feats = extract_bytes(FIRES[0])
    assert "http://www.johnsonhome2276.com" in feats.text
    assert "www.johnsonhome2276.com" in feats.url_hosts


def test_the_count_reads_a_bounded_part() -> None:
    """Megabytes of "a=2Eb" cost one linear pass over the part's first MAX_PART_BYTES."""
    from mailbastion.spam.features import MAX_PART_BYTES

    raw = mail(text="a=2Eb " * 400_000, extra=[QP])
    assert 0 < extract_bytes(raw).qp_encoded_dots <= MAX_PART_BYTES // 5


def test_the_new_sign_and_the_raised_weights_stay_below_the_mark_alone() -> None:
    """Declared by the check; every sign this pass added or raised weighs less than add_header (5) on its own,
    so no one of them marks a message without corroboration."""
    table = load_score_table()
    assert {"QP_ENCODED_DOTS", "HTML_FONT_BIG"} <= RULE_SYMBOLS
    for name in ("QP_ENCODED_DOTS", "HTML_FONT_BIG", *RAISED):
        assert 0 < table.symbols[name].weight < table.thresholds.add_header, name


BIG = [
    '<p><font size="7" color="red">ACT NOW</font></p>',
    "<FONT FACE=Arial SIZE=+4><B>FREE</B></FONT>",
    "<font size=6>Men's Health Update!</font>",
]
ORDINARY = [
    '<p><font size="2" face="Arial">Minutes attached.</font></p>',
    "<font size=-1>small print</font> <font size=+1>a heading</font>",
    '<p style="font-size:14px">The agenda</p><font size="16px">not a font size of HTML 3.2</font>',
    "<table><tr><td size=7>a cell, not a font</td></tr></table>",
]


@pytest.mark.parametrize("markup", BIG)
async def test_poster_size_type_is_marked(markup: str) -> None:
    assert "HTML_FONT_BIG" in await rule_names(mail(text=None, html=f"<html><body>{markup}</body></html>"))


@pytest.mark.parametrize("markup", ORDINARY)
async def test_ordinary_type_sizes_are_not(markup: str) -> None:
    assert "HTML_FONT_BIG" not in await rule_names(mail(text=None, html=f"<html><body>{markup}</body></html>"))


@pytest.mark.timeout(120)
async def test_unclosed_font_tags_are_read_with_a_bounded_look() -> None:
    """Ten thousand "<font" with no ">" (60 KB): each tag's attributes end at the next "<", so the part is read in
    one linear pass (a pattern that read across tags would take minutes here and time out); the sign after them is
    still found."""
    raw = mail(text=None, html="<font " * 10_000 + '<font size="7">FREE</font>')
    assert "HTML_FONT_BIG" in await rule_names(raw)


WHEN = "Tue, 21 May 2002 12:10:24 +0100"
PUBLIC = "81.2.69.160"  # a public address, as text in a header only: nothing connects to it


def via(hop: str, proto: str = "SMTP") -> bytes:
    field = f"{hop} by mx.relay.example (8.11.6/8.11.6) with {proto} id g4LBANe03301 for <bob@example.com>; {WHEN}"
    return mail(extra=[("Received", field)])


@pytest.mark.parametrize("hop", [
    f"from shop-offers.com (unknown [{PUBLIC}])",  # Postfix
    f"from shop-offers.com ([{PUBLIC}])",  # sendmail
    f"from shop-offers.com (IDENT:squid@[{PUBLIC}])",  # sendmail with an ident answer and no name
    f"from [{PUBLIC}] (helo=shop-offers.com)",  # Exim
])
async def test_a_bare_domain_helo_without_reverse_dns_is_read_in_every_form_that_tells_helo(hop: str) -> None:
    """RCVD_HELO_DOMAIN_NO_RDNS reads its client through the one trace-field reader MSGID_ADDED_BY_RELAY uses
    (it had a pattern of its own, which missed sendmail's IDENT form and Exim's)."""
    assert "RCVD_HELO_DOMAIN_NO_RDNS" in await rule_names(via(hop))


@pytest.mark.parametrize(("hop", "proto"), [
    (f"from shop-offers.com (IDENT:squid@dsl-7.isp.example.org [{PUBLIC}])", "SMTP"),  # named
    (f"from mail.isp.example.org ([{PUBLIC}] helo=shop-offers.com)", "smtp"),  # Exim, named
    (f"from [{PUBLIC}] (helo=shop-offers.com)", "esmtp"),  # EHLO
    # qmail writes "with SMTP" whatever the greeting, so its fields cannot say HELO: 34 spamassassin-train ham
    # came this way from clients without reverse DNS.
    (f"from unknown (HELO shop-offers.com) ({PUBLIC})", "SMTP"),
])
async def test_named_clients_ehlo_and_qmail_fields_are_not(hop: str, proto: str) -> None:
    assert "RCVD_HELO_DOMAIN_NO_RDNS" not in await rule_names(via(hop, proto))


def test_the_trace_reader_reads_each_form() -> None:
    from mailbastion.spam.rules import TraceClient, _trace_client

    assert _trace_client(f"from a.example ([{PUBLIC}] helo=b.example) by c") == TraceClient("b.example", PUBLIC,
                                                                                           True, True, "a.example")
    assert _trace_client(f"from unknown (HELO b.example) ({PUBLIC}) by c") == TraceClient("b.example", PUBLIC,
                                                                                         False, False)
    assert _trace_client(f"from b.example (IDENT:x@[{PUBLIC}]) by c") == TraceClient("b.example", PUBLIC, False, True)
    assert _trace_client(f"from b.example (host.isp.example [{PUBLIC}]) by c") == TraceClient("b.example", PUBLIC,
                                                                                             True, True,
                                                                                             "host.isp.example")
    assert _trace_client("by c with SMTP") is None
