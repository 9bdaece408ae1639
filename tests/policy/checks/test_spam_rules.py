"""GTUBE and every hand-written spam/phishing rule: each has a message that triggers it and one that does not."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "spam"))

from spamkit import OUTSIDE_IP, business_mail, judge, mail, names

from mailbastion.core import replies
from mailbastion.core.verdict import Action
from mailbastion.policy.checks.spam_classifier import SpamClassifierCheck
from mailbastion.policy.checks.spam_rules import GtubeCheck, SpamRulesCheck
from mailbastion.spam.lookalike import OwnIdentity
from mailbastion.spam.rules import GTUBE, SpamRules
from mailbastion.spam.store import ModelStore

OURS = OwnIdentity.of(["example.com"], ["alice.smith@example.com", "info@example.com"])


def rules_check() -> SpamRulesCheck:
    return SpamRulesCheck(SpamRules(OURS))


async def rule_names(raw: bytes, **kw: object) -> set[str]:
    verdict, _ = await judge([rules_check()], raw, **kw)
    return names(verdict)


async def test_gtube_is_refused_with_550_forced_by_gtube() -> None:
    raw = mail(text="This is the GTUBE test.\n" + GTUBE.decode() + "\n")
    verdict, _ = await judge([GtubeCheck(), rules_check(), SpamClassifierCheck(ModelStore(None))], raw)
    assert verdict.action is Action.REJECT
    assert verdict.forced is not None and verdict.forced.by == "gtube"
    assert verdict.reply == replies.SPAM_REJECTED and str(verdict.reply).startswith("550 5.7.1")
    assert "GTUBE" in names(verdict)


async def test_gtube_in_a_header_counts_too() -> None:
    verdict, _ = await judge([GtubeCheck()], mail(subject=GTUBE.decode()))
    assert verdict.action is Action.REJECT


async def test_clean_business_message_passes_the_whole_spam_stage() -> None:
    checks = [GtubeCheck(), rules_check(), SpamClassifierCheck(ModelStore(None))]
    verdict, _ = await judge(checks, business_mail())
    assert verdict.action is Action.ACCEPT, verdict.describe()
    assert verdict.score < 5.0
    assert not names(verdict) & {"GTUBE", "BAYES_SPAM", "HTML_LINK_MISMATCH", "LOOKALIKE_DOMAIN"}


@pytest.mark.parametrize(("raw", "symbol"), [
    (mail(subject=None), "MISSING_SUBJECT"),
    (mail(subject=""), "EMPTY_SUBJECT"),
    (mail(subject="URGENT ACTION REQUIRED ON YOUR ACCOUNT"), "SUBJECT_ALL_CAPS"),
    (mail(text=None, html="<p>Hello Bob, the agenda is attached.</p>"), "MIME_HTML_ONLY"),
    (mail(html='<p>Hi</p><div style="display:none">cheap pills cheap pills cheap pills cheap</div>'),
     "HTML_HIDDEN_TEXT"),
    (mail(html='<span style="font-size:0px;">lorem ipsum dolor sit amet consectetur</span>'), "HTML_HIDDEN_TEXT"),
    (mail(html='<a href="http://login.evil.test/paypal">https://www.paypal.com/signin</a>'), "HTML_LINK_MISMATCH"),
    (mail(text="Open http://203.0.113.9/login.php now"), "URI_IP"),
    (mail(text="See https://bit.ly/3xYz for details"), "URI_SHORTENER"),
    (mail(date=time.time() - 30 * 86400), "DATE_IN_PAST"),
    (mail(date=time.time() + 3 * 86400), "DATE_IN_FUTURE"),
    (mail(extra=[("Reply-To", "winner@gmail.com")]), "FREEMAIL_REPLYTO"),
    (mail(text="Reset your password at https://examp1e.com/reset"), "LOOKALIKE_DOMAIN"),
    (mail(from_="IT Support <it@xn--exmple-cua.com>"), "PUNYCODE_DOMAIN"),
    (mail(text="Log in at http://example.com.account-verify.test/"), "LOOKALIKE_DOMAIN"),
    (mail(from_="Helpdesk <helpdesk@example-secure.net>"), "LOOKALIKE_DOMAIN"),
    (mail(from_='"alice.smith@example.com" <ceo@freemail.test>'), "DISPLAY_NAME_IMPERSONATION"),
    (mail(from_="Alice Smith <alice.smith.ceo@freemail.test>"), "DISPLAY_NAME_IMPERSONATION"),
    (mail(from_="Example.com IT Department <it@random.test>"), "DISPLAY_NAME_IMPERSONATION"),
    (mail(from_=".CoinBase-team <noreply@event.eventbrite.com>"), "FROM_BRAND_MISMATCH"),
    (mail(from_="PayPa1 Service <service@secure-payments.test>"), "FROM_BRAND_MISMATCH"),
])
async def test_rule_fires(raw: bytes, symbol: str) -> None:
    assert symbol in await rule_names(raw)


@pytest.mark.parametrize(("raw", "symbol"), [
    (mail(html="<p>Hello</p>"), "MIME_HTML_ONLY"),  # has a text part too
    (mail(html='<a href="https://www.paypal.com/x">https://www.paypal.com/signin</a>'), "HTML_LINK_MISMATCH"),
    (mail(html='<a href="https://shop.test/x">Click here</a>'), "HTML_LINK_MISMATCH"),
    (mail(html='<a href="http://shop.test/cgi">agora.cgi</a>'), "HTML_LINK_MISMATCH"),  # not a real suffix
    (mail(text="Visit https://www.example.com/news"), "LOOKALIKE_DOMAIN"),  # our own domain
    (mail(text="Visit https://docs.python.org/3/"), "LOOKALIKE_DOMAIN"),
    (mail(date=time.time() - 3600), "DATE_IN_PAST"),
    (mail(from_="Alice Smith <alice.smith@example.com>"), "DISPLAY_NAME_IMPERSONATION"),  # really ours
    (mail(from_="Bob Jones <bob@partner.example>"), "DISPLAY_NAME_IMPERSONATION"),
    (mail(from_="PayPal <service@mail.paypal.de>"), "FROM_BRAND_MISMATCH"),
    (mail(from_="Amazon Web Services <aws-marketing@email.aws.com>"), "FROM_BRAND_MISMATCH"),
    (mail(from_="Chasey Lain <chasey@partner.example>"), "FROM_BRAND_MISMATCH"),
])
async def test_rule_stays_quiet(raw: bytes, symbol: str) -> None:
    assert symbol not in await rule_names(raw)


async def test_display_name_rule_is_only_for_outside_senders() -> None:
    raw = mail(from_='"alice.smith@example.com" <ceo@freemail.test>')
    assert "DISPLAY_NAME_IMPERSONATION" not in await rule_names(raw, authenticated_as="alice.smith@example.com")
    assert "DISPLAY_NAME_IMPERSONATION" in await rule_names(raw, ip=OUTSIDE_IP)


async def test_cyrillic_lookalike_of_our_domain_in_a_link() -> None:
    raw = mail(html='<a href="http://xn--xample-9uf.com/login">Sign in</a>')  # еxample.com, Cyrillic е
    found = await rule_names(raw)
    assert {"LOOKALIKE_DOMAIN", "PUNYCODE_DOMAIN"} <= found


async def test_phishing_sample_scores_above_the_junk_threshold() -> None:
    raw = mail(from_='"Example.com IT Support" <support@examp1e.com>', subject="Your mailbox is full",
               text=None, html='<p>Your mailbox is full.</p><a href="http://203.0.113.5/owa">https://mail.example.com/owa</a>')
    verdict, _ = await judge([rules_check()], raw)
    assert verdict.action >= Action.JUNK, verdict.describe()
