"""The public surface of mailbastion.auth is explicit (style rule 15)."""

from __future__ import annotations

import tomllib
from importlib import resources

from mailbastion import auth


def test_exported_members() -> None:
    assert sorted(auth.__all__) == sorted([
        "ArcResult", "DkimResults", "DkimVerifier", "DmarcOutcome", "DmarcPolicyFinder", "DmarcRecord",
        "FromAnalysis", "SignatureResult", "SpfEvaluator", "SpfResult", "aligned", "analyze_from",
        "organizational_domain",
    ])
    for name in auth.__all__:
        assert getattr(auth, name) is not None


def test_feature_builds_every_check_and_scores_them() -> None:
    from mailbastion.policy.checks import import_all

    import_all()  # registers every check
    from mailbastion.apps.feature_auth import build
    from mailbastion.apps.features import Services, make_resolver
    from mailbastion.config.loader import parse_settings
    from mailbastion.policy.scoring import load_score_table

    settings = parse_settings({"dns": {"nameservers": ["127.0.0.1"], "port": 9}})
    feature = build(Services(settings, make_resolver(settings)))
    assert feature.name == "auth"
    names = [c.name for c in feature.checks()]
    assert names == ["spf_early", "from_header", "spf", "dkim", "arc", "dmarc", "auth_results", "lookalike"]
    table = load_score_table()
    table.validate_emitted(feature.checks())  # every symbol we can emit is scored
    scores = resources.files("mailbastion.config") / "scores"
    shipped = {**tomllib.loads((scores / "auth.toml").read_text())["symbols"],
               **tomllib.loads((scores / "lookalike.toml").read_text())["symbols"]}
    emitted = set().union(*(c.emits for c in feature.checks()))
    assert set(shipped) == emitted  # and every symbol we score is one we emit
    off = build(Services(parse_settings({"auth": {"enabled": False}}), make_resolver(settings)))
    assert off.checks() == []


def test_weakened_settings_are_named() -> None:
    from mailbastion.config.loader import parse_settings
    from mailbastion.config.sections.auth import weakened

    assert weakened(parse_settings({}).auth) == []
    lines = weakened(parse_settings({"auth": {"dmarc_enforce": False, "trusted_arc_sealers": ["l.test"]}}).auth)
    assert any("dmarc_enforce" in x for x in lines) and any("trusted_arc_sealers" in x for x in lines)
    lines = weakened(parse_settings({"auth": {"lookalike": {"action": "score", "shipped_list": False}}}).auth)
    assert any('lookalike.action = "score"' in x for x in lines) and any("shipped_list" in x for x in lines)
