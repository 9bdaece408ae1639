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
    (mail(from_="DHL Express <tracking@parcel-status.test>"), "FROM_BRAND_MISMATCH"),
    (mail(from_="Netflix Billing <netflix.billing@gmail.com>"), "FREEMAIL_BRAND"),
    (mail(from_="Account Security Team <acct.security@outlook.com>"), "FREEMAIL_BRAND"),
    (mail(subject="Get Out of Debt Fast                   29521"), "SUBJECT_RANDOM_TAG"),
    (mail(subject="Something EVERY Business Needs! [wxv4m]"), "SUBJECT_RANDOM_TAG"),
    (mail(subject="Ourocard - Ref. Fatura - G3ejrKKzNc30o7qJhZ"), "SUBJECT_RANDOM_TAG"),
    (mail(extra=[("Cc", "")]), "TO_UNDISCLOSED"),
    (mail().replace(b"To: Bob <bob@example.com>", b"To: undisclosed-recipients:;"), "TO_UNDISCLOSED"),
    (mail().replace(b"Date: ", b"X-Old-Date: ").replace(b"Subject:", b"Date: Thu, 18 Jul 2002 14:58:29\r\nSubject:"),
     "DATE_MALFORMED"),
    (mail().replace(b"Date: ", b"X-Old-Date: ").replace(b"Subject:", b"Date: Thu, 18 Jul 0102 19:51:35 -0100\r\n"
                                                                   b"Subject:"), "DATE_MALFORMED"),
    (mail().replace(b"Date: ", b"X-Old-Date: ").replace(b"Subject:", b"Date: Fri, 20 Sep 2002 12:15:37 GMT+1\r\n"
                                                                   b"Subject:"), "DATE_MALFORMED"),
    (mail(text=None, html='<img src="https://cdn.shop.test/banner.png"><p>Sale</p>'), "HTML_IMAGE_ONLY"),
    (mail(text="Act now! Click here for a free gift card, limited time, 100% guaranteed."), "SPAM_PHRASES"),
    (mail(text="Dear Customer, we could not deliver your parcel."), "GENERIC_GREETING"),
    (mail(text="Sign in at http://www.bank.test@203.0.113.7/login"), "URI_USERINFO"),
    (mail(text="Your document: https://files-share-7.web.app/view"), "URI_FREE_HOSTING"),
    (mail(text="Invoice: https://storage.googleapis.com/bkt-77/inv.html"), "URI_SHARED_STORAGE"),
    (mail(text="Track it: https://track.esp.test/c?url=https%3A%2F%2Fevil.test%2Fx"), "URI_REDIRECTOR"),
    (mail(html='<a href="data:text/html;base64,PGh0bWw+">Open invoice</a>'), "DATA_URI"),
    (mail(html='<form action="https://collect.test/p"><input name="q"></form>'), "HTML_FORM"),
    (mail(html='<form action="https://collect.test/p"><input type="password" name="pw"></form>'), "HTML_FORM_PASSWORD"),
    (mail(attachment=("text/html", "Remittance.html")), "HTML_ATTACHMENT"),
    (mail(subject="Соngrаtulаtіоns, your item sold"), "MIXED_SCRIPT"),  # Cyrillic о, а, і in Latin words
    (mail(subject="\U0001d5d4\U0001d5ff\U0001d5f2 you in?"), "STYLED_UNICODE"),
    (mail(text="Your account will be suspended within 24 hours unless you verify your password."),
     "PHISH_ACCOUNT_URGENCY"),
    (mail(extra=[("Reply-To", "claims@payout-desk.test")]), "REPLYTO_DOMAIN_MISMATCH"),
    (mail(from_="Casino Bonus <promo@joe5-2b898.firebaseapp.com>"), "FROM_FREE_HOSTING"),
    (mail(from_="\U0001f525 Hot Deals <deals@shop.test>"), "FROM_EMOJI"),
    (mail(html='<img src="https://i.imgur.com/abc.png"><p>Offer</p>'), "URI_IMAGE_HOST"),
    (mail(html='<a href="http://\u00f0ab\u00ff1.photos.test/x">see</a>'), "URI_HOST_INVALID"),
    (mail(subject="Claim your Airdrop now", text="Your $ARB reward is waiting."), "PRIZE_SCAM"),
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
    (mail(from_="Mark Chase <mark@partner.example>"), "FROM_BRAND_MISMATCH"),  # a name, not the bank
    (mail(from_="DHL Paket <noreply@dhl.de>"), "FROM_BRAND_MISMATCH"),
    (mail(from_="Alice Example <alice.example@gmail.com>"), "FREEMAIL_BRAND"),
    (mail(subject="Budget review 2024"), "SUBJECT_RANDOM_TAG"),  # a year is not a tag
    (mail(subject="Minutes: Q2 planning"), "SUBJECT_RANDOM_TAG"),
    (mail(), "TO_UNDISCLOSED"),
    (mail(), "DATE_MALFORMED"),
    # A universal zone named in a comment, as some old mailers wrote it (spamassassin-train ham).
    (mail().replace(b"Date: ", b"X-Old-Date: ").replace(b"Subject:", b"Date: Mon, 16 Sep 2002 03:27:38 (GMT)\r\n"
                                                                   b"Subject:"), "DATE_MALFORMED"),
    (mail(text="Click here to see the agenda."), "SPAM_PHRASES"),  # one phrase is any newsletter
    (mail(text="Dear Bob, thanks for the notes."), "GENERIC_GREETING"),
    (mail(text="Write to bob@www.example.org or see https://www.example.org/x"), "URI_USERINFO"),
    (mail(text="Read https://docs.python.org/3/library/email.html"), "URI_FREE_HOSTING"),
    (mail(text="Our shop: https://alices-pottery.myshopify.com/"), "URI_FREE_HOSTING"),
    (mail(from_="X <notify@x.com>", text="Bob posted: https://t.co/abc123"), "URI_SHORTENER"),
    (mail(from_="Google Drive <drive-shares-dm-noreply@google.com>", text="https://docs.google.com/document/d/1"),
     "URI_SHARED_STORAGE"),  # a share notification from the provider itself
    (mail(html='<img src="data:image/png;base64,iVBORw0KGgo=">'), "DATA_URI"),  # an inline picture
    (mail(subject="Москва: встреча в пятницу"), "MIXED_SCRIPT"),  # all Cyrillic is a language, not a trick
    (mail(text="Your account settings were saved."), "PHISH_ACCOUNT_URGENCY"),
    (mail(extra=[("Reply-To", "alice@mail.partner.example")]), "REPLYTO_DOMAIN_MISMATCH"),
    (mail(extra=[("Reply-To", "list@lists.test"), ("List-Id", "<dev.lists.test>")]), "REPLYTO_DOMAIN_MISMATCH"),
    (mail(from_="Alice <alice@partner.example>"), "FROM_EMOJI"),
    (mail(html='<img src="https://cdn.partner.example/logo.png">'), "URI_IMAGE_HOST"),
    (mail(text="See https://xn--bcher-kva.example/"), "URI_HOST_INVALID"),  # an A-label is a valid host
    (mail(text="The winner of the chess club cup is Carol."), "PRIZE_SCAM"),  # one such word is news
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
