"""RFC 3464 DSNs built from the queue record's reply fields: structure, actions, RET/ENVID/ORCPT, SMTPUTF8,
and the null-sender rules."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope, RecipientDsn
from mailbastion.core.outcome import Handoff
from mailbastion.core.replies import Reply
from mailbastion.delivery.dsn import MAX_RETURNED_BYTES, build_dsn
from mailbastion.spool.record import QueueRecord, RecipientState

ORIGINAL = (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: quarterly figures\r\n"
            b"Message-ID: <orig-1@example.org>\r\n\r\nSECRET BODY that must not come back\r\n")


def failed_record(sender: str | None = "alice@example.org", **kw: object) -> QueueRecord:
    env = Envelope(sender=parse_address(sender) if sender else None,
                   recipients=(parse_address("bob@example.net"), parse_address("carol@example.net"),
                               parse_address("dave@example.net")))
    rec = QueueRecord.new("0123456789ABCD5151", env, arrival=1_700_000_000.0, client="c", size=len(ORIGINAL))
    rec = replace(rec, **kw)  # type: ignore[arg-type]
    return rec.with_recipients({
        "bob@example.net": replace(rec.recipient("bob@example.net"), status=RecipientState.FAILED, attempts=1,
                                   reply=Reply(550, "5.1.1", "<bob@example.net>: user unknown\r\n(injected)"),
                                   remote="mx.example.net", updated=1_700_000_100.0),
        "carol@example.net": replace(rec.recipient("carol@example.net"), status=RecipientState.FAILED,
                                     attempts=9, expired=True, reply=Reply(451, "4.4.1", "connect to mx: timeout")),
    })


def parts_of(message: bytes) -> tuple[email.message.EmailMessage, list[email.message.EmailMessage]]:
    msg = email.message_from_bytes(message, policy=email.policy.default)
    return msg, list(msg.iter_parts())  # type: ignore[arg-type]


def test_dsn_is_a_multipart_report_with_rfc3464_fields() -> None:
    rec = failed_record()
    failed = [r for r in rec.recipients if r.status is RecipientState.FAILED]
    dsn = build_dsn(rec, ORIGINAL, failed, reporting_mta="mx.example.org", now=1_700_000_200.0)
    assert dsn is not None
    assert dsn.envelope.sender is None  # a DSN has the null sender: it can never bounce back
    assert [str(r) for r in dsn.envelope.recipients] == ["alice@example.org"]
    assert b"\n" not in dsn.message.replace(b"\r\n", b"")  # CRLF throughout
    msg, parts = parts_of(dsn.message)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["To"].addresses[0].addr_spec == "alice@example.org" and msg["Auto-Submitted"] == "auto-replied"
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@mx.example.org"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status",
                                                     "text/rfc822-headers"]
    per_message, *per_rcpt = parts[1].get_payload()  # the parser splits delivery-status into header blocks
    assert per_message["Reporting-MTA"] == "dns; mx.example.org"
    assert per_message["Arrival-Date"] == "Tue, 14 Nov 2023 22:13:20 -0000"
    assert per_message["Original-Envelope-Id"] is None  # none was given
    assert [b["Final-Recipient"] for b in per_rcpt] == ["rfc822; bob@example.net", "rfc822; carol@example.net"]
    assert [b["Action"] for b in per_rcpt] == ["failed", "failed"]
    assert [b["Status"] for b in per_rcpt] == ["5.1.1", "4.4.7"]  # the reply's field; expiry is 4.4.7
    assert per_rcpt[0]["Remote-MTA"] == "dns; mx.example.net"
    assert per_rcpt[0]["Diagnostic-Code"] == "smtp; 550 5.1.1 <bob@example.net>: user unknown (injected)"
    assert per_rcpt[1]["Remote-MTA"] is None  # a reply we made ourselves
    assert per_rcpt[1]["Diagnostic-Code"] == "X-mailbastion; 451 4.4.1 connect to mx: timeout"
    assert per_rcpt[0]["Last-Attempt-Date"] == "Tue, 14 Nov 2023 22:15:00 -0000"
    headers = parts[2].get_content()
    assert "Subject: quarterly figures" in headers and "Message-ID: <orig-1@example.org>" in headers
    assert b"SECRET BODY" not in dsn.message  # headers only, never the body, unless RET=FULL
    assert b"dave@example.net" not in dsn.message  # still pending: not reported


def test_ret_full_returns_the_whole_message_for_a_failure_within_the_size_limit() -> None:
    rec = failed_record(dsn_ret="FULL", dsn_envid="ENV 7")
    failed = [rec.recipient("bob@example.net")]
    dsn = build_dsn(rec, ORIGINAL, failed, reporting_mta="mx.example.org", now=0.0)
    assert dsn is not None
    _, parts = parts_of(dsn.message)
    assert parts[2].get_content_type() == "message/rfc822"
    assert b"SECRET BODY that must not come back" in dsn.message
    assert parts[1].get_payload()[0]["Original-Envelope-Id"] == "ENV 7"
    big = ORIGINAL + b"x" * MAX_RETURNED_BYTES
    dsn = build_dsn(replace(rec, size=len(big)), big, failed, reporting_mta="mx.example.org", now=0.0)
    assert dsn is not None and parts_of(dsn.message)[1][2].get_content_type() == "text/rfc822-headers"


def test_success_reports_say_delivered_or_relayed_and_return_headers_only() -> None:
    env = Envelope(sender=parse_address("alice@example.org"), dsn_ret="FULL")
    env = env.with_recipient(parse_address("bob@example.org"), RecipientDsn(("SUCCESS",), "rfc822;Bob@Example.org"))
    env = env.with_recipient(parse_address("x@remote.example"), RecipientDsn(("SUCCESS",)))
    rec = QueueRecord.new("0123456789ABCD5152", env, arrival=0.0, client="c", size=len(ORIGINAL))
    rec = rec.with_recipients({
        "bob@example.org": replace(rec.recipient("bob@example.org"), status=RecipientState.DELIVERED,
                                   reply=Reply(250, "2.0.0", "Ok: delivered"), remote="127.0.0.1",
                                   handoff=Handoff.DELIVERED),
        "x@remote.example": replace(rec.recipient("x@remote.example"), status=RecipientState.DELIVERED,
                                    reply=Reply(250, "", "queued as 12"), remote="mx.remote.example",
                                    handoff=Handoff.RELAYED)})
    dsn = build_dsn(rec, ORIGINAL, rec.recipients, reporting_mta="mx.example.org", now=0.0)
    assert dsn is not None
    msg, parts = parts_of(dsn.message)
    assert msg["Subject"] == "Successful Mail Delivery Report"
    blocks = parts[1].get_payload()[1:]
    assert [(b["Action"], b["Status"]) for b in blocks] == [("delivered", "2.0.0"), ("relayed", "2.0.0")]
    assert blocks[0]["Original-Recipient"] == "rfc822; Bob@Example.org"
    assert parts[2].get_content_type() == "text/rfc822-headers"  # RFC 3461 §4.3: RET is for failures
    assert b"SECRET BODY" not in dsn.message


def test_smtputf8_messages_get_the_rfc6533_types() -> None:
    env = Envelope(sender=parse_address("jösé@exämple.org", allow_utf8=True), smtputf8=True)
    env = env.with_recipient(parse_address("bøb@example.net", allow_utf8=True))
    rec = QueueRecord.new("0123456789ABCD5153", env, arrival=0.0, client="c", size=len(ORIGINAL))
    rec = rec.with_recipients({"bøb@example.net": replace(rec.recipient("bøb@example.net"),
                                                          status=RecipientState.FAILED,
                                                          reply=Reply(550, "5.1.1", "unknown"))})
    dsn = build_dsn(rec, ORIGINAL, rec.recipients, reporting_mta="mx.example.org", now=0.0)
    assert dsn is not None and dsn.envelope.smtputf8
    assert b"Content-Type: message/global-delivery-status" in dsn.message
    assert b"Content-Type: message/global-headers" in dsn.message
    assert "Final-Recipient: utf-8; bøb@example.net".encode() in dsn.message


def test_no_dsn_to_the_null_sender_or_without_anything_to_report() -> None:
    rec = failed_record(sender=None)
    failed = [r for r in rec.recipients if r.status is RecipientState.FAILED]
    assert build_dsn(rec, ORIGINAL, failed, reporting_mta="mx.example.org", now=0.0) is None
    assert build_dsn(failed_record(), ORIGINAL, [], reporting_mta="mx.example.org", now=0.0) is None
