"""Quality guards on the labelled corpora (the benchmark is bench/spam_bench.py; these catch a broken model,
tokenizer or rule set): the shipped model on mail it never saw, and a model trained on one part of
spamassassin-train judged on the rest. Needs ../shared/corpora or $MAILBASTION_CORPORA; skipped, saying
so, when absent. Only the DATA-stage spam checks run here, dates judged as of each message's arrival."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from spamkit import context

from mailbastion.core.message import SpooledMessage
from mailbastion.core.verdict import Action, Verdict
from mailbastion.policy.checks.spam_classifier import SpamClassifierCheck
from mailbastion.policy.checks.spam_rules import GtubeCheck, SpamRulesCheck
from mailbastion.policy.pipeline import Pipeline
from mailbastion.policy.scoring import Scorer, load_score_table
from mailbastion.spam.arrival import ArrivalTime, received_time
from mailbastion.spam.model import SpamModel
from mailbastion.spam.rules import SpamRules
from mailbastion.spam.store import ModelStore
from mailbastion.spam.training import read_tokens, strip_mbox_line

REPO = Path(__file__).resolve().parents[2]


def _corpora() -> Path:
    env = os.environ.get("MAILBASTION_CORPORA")
    if env:
        return Path(env)
    for base in (REPO.parent, REPO.parent.parent):  # a checkout, or a worktree beside it
        if (base / "shared" / "corpora").is_dir():
            return base / "shared" / "corpora"
    return REPO.parent / "shared" / "corpora"


CORPORA = _corpora()
pytestmark = [
    pytest.mark.corpora,
    pytest.mark.skipif(not (CORPORA / "trec07p").is_dir(), reason=f"corpora not found at {CORPORA}"),
]


def _key(path: Path) -> int:
    return int(hashlib.sha1(path.name.encode()).hexdigest(), 16)


async def _judge(pipeline: Pipeline, path: Path) -> Verdict:
    raw = strip_mbox_line(path.read_bytes())
    ctx = context(raw, sender=None)
    arrival = received_time(SpooledMessage(raw).header)
    if arrival is not None:
        ctx.put(ArrivalTime(arrival))
    out = await pipeline.run_stage(ctx)
    return pipeline.decide(out.symbols, out.forced, out.edits)


def _pipeline(store: ModelStore) -> Pipeline:
    return Pipeline([GtubeCheck(), SpamRulesCheck(SpamRules()), SpamClassifierCheck(store)], Scorer(load_score_table()))


async def test_shipped_model_on_unseen_trec_sample() -> None:
    base = CORPORA / "trec07p" / "trec07p" / "full"
    lines = (base / "index").read_text().splitlines()[::40]  # 200 messages, 2007: five years after its training
    pipeline = _pipeline(ModelStore(None))
    flagged = {"ham": 0, "spam": 0}
    junked = {"ham": 0, "spam": 0}
    count = {"ham": 0, "spam": 0}
    for line in lines:
        label, rel = line.split()
        verdict = await _judge(pipeline, (base / rel).resolve())
        count[label] += 1
        flagged[label] += verdict.action >= Action.ADD_HEADER
        junked[label] += verdict.action >= Action.JUNK
    assert junked["ham"] / count["ham"] <= 0.02
    assert flagged["ham"] / count["ham"] <= 0.05  # measured 0 of 68 (issue 8 item 11)
    # Measured 46 of 132 (35 %) after issue 8 item 11's first pass, 50 of 132 (38 %, all in Junk) after its
    # twelfth (one threshold marks and files): the classifier alone does not mark, so a 2002 model on 2007 spam
    # marks less than it did (about 45 % before); this guards against a broken model or tokenizer, not the
    # quality of a site's own model.
    assert flagged["spam"] / count["spam"] >= 0.33


async def test_shipped_model_and_rules_catch_held_out_phishing() -> None:
    """The held-out part of phishing_pot (30 % by a hash of the name) was never looked at writing the rules."""
    files = [f for f in sorted((CORPORA / "phishing_pot" / "email").glob("*.eml")) if _key(f) % 10 < 3][::3]
    pipeline = _pipeline(ModelStore(None))
    junked = sum([(await _judge(pipeline, f)).action >= Action.JUNK for f in files])
    assert junked / len(files) >= 0.72  # measured 86 of 114 (75 %), the spam stage alone (issue 8 item 11); 103 after its twelfth pass


async def test_a_model_trained_on_part_of_the_corpus_judges_the_rest(tmp_path: Path) -> None:
    """One fold of the benchmark's cross-validation, the spam stage alone: a broken tokenizer or model
    shows here long before the benchmark runs."""
    root = CORPORA / "spamassassin-train"
    items = [(f, d.startswith("spam")) for d in ("easy_ham", "easy_ham_2", "hard_ham", "spam", "spam_2")
             for f in sorted((root / d).iterdir()) if f.is_file() and not f.name.startswith(("cmds", "MANIFEST"))]
    train = [(f, y) for f, y in items if (_key(f) // 10) % 5 != 0]
    test = [(f, y) for f, y in items if (_key(f) // 10) % 5 == 0][::2]
    ham, _ = read_tokens([f for f, y in train if not y])
    spam, _ = read_tokens([f for f, y in train if y])
    model = SpamModel.empty()
    model.fit([*ham, *spam], [0] * len(ham) + [1] * len(spam))
    path = tmp_path / "model.joblib"
    model.save(path)
    pipeline = _pipeline(ModelStore(path, shipped_path=path))
    ham_flagged = spam_junked = n_ham = n_spam = 0
    for f, is_spam in test:
        verdict = await _judge(pipeline, f)
        if is_spam:
            n_spam += 1
            spam_junked += verdict.action >= Action.JUNK
        else:
            n_ham += 1
            ham_flagged += verdict.action >= Action.ADD_HEADER
    assert ham_flagged / n_ham <= 0.01
    assert spam_junked / n_spam >= 0.88  # measured 131 of 142 (92 %); ham flagged 1 of 309 (issue 8 item 11)
