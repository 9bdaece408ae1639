"""Bounces that come back for mail we sent are recognised (RFC 3464 DSNs, our own DSNs, plain-text bounces)
and logged against our queue id; anything else passes untouched."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.core.outcome import Deferred, Delivered, DeliveryOutcome, Failed
from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
from mailbastion.core.replies import Reply
from mailbastion.delivery.bounce_match import BounceWatch, match_bounce, parse_bounce
from mailbastion.delivery.dsn import build_dsn
from mailbastion.delivery.sent_log import SentLog
from mailbastion.spool.record import QueueRecord, RecipientState

POSTFIX_DSN = b"""\
From: MAILER-DAEMON@mx.remote.test (Mail Delivery System)\r
To: alice@example.org\r
Subject: Undelivered Mail Returned to Sender\r
Message-ID: <20260101.AB12@mx.remote.test>\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\r
\r
--B1\r
Content-Type: text/plain\r
\r
I'm sorry to have to inform you that your message could not be delivered.\r
--B1\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.remote.test\r
X-Postfix-Queue-ID: AB12\r
Original-Envelope-Id: %(envid)s\r
Arrival-Date: Thu,  1 Jan 2026 10:00:00 +0000 (UTC)\r
\r
Final-Recipient: rfc822; bob@remote.test\r
Original-Recipient: rfc822;bob@remote.test\r
Action: failed\r
Status: 5.1.1\r
Remote-MTA: dns; store.remote.test\r
Diagnostic-Code: smtp; 550 5.1.1 <bob@remote.test>: user unknown\r
\r
--B1\r
Content-Type: text/rfc822-headers\r
\r
From: alice@example.org\r
To: bob@remote.test\r
Subject: the report\r
Message-ID: %(mid)s\r
\r
--B1--\r
"""


def postfix_dsn(*, envid: str = "", mid: str = "<m1@example.org>") -> bytes:
    text = POSTFIX_DSN % {b"envid": envid.encode(), b"mid": mid.encode()}
    return text if envid else text.replace(b"Original-Envelope-Id: \r\n", b"")


def test_a_standard_dsn_names_our_message() -> None:
    report = parse_bounce(postfix_dsn(envid="env 1"))
    assert report is not None
    assert report.envid == "env 1" and report.message_ids == ("<m1@example.org>",)
    [r] = report.recipients
    assert (r.recipient, r.action, r.status, r.remote_mta) == ("bob@remote.test", "failed", "5.1.1", "store.remote.test")
    assert "user unknown" in r.diagnostic


def test_our_own_dsn_is_parsed_too() -> None:
    envelope = Envelope(parse_address("alice@example.org"), (parse_address("bob@remote.test"),), dsn_envid="E9")
    record = QueueRecord.new("QQQ1", envelope, arrival=1.0, client="127.0.0.1", size=10)
    failed = record.with_recipients({"bob@remote.test": replace(
        record.recipient("bob@remote.test"), status=RecipientState.FAILED, reply=Reply(550, "5.1.1", "unknown"),
        remote="mx.remote.test")})
    original = b"From: alice@example.org\r\nMessage-ID: <orig@example.org>\r\n\r\nbody\r\n"
    dsn = build_dsn(failed, original, list(failed.recipients), now=2.0, reporting_mta="gw.example.org")
    assert dsn is not None
    report = parse_bounce(dsn.message)
    assert report is not None and report.queue_ids == ("QQQ1",) and report.envid == "E9"
    assert report.message_ids == ("<orig@example.org>",) and report.recipients[0].status == "5.1.1"


def test_a_plain_text_bounce_quoting_the_header_is_found_and_ordinary_mail_is_not() -> None:
    text = (b"From: MAILER-DAEMON@old.remote.test\r\nMessage-ID: <own@old>\r\nSubject: failure notice\r\n\r\n"
            b"Sorry, I could not deliver.\r\n--- Below this line is a copy of the message.\r\n\r\n"
            b"From: alice@example.org\r\nMessage-ID: <m1@example.org>\r\n\r\nhi\r\n")
    report = parse_bounce(text)
    assert report is not None and report.message_ids == ("<m1@example.org>",)  # not the bounce's own id
    assert parse_bounce(b"From: a@b\r\nMessage-ID: <x@y>\r\nSubject: hi\r\n\r\nhello\r\n") is None


def test_matching_by_envid_then_by_message_id(tmp_path: Path) -> None:
    sent = SentLog(tmp_path / "sent.db")
    sent.record(queue_id="QA", message_id="<m1@example.org>", envid="env-a", sender="alice@example.org",
                recipients=["bob@remote.test"], remote="mx.remote.test")
    found = match_bounce(postfix_dsn(envid="env-a", mid="<unrelated@x>"), sent)
    assert found is not None and found[2] == "envid" and [e.queue_id for e in found[1]] == ["QA"]
    found = match_bounce(postfix_dsn(), sent)
    assert found is not None and found[2] == "message-id"
    assert match_bounce(postfix_dsn(mid="<never-sent@example.org>"), sent) is None


class Recording:
    def __init__(self, outcome: DeliveryOutcome) -> None:
        self.outcome = outcome
        self.requests: list[DeliveryRequest] = []

    async def deliver(self, request: DeliveryRequest) -> Mapping[str, DeliveryOutcome]:
        self.requests.append(request)
        return {a: self.outcome for a in request.addresses}


async def test_the_watch_logs_a_matched_bounce_and_never_changes_delivery(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sent = SentLog(tmp_path / "sent.db")
    sent.record(queue_id="QA", message_id="<m1@example.org>", envid=None, sender="alice@example.org",
                recipients=["bob@remote.test"], remote="mx.remote.test")
    inner = Recording(Delivered(Reply(250, "2.0.0", "ok")))
    watch = BounceWatch(inner, sent)
    bounce = DeliveryRequest("DSN1", "", (DeliveryRecipient("alice@example.org"),), postfix_dsn())
    out = await watch.deliver(bounce)
    # Delivered unchanged, with the sender of ours it reports refused riding along (XBOUNCEOF on the link).
    assert isinstance(out["alice@example.org"], Delivered)
    assert inner.requests == [replace(bounce, bounce_of=("alice@example.org",))]
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("outbound.bounce")]
    assert "queue_id=QA dsn_id=DSN1" in line and "recipient=bob@remote.test action=failed status=5.1.1" in line
    assert "matched_by=message-id" in line
    caplog.clear()
    # Not a null sender, or not delivered (it will be tried again): nothing logged yet.
    await watch.deliver(DeliveryRequest("M2", "carol@x.test", bounce.recipients, postfix_dsn()))
    await BounceWatch(Recording(Deferred(Reply(451, "4.4.2", "later"))), sent).deliver(bounce)
    await BounceWatch(Recording(Failed(Reply(550, "5.1.1", "x"))), sent).deliver(bounce)
    assert not [r for r in caplog.records if r.getMessage().startswith("outbound.bounce")]


async def test_a_broken_bounce_is_delivered_all_the_same(tmp_path: Path) -> None:
    inner = Recording(Delivered(Reply(250, "2.0.0", "ok")))
    garbage = b"Content-Type: multipart/report; boundary=\"\r\n\r\n--\r\n\x00\xff" * 100
    out = await BounceWatch(inner, SentLog(tmp_path / "s.db")).deliver(
        DeliveryRequest("D", "", (DeliveryRecipient("a@example.org"),), garbage))
    assert isinstance(out["a@example.org"], Delivered)


async def test_the_refused_senders_ride_inward_and_are_told_once_delivered(tmp_path: Path) -> None:
    sent = SentLog(tmp_path / "sent.db")
    sent.record(queue_id="QA", message_id="<m1@example.org>", envid=None, sender="alice@example.org",
                recipients=["bob@remote.test"], remote="mx.remote.test")
    told: list[tuple[str, str]] = []
    bounce = DeliveryRequest("DSN1", "", (DeliveryRecipient("alice@example.org"),), postfix_dsn())
    # Deferred: the request still carries the sender (the MDA counts only what it writes), nobody told here.
    later = Recording(Deferred(Reply(451, "4.4.2", "later")))
    await BounceWatch(later, sent, on_bounce=lambda s, d: told.append((s, d))).deliver(bounce)
    assert later.requests[0].bounce_of == ("alice@example.org",) and told == []
    inner = Recording(Delivered(Reply(250, "2.0.0", "ok")))
    await BounceWatch(inner, sent, on_bounce=lambda s, d: told.append((s, d))).deliver(bounce)
    assert [s for s, _ in told] == ["alice@example.org"] and "bounce of QA for bob@remote.test" in told[0][1]
    # A delay notice refuses nothing: nothing rides along, nobody is told.
    delayed = postfix_dsn().replace(b"Action: failed", b"Action: delayed").replace(b"Status: 5.1.1", b"Status: 4.4.1")
    told.clear()
    quiet = Recording(Delivered(Reply(250, "2.0.0", "ok")))
    await BounceWatch(quiet, sent, on_bounce=lambda s, d: told.append((s, d))).deliver(replace(bounce, message=delayed))
    assert quiet.requests[0].bounce_of == () and told == []
    # Ordinary mail is never matched.
    plain = Recording(Delivered(Reply(250, "2.0.0", "ok")))
    await BounceWatch(plain, sent, on_bounce=lambda s, d: told.append((s, d))).deliver(
        replace(bounce, sender="carol@x.test"))
    assert plain.requests[0].bounce_of == () and told == []
