"""The classifier check: symbols from the probability, the shipped model out of the box, and learning that
changes the next verdict on a near copy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "spam"))

from spamkit import SPAM_TEXT, business_mail, judge, mail, names, spam_mail

from mailbastion.core.verdict import Action
from mailbastion.policy.checks.spam_classifier import SpamClassifierCheck
from mailbastion.policy.scoring import load_score_table
from mailbastion.spam.model import SpamModel
from mailbastion.spam.store import ModelStore

SPAM_BANDS = {"BAYES_SPAM_LOW", "BAYES_SPAM", "BAYES_SPAM_HIGH"}


def symbol_detail(verdict, name: str) -> str:  # type: ignore[no-untyped-def]
    return next(s.detail for s in verdict.symbols if s.name == name)


async def test_shipped_model_flags_obvious_spam_with_its_probability() -> None:
    verdict, _ = await judge([SpamClassifierCheck(ModelStore(None))], spam_mail())
    assert names(verdict) == {"BAYES_SPAM_HIGH"}  # one band, the highest
    assert float(symbol_detail(verdict, "BAYES_SPAM_HIGH")) >= 0.99
    # The classifier alone neither marks it nor moves it to Junk (issue 8): that takes another symbol.
    assert verdict.action is Action.ACCEPT
    assert verdict.score == load_score_table().weight("BAYES_SPAM_HIGH").weight


@pytest.mark.parametrize(("p", "band"), [(0.995, "BAYES_SPAM_HIGH"), (0.97, "BAYES_SPAM"), (0.85, "BAYES_SPAM"),
                                         (0.6, "BAYES_SPAM_LOW"), (0.3, None), (0.05, "BAYES_HAM")])
async def test_each_probability_falls_in_one_band(p: float, band: str | None) -> None:
    check = SpamClassifierCheck(ModelStore(None))
    check.probability = lambda _ctx: p  # type: ignore[method-assign]
    verdict, _ = await judge([check], business_mail())
    assert names(verdict) == ({band} if band else set())


def test_bands_must_rise() -> None:
    with pytest.raises(ValueError):
        SpamClassifierCheck(ModelStore(None), low_probability=0.9, spam_probability=0.8)


async def test_shipped_model_does_not_flag_a_business_message() -> None:
    verdict, _ = await judge([SpamClassifierCheck(ModelStore(None))], business_mail())
    assert not names(verdict) & SPAM_BANDS
    assert verdict.action is Action.ACCEPT


async def test_untrained_model_says_so_and_adds_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.joblib"
    SpamModel.empty().save(empty)
    verdict, _ = await judge([SpamClassifierCheck(ModelStore(None, shipped_path=empty))], spam_mail())
    assert names(verdict) == {"BAYES_UNTRAINED"}
    assert verdict.score == 0


async def test_authentication_symbols_are_features(tmp_path: Path) -> None:
    check = SpamClassifierCheck(ModelStore(None))
    from spamkit import context

    ctx = context(business_mail())
    p_plain = check.probability(ctx)
    from mailbastion.core.verdict import Symbol

    ctx2 = context(business_mail())
    ctx2.symbols.append(Symbol("DMARC_POLICY_REJECT"))
    ctx2.symbols.append(Symbol("R_SPF_FAIL"))
    p_failed = check.probability(ctx2)
    assert p_plain is not None and p_failed is not None and p_plain != p_failed


async def test_learning_one_message_changes_the_next_verdict_on_a_near_copy(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "spam" / "model.joblib")
    check = SpamClassifierCheck(store)
    pitch = ("Hello Bob, our quarterly webinar on cloud migration strategy is next Tuesday. Register for the "
             "session on database consolidation and budget planning with our solution architects.")
    sender = "Cloud Events <events@webinar-news.example>"
    first = mail(subject="Webinar: cloud migration strategy", text=pitch, from_=sender)
    before, _ = await judge([check], first)
    assert not names(before) & {"BAYES_SPAM", "BAYES_SPAM_HIGH"}, before.describe()
    store.learn(first, is_spam=True, source="test")
    assert (tmp_path / "spam" / "model.joblib").exists()  # the site model, on top of the shipped one
    near_copy = mail(subject="Webinar: cloud migration strategy (reminder)", text=pitch + " Seats are limited.",
                     from_=sender)
    after, _ = await judge([check], near_copy)
    assert names(after) & {"BAYES_SPAM", "BAYES_SPAM_HIGH"}, after.describe()
    assert after.score >= before.score + load_score_table().weight("BAYES_SPAM").weight  # at least BAYES_SPAM's
    # ... and the ordinary business message is still fine.
    still, _ = await judge([check], business_mail())
    assert not names(still) & SPAM_BANDS


async def test_learning_ham_rescues_a_false_positive(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "model.joblib")
    check = SpamClassifierCheck(store)
    promo = mail(subject="Your FREE gift card offer", text=SPAM_TEXT.replace("Dear friend", "Dear Bob"))
    before, _ = await judge([check], promo)
    assert names(before) & {"BAYES_SPAM", "BAYES_SPAM_HIGH"}
    store.learn(promo, is_spam=False, source="test")
    after, _ = await judge([check], promo)
    assert not names(after) & SPAM_BANDS


def test_site_model_is_picked_up_by_another_store(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    writer, reader = ModelStore(path), ModelStore(path, reload_interval=0.0)
    from mailbastion.spam.features import extract_bytes
    from mailbastion.spam.tokens import tokens

    tok = tokens(extract_bytes(business_mail()))
    p0 = reader.model().probability(tok)
    writer.learn(business_mail(), is_spam=True, source="test")
    assert reader.model().probability(tok) > p0
