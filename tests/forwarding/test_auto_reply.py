"""The RFC 3834 rules of the leaver's auto-reply (delivery/auto_reply.py) as pure logic, and its reply log."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbastion.core.header_block import HeaderBlock
from mailbastion.delivery.auto_reply import AutoReplier, ReplyLog, is_automatic


def block(extra: str = "") -> HeaderBlock:
    return HeaderBlock.parse(f"From: a@x.test\r\nSubject: hi\r\nMessage-ID: <1@x.test>\r\n{extra}\r\nbody\r\n".encode())


@pytest.mark.parametrize(("sender", "extra", "why"), [
    ("", "", "null sender"),
    ("MAILER-DAEMON@x.test", "", "sender"),
    ("owner-news@x.test", "", "sender"),
    ("news-request@x.test", "", "sender"),
    ("a@x.test", "Auto-Submitted: auto-replied\r\n", "Auto-Submitted"),
    ("a@x.test", "Precedence: bulk\r\n", "Precedence"),
    ("a@x.test", "List-Id: <news.x.test>\r\n", "mailing list"),
    ("a@x.test", "X-Auto-Response-Suppress: OOF, AutoReply\r\n", "X-Auto-Response-Suppress"),
])
def test_automatic_mail_is_never_answered(sender: str, extra: str, why: str) -> None:
    reason = is_automatic(sender, block(extra))
    assert reason is not None and why in reason


def test_a_person_is_answered() -> None:
    assert is_automatic("a@x.test", block("Auto-Submitted: no\r\n")) is None


def test_the_log_answers_once_per_interval(tmp_path: Path) -> None:
    log = ReplyLog(tmp_path / "replies.db")
    assert log.claim("l@ours.test", "a@x.test", 1000.0, 7 * 86400)
    assert not log.claim("l@ours.test", "a@x.test", 1000.0 + 6 * 86400, 7 * 86400)
    assert log.claim("l@ours.test", "b@x.test", 1000.0, 7 * 86400)  # per sender
    assert log.claim("l@ours.test", "a@x.test", 1000.0 + 8 * 86400, 7 * 86400)
    log.close()


def test_the_reply_says_who_took_over(tmp_path: Path) -> None:
    replier = AutoReplier(successor_of=lambda _a: None, spool=None, log=ReplyLog(tmp_path / "r.db"),  # type: ignore[arg-type]
                          hostname="mail.ours.test", clock=lambda: 1_800_000_000.0)
    raw = replier.compose("leaver@ours.test", "carol@ours.test", "a@x.test", block("References: <0@x.test>\r\n"))
    head = HeaderBlock.parse(raw)
    assert head.first("auto-submitted") == "auto-replied" and head.first("to") == "a@x.test"
    assert head.first("in-reply-to") == "<1@x.test>" and head.first("references") == "<0@x.test> <1@x.test>"
    assert head.first("subject") == "Auto: hi" and b"carol@ours.test" in raw and raw.count(b"\r\n") > 5
