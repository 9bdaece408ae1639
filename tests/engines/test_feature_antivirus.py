"""Measure 2 at start-up, the freshness watch, and the cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbastion.apps.feature_antivirus import build, vendor_problems
from mailbastion.apps.features import Services
from mailbastion.config import parse_settings
from mailbastion.engines.cache import ScanCache
from mailbastion.engines.freshness import FreshnessWatch
from mailbastion.quarantine.store import QuarantineStore
from mailbastion.testing import av


def settings(tmp_path: Path, **antivirus: object) -> Services:
    s = parse_settings({"server": {"data_dir": str(tmp_path)}, "antivirus": antivirus})
    return Services(s, None)  # type: ignore[arg-type]


def test_default_engines_differ_from_microsoft_workstations(tmp_path: Path) -> None:
    services = settings(tmp_path)
    feature = build(services)
    assert feature.startup_problems() == []
    assert [c.name for c in feature.checks()] == ["antivirus"]
    assert isinstance(services.quarantine, QuarantineStore)
    assert feature.check is not None and feature.check.required == {"clamav", "yara", "attachments"}


def test_refuses_when_no_engine_differs(tmp_path: Path) -> None:
    feature = build(settings(tmp_path, workstation_engine="ClamAV", yara={"enabled": False}))
    problems = feature.startup_problems()
    assert problems and "differs from the workstations' (clamav)" in problems[0]


def test_refuses_when_workstation_engine_not_declared(tmp_path: Path) -> None:
    problems = build(settings(tmp_path, workstation_engine=None)).startup_problems()
    assert problems and "workstation_engine" in problems[0]


def test_attachment_policy_alone_does_not_count(tmp_path: Path) -> None:
    s = settings(tmp_path, clamav={"enabled": False}, yara={"enabled": False})
    assert build(s).startup_problems()


def test_required_engines_configurable(tmp_path: Path) -> None:
    feature = build(settings(tmp_path, required=["clamav"]))
    assert feature.check is not None and feature.check.required == {"clamav"}


def test_icap_vendor_counts(tmp_path: Path) -> None:
    s = settings(tmp_path, workstation_engine="clamav", yara={"enabled": False},
                 icap={"url": "icap://127.0.0.1:1344/avscan", "vendor": "sophos"})
    feature = build(s)
    assert feature.startup_problems() == []
    assert vendor_problems(s.settings.antivirus, [av.FakeScanner()])


async def test_freshness_watch_alarms_on_old_signatures(caplog: pytest.LogCaptureFixture) -> None:
    old = av.FakeScanner(signature_date=datetime.now(UTC) - timedelta(hours=30))
    fresh = av.FakeScanner(name="icap", vendor="sophos", signature_date=datetime.now(UTC) - timedelta(hours=1))
    watch = FreshnessWatch([old, fresh], {"clamav": timedelta(hours=24), "icap": timedelta(hours=24)})
    with caplog.at_level("ERROR"):
        await watch.check_now()
    assert [s.name for s in watch.stale()] == ["clamav"]
    assert "av.signatures_stale" in caplog.text


async def test_unknown_signature_date_is_stale_when_a_limit_is_set() -> None:
    watch = FreshnessWatch([av.FakeScanner()], {"clamav": timedelta(hours=24)})
    await watch.check_now()
    assert watch.stale()


def test_cache_lru_and_ttl() -> None:
    cache = ScanCache(max_entries=2, ttl=0)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.get("a")
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and len(cache) == 2


def test_icap_needs_its_vendor(tmp_path: Path) -> None:
    from mailbastion.core.errors import ConfigError

    with pytest.raises(ConfigError, match="icap.vendor"):
        settings(tmp_path, icap={"url": "icap://127.0.0.1:1344/avscan"})


@pytest.mark.clamd
async def test_feature_through_the_role_pipeline_with_real_clamd(tmp_path: Path, clamd: object) -> None:
    """What the gateway does: features → build_pipeline → DATA stage → verdict → QuarantineSink.put."""
    from mailbastion.apps.features import load_features
    from mailbastion.apps.pipeline import build_pipeline, refuse_on_problems
    from mailbastion.core.address import Address
    from mailbastion.core.envelope import Envelope
    from mailbastion.core.message import SpooledMessage
    from mailbastion.core.peer import PeerInfo
    from mailbastion.core.stages import Stage
    from mailbastion.core.verdict import Action
    from mailbastion.policy import CheckContext
    from mailbastion.testing.clamd import EICAR

    services = settings(tmp_path, clamav={"socket": clamd.socket_path})  # type: ignore[attr-defined]
    features = load_features(services, ("antivirus",))
    pipeline, _ = build_pipeline(services, features)
    refuse_on_problems(features)
    for f in features:
        await f.start()
    try:
        envelope = Envelope(Address("a", "example.net"), (Address("b", "example.org"),))

        async def verdict_of(raw: bytes) -> object:
            ctx = CheckContext(Stage.DATA, PeerInfo("192.0.2.1"), envelope, message=SpooledMessage(raw))
            out = await pipeline.run_stage(ctx)
            return pipeline.decide(out.symbols, out.forced, out.edits)

        virus = await verdict_of(av.WRAPPINGS["zip_nested3"](EICAR, "e.com"))
        assert virus.action is Action.REJECT  # type: ignore[attr-defined]
        held = await verdict_of(av.attach([("x.zip", "application/zip", av.encrypted_zip())]))
        assert held.action is Action.QUARANTINE  # type: ignore[attr-defined]
        assert services.quarantine is not None
        qid = await services.quarantine.put(envelope, b"Subject: held\r\n\r\nx\r\n", held, client="192.0.2.1")  # type: ignore[arg-type]
        assert isinstance(services.quarantine, QuarantineStore)
        assert services.quarantine.get(qid).reasons[0].startswith("AV_ENCRYPTED_ARCHIVE")
    finally:
        for f in features:
            await f.stop()


def test_weakened_settings_are_named(tmp_path: Path) -> None:
    s = settings(tmp_path, required=["clamav"], stale_policy="alarm_only",
                 attachments={"on_encrypted": "accept", "allowed_types": ["script"]}).settings.antivirus
    text = "\n".join(s.weakened())
    assert "required" in text and "alarm_only" in text and "on_encrypted" in text and "allowed_types" in text
    assert settings(tmp_path).settings.antivirus.weakened() == []


def test_unix_scripts_pass_by_default_and_are_refused_when_the_site_blocks_them(tmp_path: Path) -> None:
    from mailbastion.engines.attachments import AttachmentPolicy
    from mailbastion.engines.base import FindingKind
    from mailbastion.engines.mime_walk import build_subject

    def blocked(raw: bytes, **attachments: object) -> set[str]:
        feature = build(settings(tmp_path, attachments=attachments) if attachments else settings(tmp_path))
        assert feature.check is not None
        policy = next(s for s in feature.check.scanners if isinstance(s, AttachmentPolicy))
        return {f.name for f in policy.judge(build_subject(raw)) if f.kind is FindingKind.BLOCKED}

    script = av.attach([("swasort", "application/octet-stream", b"#!/bin/sh\nsort -k2 \"$@\"\n")])
    assert blocked(script) == set()
    assert blocked(script, blocked_types=["pe", "script", "unix_script"]) == {"type.unix_script"}
    assert blocked(av.attach([("swasort.sh", "application/octet-stream", b"#!/bin/sh\n")])) == {"name.script"}
