"""Measure 2 counts only engines with vendor-maintained signatures; the watch turns auto engines on and
off and says so; the check defers mail (by stale_policy) while no such engine scanned it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbastion.apps.feature_antivirus import build
from mailbastion.apps.features import Services
from mailbastion.config import parse_settings
from mailbastion.core import replies
from mailbastion.core.errors import EngineUnavailable
from mailbastion.core.message import SpooledMessage
from mailbastion.core.verdict import Action
from mailbastion.engines.freshness import FreshnessWatch
from mailbastion.engines.measure2 import assess, configuration_problems
from mailbastion.policy.checks.antivirus import AntivirusCheck, AvPolicy
from mailbastion.testing import av

FRESH = datetime.now(UTC) - timedelta(hours=1)
CLEAN = av.attach([("report.pdf", "application/pdf", av.clean_pdf())])


def ours() -> list[av.FakeScanner]:
    return [av.FakeScanner(name="yara", vendor="yara"), av.FakeScanner(name="attachments", vendor="mailbastion")]


def test_our_rules_alone_never_meet_measure_2() -> None:
    scanners = ours()
    assert not any(s.vendor_signatures for s in scanners)
    problems = configuration_problems("microsoft", scanners)
    assert problems and "measure 2 not met" in problems[0] and "do not count" in problems[0]
    assert not assess("microsoft", scanners, {}).met


async def test_a_fresh_clamav_of_another_vendor_meets_it_and_the_same_vendor_does_not() -> None:
    clamav = av.FakeScanner(signature_date=FRESH)
    watch = FreshnessWatch([clamav, *ours()], {"clamav": timedelta(hours=24)}, workstation="microsoft")
    await watch.check_now()
    assert watch.measure2().met and watch.measure2().by == ("clamav",)
    same = assess("clamav", [clamav], watch.status)
    assert not same.met and "differs from the workstations' (clamav)" in same.reasons[0]


async def test_stale_or_undated_signatures_do_not_count() -> None:
    old = av.FakeScanner(signature_date=datetime.now(UTC) - timedelta(days=3))
    watch = FreshnessWatch([old], {"clamav": timedelta(hours=24)}, workstation="microsoft")
    await watch.check_now()
    m = watch.measure2()
    assert not m.met and "old > 1 day" in m.reasons[0]
    undated = av.FakeScanner()
    watch = FreshnessWatch([undated], {"clamav": timedelta(hours=24)}, workstation="microsoft")
    await watch.check_now()
    assert "signature age unknown" in watch.measure2().reasons[0]


async def test_an_icap_product_counts() -> None:
    icap = av.FakeScanner(name="icap", vendor="sophos")
    watch = FreshnessWatch([icap, *ours()], {"icap": None}, workstation="microsoft")
    await watch.check_now()
    assert watch.measure2().met and watch.measure2().by == ("icap",)


async def test_auto_engine_comes_on_and_goes_away_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    clamav = av.FakeScanner(raises=EngineUnavailable("clamd socket missing"), signature_date=FRESH)
    watch = FreshnessWatch([clamav, *ours()], {"clamav": timedelta(hours=24)}, auto=frozenset({"clamav"}),
                           workstation="microsoft", measure2_enforced=True)
    with caplog.at_level(logging.INFO, logger="mailbastion.engines.freshness"):
        await watch.check_now()
        assert not watch.is_active("clamav") and watch.is_active("yara") and watch.is_degraded
        assert "av.engine_off engine=clamav" in caplog.text and "av.measure2_not_met" in caplog.text
        caplog.clear()
        clamav.raises = None  # freshclam ran, clamd started
        await watch.check_now()
        assert watch.is_active("clamav") and watch.measure2().met and not watch.is_degraded
        assert "av.engine_on engine=clamav" in caplog.text and "av.measure2 met by clamav" in caplog.text
        caplog.clear()
        await watch.check_now()
        assert caplog.text == ""  # no change, no line
        clamav.raises = EngineUnavailable("connection refused")
        await watch.check_now()
        assert "av.engine_off engine=clamav" in caplog.text and "went away" in caplog.text


@pytest.mark.parametrize("policy,action,reply", [("soft_reject", Action.SOFT_REJECT, replies.SCAN_UNAVAILABLE),
                                                 ("hold", Action.QUARANTINE, replies.OK),
                                                 ("alarm_only", None, None)])
async def test_while_no_vendor_engine_scans_mail_gets_the_stale_policy(policy: str, action: Action | None,
                                                                      reply: object) -> None:
    clamav = av.FakeScanner(raises=EngineUnavailable("no clamd"), infected="Eicar-Test-Signature")
    yara = av.FakeScanner(name="yara", vendor="yara")
    watch = FreshnessWatch([clamav, yara], {"clamav": timedelta(hours=24)}, auto=frozenset({"clamav"}),
                           workstation="microsoft", measure2_enforced=True)
    check = AntivirusCheck([clamav, yara], policy=AvPolicy(stale_policy=policy), freshness=watch)
    report = await check.scan(SpooledMessage(CLEAN))  # the first scan checks the engines itself
    assert report.skipped == ("clamav",) and clamav.calls == 0 and yara.calls == 1
    result = check.judge(report)
    assert [s.name for s in result.symbols] == ["AV_MEASURE2_NOT_MET"]
    assert "clamav: off" in result.symbols[0].detail
    if action is None:
        assert result.forced is None
    else:
        assert result.forced is not None and result.forced.action is action and result.forced.reply == reply


def services(tmp_path: Path, **antivirus: object) -> Services:
    return Services(parse_settings({"server": {"data_dir": str(tmp_path)}, "antivirus": antivirus}), None)  # type: ignore[arg-type]


def test_the_default_is_clamav_auto_and_it_counts_at_start_up(tmp_path: Path) -> None:
    s = services(tmp_path)
    assert s.settings.antivirus.clamav.enabled == "auto"
    feature = build(s)
    assert feature.startup_problems() == []
    assert feature.freshness is not None and feature.freshness.auto == {"clamav"}


def test_clamav_off_refuses_to_start_unless_the_site_accepts_alarm_only(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    problems = build(services(tmp_path, clamav={"enabled": False})).startup_problems()
    assert problems and "measure 2 not met" in problems[0] and "our YARA rules" in problems[0]
    relaxed = build(services(tmp_path, clamav={"enabled": False}, stale_policy="alarm_only"))
    with caplog.at_level(logging.ERROR):
        assert relaxed.startup_problems() == []
    assert "av.measure2_not_met" in caplog.text and "starting anyway" in caplog.text
    weakened = "\n".join(relaxed.services.settings.antivirus.weakened())
    assert "clamav.enabled = false" in weakened and "alarm_only" in weakened


def test_enabled_accepts_true_false_and_auto_only(tmp_path: Path) -> None:
    from mailbastion.core.errors import ConfigError

    assert services(tmp_path, clamav={"enabled": True}).settings.antivirus.clamav.enabled is True
    with pytest.raises(ConfigError):
        services(tmp_path, clamav={"enabled": "sometimes"})


def test_init_writes_auto_not_false(tmp_path: Path) -> None:
    from mailbastion.apps.bootstrap import initialise
    from mailbastion.config import load_settings

    result = initialise(tmp_path / "site", "example.test")
    text = result.config.read_text()
    assert 'enabled = "auto"' in text and "enabled = false" not in text
    assert load_settings(result.config).antivirus.clamav.enabled == "auto"


@pytest.mark.parametrize("policy,said", [("soft_reject", "every message is deferred with 451 4.7.0"),
                                         ("hold", "every message is accepted and held in the quarantine"),
                                         ("alarm_only", "mail is accepted, scanned by the other engines")])
async def test_the_log_says_what_mail_gets_meanwhile(tmp_path: Path, policy: str, said: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A new deployment without signatures (no freshclam yet, or no Internet) meets this first: the log line
    names what happens to mail under the configured stale_policy, not only the setting's name."""
    from mailbastion.apps.feature_antivirus import build_watch

    settings = services(tmp_path, stale_policy=policy).settings
    clamav = av.FakeScanner(raises=EngineUnavailable("clamd socket missing"))
    watch = build_watch(settings.antivirus, [clamav, *ours()])
    with caplog.at_level(logging.INFO, logger="mailbastion.engines.freshness"):
        await watch.check_now()
    line = next(r.getMessage() for r in caplog.records if "av.measure2_not_met" in r.getMessage())
    assert said in line and f'antivirus.stale_policy = "{policy}"' in line, line
    old = av.FakeScanner(signature_date=datetime.now(UTC) - timedelta(days=3))
    watch = build_watch(settings.antivirus, [old, *ours()])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mailbastion.engines.freshness"):
        await watch.check_now()
    line = next(r.getMessage() for r in caplog.records if "av.signatures_stale" in r.getMessage())
    assert said in line, line
