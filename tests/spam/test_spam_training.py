"""Bulk training, the model file, the shipped default, and the `spam train|learn|status` commands."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from spamkit import BUSINESS_TEXT, business_mail, mail, spam_mail

from mailbastion.cli import main_group
from mailbastion.spam.features import extract_bytes
from mailbastion.spam.model import SpamModel
from mailbastion.spam.store import ModelStore, shipped_model_path
from mailbastion.spam.tokens import tokens
from mailbastion.spam.training import message_files, train


def test_shipped_model_is_present_small_and_documented() -> None:
    path = shipped_model_path()
    assert path.exists() and path.stat().st_size < 5 * 1024 * 1024
    doc = (path.parent / "MODEL.md").read_text()
    assert "SpamAssassin public corpus" in doc and "phishing_pot" in doc and "Licence" in doc
    model = SpamModel.load(path)
    assert model.is_trained and model.meta["ham"] > 1000 and model.meta["spam"] > 1000
    assert all("phishing" not in s and "trec" not in s.lower() for s in model.meta["trained_on"])


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = SpamModel.load(shipped_model_path())
    tok = tokens(extract_bytes(spam_mail()))
    model.save(tmp_path / "m.joblib")
    assert SpamModel.load(tmp_path / "m.joblib").probability(tok) == pytest.approx(model.probability(tok), abs=1e-4)


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    import joblib

    joblib.dump({"format": 99}, tmp_path / "x.joblib")
    with pytest.raises(ValueError):
        SpamModel.load(tmp_path / "x.joblib")
    store = ModelStore(tmp_path / "x.joblib")
    assert not store.model().is_trained  # logged, and the classifier says BAYES_UNTRAINED


WEBINAR = ("Hello Bob, following up on the ledger reconciliation project: our consultants can migrate your "
           "invoices to the new accounting platform next quarter.")


def corpus(root: Path) -> tuple[Path, Path]:
    ham, spam = root / "ham", root / "spam"
    ham.mkdir(parents=True)
    spam.mkdir(parents=True)
    for i in range(12):
        (ham / f"{i}.eml").write_bytes(b"From alice@partner.example Mon Jan  1 00:00:00 2026\n" + mail(
            subject=f"Project review {i}", text=BUSINESS_TEXT + f"\nItem {i}: invoice reconciliation ledger"))
        # The site's spam looks like business mail to the shipped model: a pushy consultant's pitches.
        (spam / f"{i}.eml").write_bytes(mail(subject=f"Ledger reconciliation follow-up {i}",
                                              text=WEBINAR + f" Offer {i} ends soon.",
                                              from_=f"Sales <sales{i}@ledger-consult.example>"))
    (ham / ".hidden").write_bytes(b"x")
    (ham / "MANIFEST.sha256").write_bytes(b"x")
    return ham, spam


def test_train_learns_on_top_of_the_shipped_model(tmp_path: Path) -> None:
    ham, spam = corpus(tmp_path / "corpus")
    assert len(message_files([ham])) == 12  # dotfiles and MANIFEST skipped
    store = ModelStore(tmp_path / "site" / "model.joblib")
    seen = []
    result = train(store, ham=[ham], spam=[spam], progress=seen.append)
    assert (result.ham, result.spam, result.skipped) == (12, 12, 0) and len(seen) == 24
    meta = store.model().meta
    assert meta["ham"] == SpamModel.load(shipped_model_path()).meta["ham"] + 12
    probe = mail(subject="Ledger reconciliation follow-up", text=WEBINAR, from_="Sales <sales@ledger-consult.example>")
    before = SpamModel.load(shipped_model_path()).probability(tokens(extract_bytes(probe)))
    model = store.model()
    assert before < 0.5 <= model.probability(tokens(extract_bytes(probe)))
    # What the shipped model knew is still known.
    assert model.probability(tokens(extract_bytes(spam_mail()))) > 0.9
    assert model.probability(tokens(extract_bytes(business_mail()))) < 0.5


def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "mailbastion.toml"
    cfg.write_text('[server]\ndata_dir = "data"\n')
    return cfg


def test_cli_train_and_status(tmp_path: Path) -> None:
    ham, spam = corpus(tmp_path / "corpus")
    cfg = config(tmp_path)
    runner = CliRunner()
    r = runner.invoke(main_group, ["spam", "train", "-c", str(cfg), "--ham", str(ham), "--spam", str(spam),
                                   "--spam", str(spam)])
    assert r.exit_code == 0, r.output
    assert "trained on 12 ham and 24 spam" in r.output
    assert (tmp_path / "data" / "spam" / "model.joblib").exists()
    r = runner.invoke(main_group, ["spam", "status", "-c", str(cfg)])
    assert r.exit_code == 0 and "(site)" in r.output


def test_cli_learn_one_message(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    eml = tmp_path / "m.eml"
    eml.write_bytes(business_mail())
    r = CliRunner().invoke(main_group, ["spam", "learn", "-c", str(cfg), "--spam", str(eml)])
    assert r.exit_code == 0, r.output
    before, after = (float(x) for x in r.output.split("P(spam) ")[1].split(",")[0].split(" -> "))
    assert after > before and after >= 0.9


def test_cli_usage_errors(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert CliRunner().invoke(main_group, ["spam", "train", "-c", str(cfg)]).exit_code == 2
    eml = tmp_path / "m.eml"
    eml.write_bytes(business_mail())
    assert CliRunner().invoke(main_group, ["spam", "learn", "-c", str(cfg), str(eml)]).exit_code == 2


def test_stores_share_one_read_model_and_learning_never_mutates_it(tmp_path: Path) -> None:
    # What apps/workers.preload relies on: a model read by one store (the parent's, before the acceptors
    # fork) is the one every other store of the process classifies with, until the file changes.
    first = ModelStore(tmp_path / "site" / "model.joblib", reload_interval=0)
    second = ModelStore(tmp_path / "site" / "model.joblib", reload_interval=0)
    shared = first.model()
    assert second.model() is shared
    toks = tokens(extract_bytes(spam_mail()))
    before, counts = shared.probability(toks), dict(shared.meta)
    first.learn(spam_mail(), is_spam=True, source="test")  # writes the site model: a copy of its own
    assert first.model() is not shared and second.model() is not shared  # both classify with the new file
    assert shared.probability(toks) == before and shared.meta == counts  # the shared one was not touched
