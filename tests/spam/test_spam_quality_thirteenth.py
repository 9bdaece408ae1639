"""Issue 8 item 11, thirteenth pass (docs/spam-quality.md, "Thirteenth session"): a hidden recipient list whose
every link goes to the sender's own site (a shop's or a club's customers in Bcc) weighs less than a hidden list
that points elsewhere or nowhere, which is how advance-fee, giveaway and phishing sprays are sent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from spamkit import mail, rule_names, shipped_action

from mailbastion.core.verdict import Action
from mailbastion.policy.scoring import load_score_table

SHOP = "All Things Example - Trivia <trivia@allthings.example>"


def hidden_list(*, from_: str = SHOP, text: str | None = None, html: str | None = None) -> bytes:
    raw = mail(subject="This week's trivia question", from_=from_, text=text, html=html)
    return raw.replace(b"To: Bob <bob@example.com>", b"To: <Undisclosed-Recipient:;>")


@pytest.mark.parametrize("raw", [
    hidden_list(text="Last week's answer: Nantucket. Order today: http://www.allthings.example/store?p=1\n"
                     "This week's question is on www.allthings.example\n"),
    hidden_list(html='<p>Answer: Nantucket.</p><a href="https://shop.allthings.example/back-to-school">Order</a>'),
])
async def test_a_hidden_list_linking_only_to_the_senders_own_site_is_the_weaker_sign(raw: bytes) -> None:
    found = await rule_names(raw)
    assert "TO_UNDISCLOSED_OWN_LINKS" in found
    assert "TO_UNDISCLOSED" not in found


@pytest.mark.parametrize("raw", [
    # nowhere to go: an advance-fee letter asks for a reply
    hidden_list(from_="Nora Alex <nora.alex@gmail.com>", text="I inherited a fund and need a partner abroad.\n"),
    hidden_list(text="I inherited a fund and need a partner abroad.\n"),
    # somewhere else: a giveaway from a mailbox that is not the site's
    hidden_list(from_="Dogem Community <financeiro@pecas.example>",
                text="Claim your tokens: https://dogem-claim.example/get\n"),
    # the sender's own site and another one
    hidden_list(text="Order at http://www.allthings.example/ or https://partner-offers.example/deal\n"),
    # a freemail domain is nobody's own site, even when the link is on it
    hidden_list(from_="Senna <senna.payout@gmail.com>", text="Your withdrawal: https://mail.gmail.com/x\n"),
    # the sender's own tracker carrying the reader to another site
    hidden_list(html='<a href="https://click.allthings.example/c?u=https%3A%2F%2Fsecure-login.example%2F">Log in</a>'),
])
async def test_a_hidden_list_pointing_elsewhere_or_nowhere_keeps_the_strong_sign(raw: bytes) -> None:
    found = await rule_names(raw)
    assert "TO_UNDISCLOSED" in found
    assert "TO_UNDISCLOSED_OWN_LINKS" not in found


def test_the_weaker_sign_needs_more_corroboration_than_the_strong_one() -> None:
    table = load_score_table()
    assert table.weight("TO_UNDISCLOSED_OWN_LINKS").weight < table.weight("TO_UNDISCLOSED").weight
    # hard_ham/00199's shape: a shop's trivia newsletter to its customers in Bcc, "click here ... limited time ...
    # order today", which the classifier puts in BAYES_SPAM by cross-validation: no longer in Junk
    assert shipped_action("TO_UNDISCLOSED_OWN_LINKS", "SPAM_PHRASES", "BAYES_SPAM") is Action.ACCEPT
    # the same words sent to a hidden list that points elsewhere still go to Junk
    assert shipped_action("TO_UNDISCLOSED", "SPAM_PHRASES", "BAYES_SPAM") is Action.JUNK
    # and a phishing spray with only a hidden list and the classifier's lowest band, as before
    assert shipped_action("TO_UNDISCLOSED", "BAYES_SPAM_LOW") is Action.JUNK
