"""Each action threshold (actions.toml: add_header 5, junk 6, quarantine 10, reject 15) reached by the spam
symbols through the real Pipeline and Scorer, and what goes to the Junk folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "spam"))

from spamkit import business_mail, judge, mail, spam_mail

from mailbastion.core import replies
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, CheckResult, Symbol
from mailbastion.policy.check import CheckContext, FunctionCheck
from mailbastion.policy.checks.spam_classifier import SpamClassifierCheck
from mailbastion.policy.checks.spam_rules import GtubeCheck, SpamRulesCheck
from mailbastion.policy.scoring import load_score_table
from mailbastion.spam.lookalike import OwnIdentity
from mailbastion.spam.rules import SpamRules
from mailbastion.spam.store import ModelStore


def emitting(*names: str) -> FunctionCheck:
    """A stand-in for the spam checks that reports fixed symbols (all of them shipped in spam.toml)."""

    async def fn(ctx: CheckContext) -> CheckResult:
        return CheckResult(tuple(Symbol(n, "0.99" if n.startswith("BAYES") else "") for n in names))

    return FunctionCheck(fn, "fixed", Stage.DATA, frozenset(names))


def test_shipped_thresholds_are_the_designs() -> None:
    t = load_score_table().thresholds
    # One threshold marks and files into Junk (issue 8 item 11, twelfth pass): no header-only band by default.
    assert (t.add_header, t.junk, t.quarantine, t.reject) == (5.0, 5.0, 10.0, 15.0)


@pytest.mark.parametrize(("symbols", "action"), [
    ((), Action.ACCEPT),
    (("BAYES_HAM",), Action.ACCEPT),
    (("URI_SHORTENER", "MIME_HTML_ONLY"), Action.ACCEPT),                                   # 4.0
    (("URI_SHORTENER", "GENERIC_GREETING"), Action.JUNK),                                   # 5.0: rules alone
    (("BAYES_SPAM_LOW",), Action.ACCEPT),                                                   # 2.0
    (("BAYES_SPAM_HIGH",), Action.ACCEPT),                                                  # 4.6: not even marked
    (("BAYES_SPAM_HIGH", "BAYES_SPAM", "BAYES_SPAM_LOW"), Action.ACCEPT),                   # capped at 4.6
    (("BAYES_SPAM_HIGH", "MIME_HTML_ONLY"), Action.JUNK),                                   # 5.6: corroborated
    (("BAYES_SPAM_HIGH", "LOOKALIKE_DOMAIN"), Action.QUARANTINE),                           # 10.6
    (("BAYES_SPAM_HIGH", "LOOKALIKE_DOMAIN", "DISPLAY_NAME_IMPERSONATION", "URIBL_SPAMHAUS_DBL"),
     Action.REJECT),                                                                       # 4.6+10+5 = 19.6
])
async def test_action_thresholds(symbols: tuple[str, ...], action: Action) -> None:
    verdict, _ = await judge([emitting(*symbols)], business_mail())
    assert verdict.action is action, verdict.describe()
    if action is Action.REJECT:
        assert verdict.reply == replies.SPAM_REJECTED


async def test_the_classifier_alone_never_reaches_junk() -> None:
    """Issue 8: a single learned symbol must not move ordinary mail to Junk; the bayes cap keeps it below (and,
    with no header-only band by default, below marking too)."""
    table = load_score_table()
    cap = table.groups["bayes"][1]
    assert table.thresholds.add_header is not None and table.thresholds.junk is not None
    assert cap is not None and cap < table.thresholds.add_header <= table.thresholds.junk
    for name in ("BAYES_SPAM_LOW", "BAYES_SPAM", "BAYES_SPAM_HIGH"):
        verdict, _ = await judge([emitting(name)], business_mail())
        assert verdict.action is Action.ACCEPT, verdict.describe()


async def test_group_caps_hold_the_rules_below_reject_on_their_own() -> None:
    every_rule = ("MISSING_SUBJECT", "SUBJECT_ALL_CAPS", "DATE_IN_FUTURE", "MIME_HTML_ONLY", "SUBJECT_RANDOM_TAG",
                  "FREEMAIL_REPLYTO", "URI_SHORTENER", "DATE_MALFORMED", "TO_UNDISCLOSED", "SPAM_PHRASES",
                  "GENERIC_GREETING", "HTML_IMAGE_ONLY")
    verdict, _ = await judge([emitting(*every_rule)], business_mail())
    assert verdict.score <= 9.0 and verdict.action < Action.QUARANTINE


def full_stage() -> list:  # type: ignore[type-arg]
    rules = SpamRules(OwnIdentity.of(["example.com"], ["alice.smith@example.com"]))
    return [GtubeCheck(), SpamRulesCheck(rules), SpamClassifierCheck(ModelStore(None))]


async def test_spam_goes_to_junk_and_ham_to_the_inbox() -> None:
    """The gateway turns Action.JUNK into the X-Mailbastion-Junk header the MDA honours; here: the action."""
    spam, _ = await judge(full_stage(), spam_mail())
    ham, _ = await judge(full_stage(), business_mail())
    assert spam.action >= Action.JUNK, spam.describe()
    assert ham.action is Action.ACCEPT, ham.describe()


async def test_phishing_of_our_users_is_quarantined() -> None:
    raw = mail(from_='"alice.smith@example.com" <alice.smith@examp1e.com>', subject="Urgent wire transfer",
               text="Please wire the payment today, details at https://bit.ly/abc", extra=[("Reply-To", "x@gmail.com")])
    verdict, _ = await judge(full_stage(), raw)
    assert verdict.action >= Action.QUARANTINE, verdict.describe()


async def test_gtube_stops_the_later_checks() -> None:
    from mailbastion.spam.rules import GTUBE

    verdict, _ = await judge([GtubeCheck(), emitting("BAYES_HAM", "SPAM_REPORT_LEARNED")],
                             mail(text=GTUBE.decode()))
    assert verdict.action is Action.REJECT and verdict.forced is not None and verdict.forced.by == "gtube"
    assert set(verdict.symbol_names) == {"GTUBE"}  # a forced reject ends the stage: nothing can outweigh it
