"""Out-of-the-box quality of the shipped model on mail it never saw (TREC 2007, phishing_pot): a guard
against a broken model, not the benchmark (bench/spam_bench.py is). Needs ../shared/corpora or
$MAILBASTION_CORPORA; skipped, saying so, when absent."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from spamkit import judge

from mailbastion.core.verdict import Action
from mailbastion.policy.checks.spam_classifier import SpamClassifierCheck
from mailbastion.policy.checks.spam_rules import GtubeCheck, SpamRulesCheck
from mailbastion.spam.rules import SpamRules
from mailbastion.spam.store import ModelStore

REPO = Path(__file__).resolve().parents[2]
CORPORA = Path(os.environ.get("MAILBASTION_CORPORA", REPO.parent / "shared" / "corpora"))

pytestmark = [
    pytest.mark.corpora,
    pytest.mark.skipif(not (CORPORA / "trec07p").is_dir(), reason=f"corpora not found at {CORPORA}"),
]


async def test_shipped_model_on_unseen_trec_sample() -> None:
    base = CORPORA / "trec07p" / "trec07p" / "full"
    lines = (base / "index").read_text().splitlines()[::40]  # 200 messages
    # Dates are judged against arrival; the corpus is from 2007, so leave DATE_IN_PAST out of this guard.
    checks = [GtubeCheck(), SpamRulesCheck(SpamRules(past_hours=1e9)), SpamClassifierCheck(ModelStore(None))]
    junked = {"ham": 0, "spam": 0}
    count = {"ham": 0, "spam": 0}
    for line in lines:
        label, rel = line.split()
        verdict, _ = await judge(checks, (base / rel).read_bytes())
        count[label] += 1
        junked[label] += verdict.action >= Action.JUNK
    assert junked["ham"] / count["ham"] <= 0.03
    assert junked["spam"] / count["spam"] >= 0.25


async def test_shipped_model_flags_most_unseen_phishing() -> None:
    files = sorted((CORPORA / "phishing_pot" / "email").glob("*.eml"))[::12]  # 100 messages
    checks = [GtubeCheck(), SpamRulesCheck(SpamRules(past_hours=1e9)), SpamClassifierCheck(ModelStore(None))]
    flagged = 0
    for f in files:
        verdict, _ = await judge(checks, f.read_bytes())
        flagged += verdict.action >= Action.ADD_HEADER
    assert flagged / len(files) >= 0.7
