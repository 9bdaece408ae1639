"""RFC 3464 DSNs: structure, fields, the null-sender rules."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.delivery.dsn import build_dsn
from mailbastion.spool.record import QueueRecord, RecipientState

ORIGINAL = (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: quarterly figures\r\n"
            b"Message-ID: <orig-1@example.org>\r\n\r\nSECRET BODY that must not come back\r\n")


def failed_record(sender: str | None = "alice@example.org") -> QueueRecord:
    env = Envelope(sender=parse_address(sender) if sender else None,
                   recipients=(parse_address("bob@example.net"), parse_address("carol@example.net"),
                               parse_address("dave@example.net")))
    rec = QueueRecord.new("0123456789ABCD5151", env, arrival=1_700_000_000.0, client="c", size=len(ORIGINAL))
    return rec.with_recipients({
        "bob@example.net": replace(rec.recipient("bob@example.net"), status=RecipientState.FAILED, attempts=1,
                                   last_error="550 5.1.1 <bob@example.net>: user unknown\r\n(injected)",
                                   updated=1_700_000_100.0),
        "carol@example.net": replace(rec.recipient("carol@example.net"), status=RecipientState.FAILED,
                                     attempts=9, last_error="4.4.7 message expired; last error: timeout"),
    })


def test_dsn_is_a_multipart_report_with_rfc3464_fields() -> None:
    rec = failed_record()
    failed = [r for r in rec.recipients if r.status is RecipientState.FAILED]
    dsn = build_dsn(rec, ORIGINAL, failed, reporting_mta="mx.example.org", now=1_700_000_200.0)
    assert dsn is not None
    assert dsn.envelope.sender is None  # a DSN has the null sender: it can never bounce back
    assert [str(r) for r in dsn.envelope.recipients] == ["alice@example.org"]
    assert b"\n" not in dsn.message.replace(b"\r\n", b"")  # CRLF throughout
    msg = email.message_from_bytes(dsn.message, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["To"].addresses[0].addr_spec == "alice@example.org" and msg["Auto-Submitted"] == "auto-replied"
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@mx.example.org"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status",
                                                     "text/rfc822-headers"]
    blocks = parts[1].get_payload()  # the parser splits delivery-status into header blocks
    per_message, *per_rcpt = blocks
    assert per_message["Reporting-MTA"] == "dns; mx.example.org"
    assert per_message["Arrival-Date"] == "Tue, 14 Nov 2023 22:13:20 -0000"
    assert [b["Final-Recipient"] for b in per_rcpt] == ["rfc822; bob@example.net", "rfc822; carol@example.net"]
    assert [b["Action"] for b in per_rcpt] == ["failed", "failed"]
    assert [b["Status"] for b in per_rcpt] == ["5.1.1", "4.4.7"]
    assert per_rcpt[0]["Diagnostic-Code"] == "smtp; 550 5.1.1 <bob@example.net>: user unknown (injected)"
    assert per_rcpt[1]["Diagnostic-Code"].startswith("x-local; 4.4.7")
    assert per_rcpt[0]["Last-Attempt-Date"] == "Tue, 14 Nov 2023 22:15:00 -0000"
    headers = parts[2].get_content()
    assert "Subject: quarterly figures" in headers and "Message-ID: <orig-1@example.org>" in headers
    assert b"SECRET BODY" not in dsn.message  # headers only, never the body
    assert b"dave@example.net" not in dsn.message  # still pending: not reported


def test_no_dsn_to_the_null_sender_or_without_failures() -> None:
    rec = failed_record(sender=None)
    failed = [r for r in rec.recipients if r.status is RecipientState.FAILED]
    assert build_dsn(rec, ORIGINAL, failed, reporting_mta="mx.example.org", now=0.0) is None
    assert build_dsn(failed_record(), ORIGINAL, [], reporting_mta="mx.example.org", now=0.0) is None
