from pathlib import Path

import pytest

from mailbastion.core import replies
from mailbastion.core.errors import ConfigError
from mailbastion.core.verdict import Action, Forced, Symbol
from mailbastion.policy.scoring import Scorer, ScoreTable, SymbolScore, Thresholds, load_score_table


def _table(**weights: float) -> ScoreTable:
    return ScoreTable(
        {name: SymbolScore(w, "g1" if name.startswith("A") else "g2", "") for name, w in weights.items()},
        groups={"g1": (None, 4.0)},
        thresholds=Thresholds(add_header=5, junk=6, quarantine=10, soft_reject=None, reject=15),
    )


def test_thresholds_pick_highest_reached() -> None:
    t = Thresholds(add_header=5, junk=6, quarantine=10, soft_reject=None, reject=15)
    assert t.action_for(0) is Action.ACCEPT
    assert t.action_for(5) is Action.ADD_HEADER
    assert t.action_for(7.5) is Action.JUNK
    assert t.action_for(12) is Action.QUARANTINE
    assert t.action_for(100) is Action.REJECT


def test_the_shipped_thresholds_live_only_in_actions_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    import tomllib
    from importlib import resources

    from mailbastion.policy import scoring

    shipped = tomllib.loads(resources.files("mailbastion.config").joinpath("scores/actions.toml").read_text())
    assert load_score_table().thresholds == Thresholds(**shipped["actions"])
    assert Thresholds().action_for(1000.0) is Action.ACCEPT  # no second copy of the numbers to drift apart
    # an install whose tables lost [actions] must not start and accept everything
    real = scoring._shipped_files
    monkeypatch.setattr(scoring, "_shipped_files", lambda: [(n, t) for n, t in real() if not n.endswith("actions.toml")])
    with pytest.raises(ConfigError, match=r"no \[actions\] thresholds"):
        load_score_table()


def test_group_cap_limits_contribution() -> None:
    scorer = Scorer(_table(A1=3.0, A2=3.0, B1=2.0))
    total, scored = scorer.score([Symbol("A1"), Symbol("A2"), Symbol("B1")])
    assert total == 6.0  # g1 capped at 4, plus g2's 2
    assert {s.name for s in scored} == {"A1", "A2", "B1"}


def test_score_action_and_reply() -> None:
    scorer = Scorer(_table(B1=16.0))
    verdict = scorer.decide([Symbol("B1", "x")], None)
    assert verdict.action is Action.REJECT and verdict.reply == replies.SPAM_REJECTED


def test_forced_beats_score() -> None:
    scorer = Scorer(_table(B1=-50.0))
    forced = Forced(Action.REJECT, replies.VIRUS_FOUND, by="antivirus")
    verdict = scorer.decide([Symbol("B1")], forced)
    assert verdict.action is Action.REJECT
    assert verdict.forced is forced and verdict.reply == replies.VIRUS_FOUND
    assert "forced_by=antivirus" in verdict.describe()


def test_shipped_scores_load_and_site_override(tmp_path: Path) -> None:
    table = load_score_table()
    assert table.thresholds.reject == 15.0
    site = tmp_path / "scores.toml"
    site.write_text("[actions]\nreject = 20.0\n")
    assert load_score_table(site).thresholds.reject == 20.0


def test_site_cannot_invent_symbols(tmp_path: Path) -> None:
    site = tmp_path / "scores.toml"
    site.write_text("[symbols.NOT_A_SYMBOL]\nweight = 1.0\n")
    with pytest.raises(ConfigError, match="NOT_A_SYMBOL"):
        load_score_table(site)


def test_site_unknown_action_refused(tmp_path: Path) -> None:
    site = tmp_path / "scores.toml"
    site.write_text("[actions]\nexplode = 1.0\n")
    with pytest.raises(ConfigError, match="unknown action"):
        load_score_table(site)


def test_every_shipped_symbol_is_emitted_by_a_known_check() -> None:
    import mailbastion.apps.pipeline  # noqa: F401  (registers every check, as serve does)

    load_score_table().validate_known()


def test_forced_junk_never_weakens_a_score_reject() -> None:
    scorer = Scorer(_table(B1=20.0))
    forced = Forced(Action.JUNK, replies.OK, by="dmarc")
    verdict = scorer.decide([Symbol("B1")], forced)
    assert verdict.action is Action.REJECT and verdict.forced is None
    assert Scorer(_table(B1=1.0)).decide([Symbol("B1")], forced).action is Action.JUNK
