"""Comments nested a thousand deep in an address header ("(a (a (a ...", 6 KB) made the stdlib address parsers
raise RecursionError: every check that reads From, Reply-To, To or Sender failed, each failure weighs 0, and an
obvious spam was accepted with a score of 0 (found by the eighth pass of issue 8 item 11). Now such a From is
refused as unreadable and such a Reply-To, To or Sender reads as no address, so the rest of the message is judged."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from spamkit import SPAM_TEXT, judge, mail, names

from mailbastion.auth.from_header import analyze_from
from mailbastion.core import lenient_addresses
from mailbastion.core.verdict import Action
from mailbastion.policy.checks.from_header import FromHeaderCheck
from mailbastion.policy.checks.spam_rules import SpamRulesCheck
from mailbastion.spam.lookalike import OwnIdentity
from mailbastion.spam.rules import SpamRules

NESTED = "(a " * 2000


def test_the_lenient_parsers_read_no_address_from_a_nesting_they_cannot_follow() -> None:
    assert lenient_addresses.parseaddr(NESTED) == ("", "")
    assert lenient_addresses.getaddresses([NESTED, "Bob <bob@example.com>"]) == [("", ""), ("Bob", "bob@example.com")]
    assert lenient_addresses.parseaddr("(a (b) c) Bob <bob@example.com>")[1] == "bob@example.com"  # as before


def test_a_from_nested_too_deep_is_refused_as_unreadable() -> None:
    analysis = analyze_from(f"From: {NESTED}\r\nSubject: x\r\n".encode())
    assert analysis.refuse and analysis.address is None
    assert [s.name for s in analysis.symbols] == ["FROM_UNPARSEABLE"]


def spam_with(field: str) -> bytes:
    raw = mail(subject="FREE $1000 GIFT CARD - CLAIM YOUR PRIZE NOW!!!", text=SPAM_TEXT,
               from_="Best Offers <offers@cheap-deals.example>")
    return raw.replace(b"MIME-Version", f"{field}: {NESTED}\r\nMIME-Version".encode())


@pytest.mark.parametrize("field", ["Reply-To", "To", "Sender", "Cc"])
async def test_a_nested_address_field_does_not_switch_the_spam_rules_off(field: str) -> None:
    checks = [FromHeaderCheck(), SpamRulesCheck(SpamRules(OwnIdentity.of(["example.com"])))]
    verdict, _ = await judge(checks, spam_with(field))
    got = names(verdict)
    assert not {n for n in got if n.endswith("_CHECK_ERROR")}, got
    assert {"SPAM_PHRASES", "TEXT_EXCLAMATIONS"} <= got
    assert verdict.action >= Action.JUNK, verdict.describe()
