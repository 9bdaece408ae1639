"""Readers of hostile incoming mail: an encoded word with a non-ASCII charset name, and Content-Type fields
crafted for the stdlib's quadratic header parser. Each is read (or refused with a clear line) promptly,
never a traceback; ordinary mail still reads as before."""

from __future__ import annotations

import datetime as dt
import gzip
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace

import pytest

from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.verdict import Action, Verdict
from mailbastion.portal.digest import digest_message
from mailbastion.portal.message_view import decoded_header, inert_view
from mailbastion.quarantine import QuarantineStore
from mailbastion.reports import ReportRejected, parse_dmarc, report_payloads

BAD_CHARSET = b"From: a@b.c\r\nSubject: =?\xc3\xbc?q?x?=\r\n\r\nx"
# 64 KiB of ';' in a folded Content-Type: policy.default took 10 s (the quarantine) to over 60 s (reports)
SEMICOLONS = b"From: a@b.c\r\nContent-Type: text/plain" + b"\r\n ".join([b";" * 900] * 71) + b"\r\n\r\nx"
QUOTES = b"From: a@b.c\r\nContent-Type: text/plain; " + b'"' * 200_000 + b"\r\n\r\nx"
ENVELOPE = Envelope(Address("sender", "example.net"), (Address("alice", "example.org"),))
HELD = Verdict(Action.QUARANTINE, 6.0, ())


def at_signs(param: str) -> bytes:
    """A 1 MB folded run of '@' as a parameter of a report's Content-Type (or Content-Disposition)."""
    field = "Content-Disposition: attachment" if param == "filename" else "Content-Type: application/gzip"
    return (f"From: a@b.c\r\n{field}; {param}=".encode() + b"\r\n ".join([b"@" * 900] * 1100)
            + b"\r\n\r\nx")


def test_a_non_ascii_charset_name_is_shown_not_a_500() -> None:
    view = inert_view(BAD_CHARSET)
    assert view.subject == "=?ü?q?x?=" and ("Subject", "=?ü?q?x?=") in view.headers
    assert decoded_header("=?ü?q?x?=") == "=?ü?q?x?="


def test_the_digest_lists_a_subject_with_a_non_ascii_charset_name() -> None:
    entry = SimpleNamespace(id="20260101T000000Z-0123abcd", received_at="2026-01-01T00:00:00+00:00",
                            sender="a@b.c", subject="=?ü?q?x?=", is_malware=False)
    raw = digest_message("alice@example.org", [entry], portal_url="https://portal.test", sender="q@example.org",
                         now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert b"20260101T000000Z-0123abcd" in raw


def test_the_quarantine_reads_an_encoded_subject_as_before(tmp_path: Path) -> None:
    store = QuarantineStore(tmp_path / "q")
    message = b"From: a@b.c\r\nSubject: =?utf-8?q?caf=C3=A9?= =?utf-8?b?w6k=?= and\r\n more\r\n\r\nx"
    assert store.get(store.put_sync(ENVELOPE, message, HELD, client="192.0.2.1")).subject == "caféé and more"
    undecodable = store.put_sync(ENVELOPE, BAD_CHARSET, HELD, client="192.0.2.1")
    assert store.get(undecodable).subject == "=?ü?q?x?="


@pytest.mark.timeout(20)
def test_the_quarantine_reads_the_subject_of_a_crafted_content_type_promptly(tmp_path: Path) -> None:
    store = QuarantineStore(tmp_path / "q")
    crafted = SEMICOLONS.replace(b"From: a@b.c\r\n", b"From: a@b.c\r\nSubject: held\r\n")
    assert len(crafted) > 64_000
    assert store.get(store.put_sync(ENVELOPE, crafted, HELD, client="192.0.2.1")).subject == "held"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("raw", [SEMICOLONS, QUOTES, at_signs("name"), at_signs("charset"), at_signs("filename")],
                         ids=["semicolons", "quotes", "name", "charset", "filename"])
def test_a_report_with_a_crafted_content_field_is_refused_promptly(raw: bytes) -> None:
    with pytest.raises(ReportRejected, match="over the limit"):
        report_payloads(raw)


@pytest.mark.timeout(30)
def test_many_long_content_fields_are_refused_promptly() -> None:
    part = b"--b\r\nContent-Type: text/plain" + b";" * 8000 + b"\r\n\r\nx\r\n"
    raw = b"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + part * 100 + b"--b--\r\n"
    with pytest.raises(ReportRejected, match="Content-\\* fields"):
        report_payloads(raw)


def test_an_ordinary_dmarc_report_still_extracts() -> None:
    xml = (b'<?xml version="1.0"?><feedback><report_metadata><org_name>r.test</org_name>'
           b"<email>noreply@r.test</email><report_id>1</report_id><date_range><begin>1700000000</begin>"
           b"<end>1700086399</end></date_range></report_metadata><policy_published><domain>ours.test</domain>"
           b"<p>none</p></policy_published><record><row><source_ip>192.0.2.1</source_ip><count>3</count>"
           b"<policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf>"
           b"</policy_evaluated></row><identifiers><header_from>ours.test</header_from></identifiers>"
           b"<auth_results><spf><domain>ours.test</domain><result>pass</result></spf></auth_results>"
           b"</record></feedback>")
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "noreply@r.test", "dmarc@ours.test", "Report Domain: ours.test"
    msg.set_content("report attached")
    msg.add_attachment(gzip.compress(xml), maintype="application", subtype="gzip",
                       filename="r.test!ours.test!1700000000!1700086399.xml.gz")
    [(name, data)] = report_payloads(msg.as_bytes())
    assert name == "r.test!ours.test!1700000000!1700086399.xml" and data == xml
    assert parse_dmarc(data, name).end == 1700086399
