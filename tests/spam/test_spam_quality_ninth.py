"""Issue 8 item 11, ninth pass (docs/spam-quality.md, "Ninth session"): dots hidden by quoted-printable, and the
weights of ten signs raised where the ham that carry them sit far below the mark."""

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
    assert "QP_ENCODED_DOTS" in RULE_SYMBOLS
    for name in ("QP_ENCODED_DOTS", *RAISED):
        assert 0 < table.symbols[name].weight < table.thresholds.add_header, name
