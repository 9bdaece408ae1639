"""No message switches the spam stage off or stalls it: messages built at random from header and MIME pieces go
through the From check, the rules and the classifier with no check error. Fuzzing the scan pipeline this way found
`From: )` looping for ever and comments or multiparts nested past Python's recursion limit failing every check
(issue 8 item 11, eighth pass); the pieces that found them are among these."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from spamkit import judge, names

from mailbastion.policy.checks.from_header import FromHeaderCheck
from mailbastion.policy.checks.spam_classifier import SpamClassifierCheck
from mailbastion.policy.checks.spam_rules import SpamRulesCheck
from mailbastion.spam.lookalike import OwnIdentity
from mailbastion.spam.rules import SpamRules
from mailbastion.spam.store import ModelStore

FIELDS = ["From", "To", "Cc", "Reply-To", "Sender", "Subject", "Message-ID", "Date", "Received", "Content-Type",
          "Content-Transfer-Encoding", "Content-Disposition", "X-Mailer", "List-Unsubscribe", "MIME-Version"]
VALUES = ["a@b.example", "<a@b.example>", '"x" <a@b.example>', "=?utf-8?b?w6k=?=", "=?bogus?x?y?=", "(c)", "((((",
          "))))", ")", "(a " * 1500, "<<<", ">>>", '"""', "\\", "@@@", ",,,", ";;;", ":::", "[1.2.3.4]", "\u202e",
          "multipart/mixed; boundary=B", 'multipart/alternative; boundary=""', "text/html; charset=utf-7",
          "text/plain; charset=bogus", "base64", "quoted-printable", 'attachment; filename="a.exe"',
          "from 1.2.3.4 ([1.2.3.4]) by x with SMTP id abcdef", "by a " * 300, "Mon, 32 Dec 99999 25:61:61 +9999",
          "undisclosed-recipients:;", "g: a@b.example, c@d.example;", " ", "x" * 3000]
BODIES = ["--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n", "--B--\r\n",
          "--B\r\nContent-Type: text/html\r\n\r\n<a href=http://x.example>y</a>\r\n",
          "--B\r\nContent-Type: message/rfc822\r\n\r\nFrom: )\r\n\r\nx\r\n", "<!--" * 300, "<a href=x>" * 200,
          "<html><body><form><input type=password>", "begin 644 a.exe\r\nM\r\nend\r\n", "<style>", "<script>",
          "<span style='display:none'>", "--B\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!\r\n",
          "".join(f"--B\r\nContent-Type: multipart/mixed; boundary=C{i}\r\n\r\n--C{i}\r\n" for i in range(40)),
          "FREE gift card!! click here now, act now, limited offer\r\n"]
FIELD = st.tuples(st.sampled_from(FIELDS), st.lists(st.sampled_from(VALUES), min_size=1, max_size=3).map("".join))
MESSAGE = st.tuples(st.booleans(), st.lists(FIELD, max_size=8), st.lists(st.sampled_from(BODIES), max_size=6))


@contextlib.contextmanager
def at_most(seconds: float) -> Iterator[None]:
    """Interrupt the example after `seconds` of wall time (a CPU loop never yields to the event loop, so neither
    asyncio nor Hypothesis's deadline can stop it); no shrinking either, so that a loop fails once, quickly."""
    def expire(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"the spam stage took more than {seconds} s on one message")

    previous = signal.signal(signal.SIGALRM, expire)
    started = time.monotonic()
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)  # pytest-timeout's, if any
    try:
        yield
    finally:
        left = outer_delay - (time.monotonic() - started) if outer_delay else 0.0
        signal.setitimer(signal.ITIMER_REAL, max(left, 0.001) if outer_delay else 0.0, outer_interval)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.timeout(240)
@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.generate])
@given(MESSAGE)
async def test_no_message_makes_a_spam_check_fail(message: tuple[bool, list[tuple[str, str]], list[str]]) -> None:
    good_from, fields, body = message
    head = "From: Offers <a@b.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n" \
        if good_from else ""
    head += "".join(f"{k}: {v}\r\n" for k, v in fields if not (good_from and k in ("From", "Content-Type")))
    raw = (head + "\r\n" + "".join(body)).encode("utf-8", "surrogateescape")
    checks = [FromHeaderCheck(), SpamRulesCheck(SpamRules(OwnIdentity.of(["example.com"]))),
              SpamClassifierCheck(ModelStore(None))]
    with at_most(10):
        verdict, _ = await judge(checks, raw)
    failed = {n for n in names(verdict) if n.endswith("_CHECK_ERROR")}
    assert not failed, (failed, raw[:300])
