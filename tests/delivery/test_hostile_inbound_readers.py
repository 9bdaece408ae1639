"""Readers of hostile incoming mail return normally: deep MIME nesting (bounce matching, spam/phish report
unwrapping), 8-bit header values in a DSN, a stored copy with an unparsable Return-Path, a crafted huge
Message-ID or Subject for the leaver's auto-reply."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbastion.core.header_block import HeaderBlock
from mailbastion.core.mime_parts import MAX_MESSAGE_DEPTH
from mailbastion.delivery.auto_reply import AutoReplier, ReplyLog
from mailbastion.delivery.bounce_match import parse_bounce
from mailbastion.phish_report.sweep import _return_path
from mailbastion.spam.report import unwrap

DEEP_MULTIPART = (b'From: a@b.c\r\n'
                  + b''.join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
                             for i in range(1000))
                  + b'Content-Type: text/plain\r\n\r\nx\r\n')


def deep_messages(depth: int) -> bytes:
    return b'From: a@b.c\r\n' + b'Content-Type: message/rfc822\r\n\r\n' * depth + b'\r\nx'


DEEP = [pytest.param(DEEP_MULTIPART, id="multipart"), pytest.param(deep_messages(1000), id="rfc822")]

DSN_8BIT = b"""\
From: MAILER-DAEMON@mx.remote.test (Mail Delivery System)\r
To: alice@example.org\r
Subject: Unzustellbar\r
Message-ID: <\xc3\xa9.20260101@mx.remote.test>\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\r
\r
--B1\r
Content-Type: text/plain\r
\r
Ihre Nachricht konnte nicht zugestellt werden.\r
--B1\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.remote.test\r
Original-Envelope-Id: env-\xc3\xa9\r
\r
Final-Recipient: rfc822; bob@remote.test\r
Action: failed\r
Status: 5.1.1\r
Remote-MTA: dns; store.remote.test\r
Diagnostic-Code: smtp; 550 5.1.1 Empf\xc3\xa4nger unbekannt, adresse inconnue \xc3\xa9\r
\r
--B1\r
Content-Type: text/rfc822-headers\r
\r
From: alice@example.org\r
To: bob@remote.test\r
Message-ID: <m1@example.org>\r
\r
--B1--\r
"""


@pytest.mark.parametrize("raw", DEEP)
def test_a_deeply_nested_bounce_is_read_without_recursion_error(raw: bytes) -> None:
    report = parse_bounce(raw)
    assert report is None or not report.recipients


@pytest.mark.parametrize("raw", [*DEEP, pytest.param(deep_messages(500), id="rfc822-500")])
def test_a_deeply_nested_report_is_unwrapped_without_recursion_error(raw: bytes) -> None:
    messages, how = unwrap(raw)
    assert len(messages) <= MAX_MESSAGE_DEPTH and how in ("attachment", "none")


def test_a_forward_inside_a_forward_still_gives_both() -> None:
    inner = b"From: x@y.test\r\nSubject: inner\r\n\r\nbuy now\r\n"
    outer = b"From: a@b.test\r\nSubject: outer\r\nContent-Type: message/rfc822\r\n\r\n" + inner
    raw = b"From: me@ours.test\r\nContent-Type: message/rfc822\r\n\r\n" + outer
    messages, how = unwrap(raw)
    assert how == "attachment" and len(messages) == 2 and b"Subject: inner" in messages[1]


def test_a_bounce_with_8bit_header_values_is_still_parsed() -> None:
    report = parse_bounce(DSN_8BIT)
    assert report is not None and report.message_ids == ("<m1@example.org>",)
    assert report.envid is not None and report.envid.startswith("env-")
    [r] = report.recipients
    assert (r.recipient, r.action, r.status, r.remote_mta) == ("bob@remote.test", "failed", "5.1.1", "store.remote.test")
    assert r.diagnostic.startswith("550 5.1.1 Empf")


def test_an_8bit_message_id_alone_is_no_error() -> None:
    assert parse_bounce(b"From: MAILER-DAEMON@x.example\r\nMessage-ID: <\xc3\xa9@x.example>\r\n\r\nhello\r\n") is None


@pytest.mark.parametrize("raw", [b"Return-Path: )\r\nFrom: a@b.c\r\n\r\nx", b"Return-Path: <a@@b>\r\n\r\nx"])
def test_an_unparsable_return_path_of_a_stored_copy_is_none(raw: bytes) -> None:
    assert _return_path(raw) is None


def test_a_stored_copy_keeps_its_return_path() -> None:
    address = _return_path(b"Return-Path: <bob@remote.test>\r\nFrom: a@b.c\r\n\r\nx")
    assert address is not None and str(address) == "bob@remote.test"


def replier(tmp_path: Path) -> AutoReplier:
    return AutoReplier(successor_of=lambda _a: None, spool=None, log=ReplyLog(tmp_path / "r.db"),  # type: ignore[arg-type]
                       hostname="mail.ours.test", clock=lambda: 1_800_000_000.0)


CRAFTED_FIELD = b'\r\n '.join([b' '.join([b'=?utf-8?q?a?='] * 60)] * 238)  # 200 KB of encoded words


def test_an_ordinary_reply_threads_on_its_last_references(tmp_path: Path) -> None:
    refs = " ".join(f"<{i}@x.test>" for i in range(30))
    original = HeaderBlock.parse(f"From: a@x.test\r\nSubject: =?utf-8?q?caf=C3=A9?= time\r\nMessage-ID: <1@x.test>\r\n"
                                 f"References: {refs}\r\n\r\nbody\r\n".encode())
    head = HeaderBlock.parse(replier(tmp_path).compose("leaver@ours.test", "carol@ours.test", "a@x.test", original))
    assert head.first("in-reply-to") == "<1@x.test>"
    assert " ".join((head.first("references") or "").split()).split() == [
        *(f"<{i}@x.test>" for i in range(10, 30)), "<1@x.test>"]
    assert "caf" in (head.first("subject") or "")


@pytest.mark.timeout(30)
def test_a_crafted_huge_message_id_gets_no_in_reply_to(tmp_path: Path) -> None:
    original = HeaderBlock.parse(b"From: a@b.c\r\nMessage-ID: " + CRAFTED_FIELD + b"\r\n\r\nx")
    raw = replier(tmp_path).compose("leaver@ours.test", "carol@ours.test", "a@b.c", original)
    head = HeaderBlock.parse(raw)
    assert head.first("in-reply-to") is None and head.first("references") is None
    assert len(raw) < 4096


@pytest.mark.timeout(30)
def test_a_crafted_huge_subject_is_cut(tmp_path: Path) -> None:
    original = HeaderBlock.parse(b"From: a@b.c\r\nSubject: " + CRAFTED_FIELD + b"\r\nMessage-ID: <1@b.c>\r\n\r\nx")
    raw = replier(tmp_path).compose("leaver@ours.test", "carol@ours.test", "a@b.c", original)
    head = HeaderBlock.parse(raw)
    assert head.first("in-reply-to") == "<1@b.c>"
    assert (head.first("subject") or "").startswith("Auto: ") and len(raw) < 4096
