"""The spam Feature: which checks it builds from the configuration, and that the score table covers them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from spamkit import judge, mail, names

import mailbastion.spam
from mailbastion.apps.feature_spam import build
from mailbastion.apps.features import Services
from mailbastion.config import parse_settings
from mailbastion.dns.resolver import DnsResolver
from mailbastion.policy.checks import import_all
from mailbastion.policy.pipeline import Pipeline
from mailbastion.policy.scoring import Scorer, load_score_table

import_all()  # registers every check


def services(tmp_path: Path, spam: dict | None = None, domains: list[str] | None = None) -> Services:  # type: ignore[type-arg]
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    if domains is not None:
        (data / "recipient-map.json").write_text(json.dumps({"domains": domains, "addresses": []}))
    settings = parse_settings({"server": {"data_dir": str(data)}, "spam": spam or {}})
    return Services(settings, DnsResolver(["127.0.0.1"], port=9, timeout=0.2))


def test_default_checks_and_scores(tmp_path: Path) -> None:
    feature = build(services(tmp_path))
    got = {c.name for c in feature.checks()}
    assert got == {"gtube", "spam_rules", "spam_classifier", "dnsbl_client", "dnsbl_uri", "ratelimit", "spam_report"}
    assert feature.startup_problems() == []
    import mailbastion.apps.pipeline  # noqa: F401  (registers every check, as serve does)

    table = load_score_table()
    table.validate_known()
    Pipeline(feature.checks(), Scorer(table))  # every emitted symbol is scored


def test_learning_entry_point_for_junk_moves(tmp_path: Path) -> None:
    svc = services(tmp_path)
    feature = build(svc)
    assert svc.extras["spam"] is feature
    steps = feature.learn(mail(subject="moved to Junk by a user"), is_spam=True, source="junk-move")
    assert steps > 0 and (tmp_path / "data" / "spam" / "model.joblib").exists()
    assert "junk-move" in (tmp_path / "data" / "spam" / "learned.log").read_text()


def test_options_add_greylist_and_external_tag_and_disable(tmp_path: Path) -> None:
    feature = build(services(tmp_path, {"greylist": {"enabled": True, "backend": "memory"},
                                        "external": {"mode": "subject"}, "dnsbl": {"enabled": False}}))
    got = {c.name for c in feature.checks()}
    assert {"greylist", "external_tag"} <= got and not {"dnsbl_client", "dnsbl_uri"} & got
    assert build(services(tmp_path, {"enabled": False})).checks() == []


async def test_lookalike_uses_our_domains_from_the_recipient_map(tmp_path: Path) -> None:
    feature = build(services(tmp_path, {"dnsbl": {"enabled": False}}, domains=["bastion.example"]))
    checks = [c for c in feature.checks() if c.name == "spam_rules"]
    verdict, _ = await judge(checks, mail(text="Log in at https://bastlon.example/owa"))
    assert "LOOKALIKE_DOMAIN" in names(verdict)


def test_package_surface() -> None:
    assert sorted(mailbastion.spam.__all__) == ["MessageFeatures", "ModelStore", "SpamModel", "extract",
                                                "extract_bytes", "shipped_model_path", "tokens"]
    for name in mailbastion.spam.__all__:
        assert hasattr(mailbastion.spam, name)


def test_weakened_settings_are_named() -> None:
    from mailbastion.config import weakened

    settings = parse_settings({"spam": {"dnsbl": {"enabled": False}, "classifier": {"spam_probability": 0.9}}})
    found = weakened(settings)
    assert "spam.dnsbl.enabled = false" in found
    assert any(w.startswith("spam.classifier.spam_probability = 0.9") for w in found)
    assert not [w for w in weakened(parse_settings({})) if w.startswith("spam.")]


def test_rate_limits_are_shared_between_workers(tmp_path: Path) -> None:
    from mailbastion.policy.checks.ratelimit import RateLimitCheck
    from mailbastion.spam.ratelimit import RateLimiter, SqliteRateLimiter

    def limiter(svc: Services) -> object:
        return next(c for c in build(svc).checks() if isinstance(c, RateLimitCheck)).limiter

    assert isinstance(limiter(services(tmp_path)), RateLimiter)
    data = tmp_path / "data"
    svc = Services(parse_settings({"server": {"data_dir": str(data), "workers": 2}}),
                   DnsResolver(["127.0.0.1"], port=9, timeout=0.2))
    assert isinstance(limiter(svc), SqliteRateLimiter)
    assert (data / "spam" / "ratelimit.db").exists()


def test_preload_reads_the_model_that_every_later_store_shares(tmp_path: Path) -> None:
    from mailbastion.spam.store import ModelStore

    feature = build(services(tmp_path))
    feature.preload()  # what apps/workers.preload does in the parent before the acceptors fork
    assert feature.store is not None
    later = ModelStore(feature.store.site_path)  # an acceptor's own store, built after the fork
    assert later.model() is feature.store.model() and later.model().is_trained
