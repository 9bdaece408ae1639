"""The anti-virus check through the real Pipeline and scorer: fakes for the logic, the real clamd for
every wrapping of EICAR and of Debian's clamav-testfiles, the attachment policy and fail-closed."""

from __future__ import annotations

import asyncio
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest

from mailbastion.core import replies
from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.errors import EngineUnavailable
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, Verdict
from mailbastion.engines.archives import Limits
from mailbastion.engines.attachments import AttachmentPolicy
from mailbastion.engines.base import Scanner
from mailbastion.engines.cache import ScanCache
from mailbastion.engines.clamav import ClamdScanner
from mailbastion.engines.freshness import FreshnessWatch
from mailbastion.engines.yara import YaraScanner
from mailbastion.policy import CheckContext, Pipeline, Scorer, load_score_table
from mailbastion.policy.checks.antivirus import AntivirusCheck, AntivirusReport, AvPolicy
from mailbastion.testing import av
from mailbastion.testing.clamd import EICAR, ClamdTestServer, clamd_missing_reason
from mailbastion.testing.clamd import testfiles as clam_testfiles

ENVELOPE = Envelope(Address("sender", "example.net"), (Address("user", "example.org"),))
PEER = PeerInfo("192.0.2.10")


async def decide(check: AntivirusCheck, raw: bytes) -> tuple[Verdict, CheckContext]:
    pipeline = Pipeline([check], Scorer(load_score_table()))
    ctx = CheckContext(Stage.DATA, PEER, ENVELOPE, message=SpooledMessage(raw))
    outcome = await pipeline.run_stage(ctx)
    return pipeline.decide(outcome.symbols, outcome.forced, outcome.edits), ctx


CLEAN = av.attach([("report.pdf", "application/pdf", av.clean_pdf()),
                   ("notes.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    av.clean_docx()),
                   ("chart.png", "image/png", av.clean_png()),
                   ("figures.csv", "text/csv", b"quarter,revenue\nQ1,100\nQ2,120\n")])


# ---- logic, with fakes

async def test_virus_from_any_engine_is_forced_reject_even_with_negative_score() -> None:
    check = AntivirusCheck([av.FakeScanner(infected="Eicar-Test-Signature"), av.FakeScanner(name="yara",
                                                                                          vendor="yara")])
    verdict, _ = await decide(check, CLEAN)
    assert verdict.action is Action.REJECT
    assert verdict.reply == replies.VIRUS_FOUND
    assert verdict.forced is not None and verdict.forced.by == "antivirus"
    assert "AV_CLAMAV_VIRUS" in verdict.symbol_names


async def test_required_engine_down_is_451_470() -> None:
    check = AntivirusCheck([av.FakeScanner(), av.FakeScanner(name="icap", vendor="sophos",
                                                             raises=EngineUnavailable("icap down"))])
    verdict, _ = await decide(check, CLEAN)
    assert verdict.action is Action.SOFT_REJECT
    assert verdict.reply == replies.SCAN_UNAVAILABLE
    assert str(verdict.reply).startswith("451 4.7.0")
    assert "AV_ENGINE_UNAVAILABLE" in verdict.symbol_names


async def test_optional_engine_down_is_scored_only() -> None:
    check = AntivirusCheck([av.FakeScanner(), av.FakeScanner(name="icap", vendor="sophos",
                                                             raises=EngineUnavailable("down"))],
                           required={"clamav"})
    verdict, _ = await decide(check, CLEAN)
    assert verdict.action < Action.QUARANTINE
    assert "AV_ENGINE_UNAVAILABLE" in verdict.symbol_names


async def test_slow_engine_times_out_to_451() -> None:
    check = AntivirusCheck([av.FakeScanner(delay=5)], engine_timeout=0.2)
    verdict, _ = await decide(check, CLEAN)
    assert verdict.action is Action.SOFT_REJECT and verdict.reply == replies.SCAN_UNAVAILABLE


async def test_a_crashing_engine_fails_closed() -> None:
    check = AntivirusCheck([av.FakeScanner(raises=RuntimeError("bug"))])
    verdict, _ = await decide(check, CLEAN)
    assert verdict.action is Action.SOFT_REJECT


async def test_virus_beats_engine_down() -> None:
    check = AntivirusCheck([av.FakeScanner(infected="X"), av.FakeScanner(name="yara", raises=EngineUnavailable())])
    verdict, _ = await decide(check, CLEAN)
    assert verdict.action is Action.REJECT


async def test_engines_run_in_parallel() -> None:
    check = AntivirusCheck([av.FakeScanner(delay=0.3), av.FakeScanner(name="yara", delay=0.3),
                            av.FakeScanner(name="icap", delay=0.3)])
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await decide(check, CLEAN)
    assert loop.time() - t0 < 0.8


async def test_every_engine_sees_raw_and_decoded_parts() -> None:
    fake = av.FakeScanner()
    await decide(AntivirusCheck([fake]), av.WRAPPINGS["zip_nested3"](EICAR, "eicar.com"))
    subject = fake.seen[0]
    assert subject.raw.startswith(b"From:")
    assert any(p.data == EICAR for p in subject.parts)


async def test_results_cached_by_digest() -> None:
    fake = av.FakeScanner()
    check = AntivirusCheck([fake], cache=ScanCache())
    await decide(check, CLEAN)
    await decide(check, CLEAN)
    assert fake.calls == 1


async def test_clean_scan_adds_x_virus_scanned_and_report_fact() -> None:
    verdict, ctx = await decide(AntivirusCheck([av.FakeScanner()]), CLEAN)
    assert any(e.name == "X-Virus-Scanned" for e in verdict.edits)
    report = ctx.get(AntivirusReport)
    assert report is not None and report.engines == ("clamav",)


@pytest.mark.parametrize("policy,expected", [("hold", Action.QUARANTINE), ("soft_reject", Action.SOFT_REJECT),
                                             ("alarm_only", Action.ACCEPT)])
async def test_stale_signatures_by_policy(policy: str, expected: Action) -> None:
    old = datetime.now(UTC) - timedelta(days=3)
    fake = av.FakeScanner(signature_date=old)
    watch = FreshnessWatch([fake], {"clamav": timedelta(hours=24)})
    await watch.check_now()
    verdict, _ = await decide(AntivirusCheck([fake], policy=AvPolicy(stale_policy=policy), freshness=watch), CLEAN)
    assert "AV_SIGNATURES_STALE" in verdict.symbol_names
    assert verdict.action is expected
    if expected is Action.SOFT_REJECT:
        assert verdict.reply == replies.SIGNATURES_STALE


# ---- the real engines

def real_check(clamd: ClamdTestServer, **kw: object) -> AntivirusCheck:
    # Generous timeouts (the scanner's connect timeout is 2 s by default): three tests of this module once failed
    # together in a run on a loaded machine that took 2.5 times its usual time; not reproduced since.
    scanners: list[Scanner] = [ClamdScanner(socket_path=clamd.socket_path, scan_timeout=30, connect_timeout=30),
                               YaraScanner(),
                               AttachmentPolicy()]
    return AntivirusCheck(scanners, engine_timeout=30, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def clamd() -> ClamdTestServer:
    reason = clamd_missing_reason()
    if reason:
        pytest.skip(reason)
    server = ClamdTestServer()
    server.start()
    yield server  # type: ignore[misc]
    server.close()


@pytest.mark.clamd
@pytest.mark.parametrize("wrapping", sorted(av.WRAPPINGS))
async def test_eicar_in_every_wrapping_is_refused(clamd: ClamdTestServer, wrapping: str) -> None:
    raw = av.WRAPPINGS[wrapping](EICAR, "eicar.com")
    verdict, ctx = await decide(real_check(clamd), raw)
    assert verdict.action is Action.REJECT, verdict.describe()
    assert verdict.reply == replies.VIRUS_FOUND
    report = ctx.get(AntivirusReport)
    assert report is not None
    # Both signature engines see it in every wrapping, each on its own.
    assert {"AV_CLAMAV_VIRUS", "AV_YARA_VIRUS"} <= verdict.symbol_names, verdict.describe()


TESTFILES = [p.name for p in clam_testfiles()]


@pytest.mark.clamd
@pytest.mark.skipif(not TESTFILES, reason="Debian clamav-testfiles is not installed")
@pytest.mark.parametrize("wrapping", sorted(av.WRAPPINGS))
async def test_clamav_testfiles_in_every_wrapping_are_refused_or_quarantined(
    clamd: ClamdTestServer, wrapping: str
) -> None:
    from mailbastion.testing.clamd import TESTFILES_DIR

    check = real_check(clamd)
    failures = []
    for name in TESTFILES:
        data = (TESTFILES_DIR / name).read_bytes()
        verdict, _ = await decide(check, av.WRAPPINGS[wrapping](data, name))
        if verdict.action not in (Action.REJECT, Action.QUARANTINE):
            failures.append(f"{name}: {verdict.describe()}")
        elif verdict.action is Action.REJECT and "AV_CLAMAV_VIRUS" not in verdict.symbol_names:
            # refused by the attachment policy alone is fine, but ClamAV must have seen it too
            failures.append(f"{name}: clamd missed it: {verdict.describe()}")
    assert not failures, "\n".join(failures)


@pytest.mark.clamd
async def test_clean_message_with_ordinary_attachments_passes(clamd: ClamdTestServer) -> None:
    verdict, _ = await decide(real_check(clamd), CLEAN)
    assert verdict.action is Action.ACCEPT, verdict.describe()
    assert verdict.forced is None


@pytest.mark.clamd
@pytest.mark.parametrize("name,data", [("budget.doc", av.ole_with_macro()), ("budget.docm", av.docm_with_macro())])
async def test_macro_documents_are_quarantined_by_default(clamd: ClamdTestServer, name: str, data: bytes) -> None:
    verdict, _ = await decide(real_check(clamd), av.attach([(name, "application/msword", data)]))
    assert verdict.action is Action.QUARANTINE, verdict.describe()
    assert "AV_OFFICE_MACRO" in verdict.symbol_names


@pytest.mark.clamd
async def test_macro_policy_reject(clamd: ClamdTestServer) -> None:
    check = real_check(clamd, policy=AvPolicy(on_macro="reject"))
    verdict, _ = await decide(check, av.attach([("a.doc", "application/msword", av.ole_with_macro())]))
    assert verdict.action is Action.REJECT and verdict.reply == replies.MACRO_ATTACHMENT


@pytest.mark.clamd
async def test_encrypted_zip_is_quarantined(clamd: ClamdTestServer) -> None:
    verdict, _ = await decide(real_check(clamd), av.attach([("invoice.zip", "application/zip", av.encrypted_zip())]))
    assert verdict.action is Action.QUARANTINE, verdict.describe()
    assert "AV_ENCRYPTED_ARCHIVE" in verdict.symbol_names


@pytest.mark.clamd
async def test_pdf_with_javascript_is_quarantined(clamd: ClamdTestServer) -> None:
    verdict, _ = await decide(real_check(clamd), av.attach([("a.pdf", "application/pdf", av.clean_pdf(True))]))
    assert verdict.action is Action.QUARANTINE and "AV_PDF_JAVASCRIPT" in verdict.symbol_names


@pytest.mark.clamd
@pytest.mark.parametrize("kind", ["zip", "gzip"])
async def test_archive_bomb_is_refused_with_bounded_memory(clamd: ClamdTestServer, kind: str) -> None:
    bomb = av.zip_bomb() if kind == "zip" else av.gzip_bomb()  # 300 MiB of zeros, ~300 KiB compressed
    raw = av.attach([(f"data.{kind}", "application/octet-stream", bomb)])
    check = real_check(clamd, limits=Limits(max_member_size=20 * 1024 * 1024, max_total_size=40 * 1024 * 1024))
    tracemalloc.start()
    try:
        verdict, _ = await decide(check, raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert verdict.action is Action.REJECT, verdict.describe()
    assert verdict.reply == replies.ARCHIVE_LIMIT
    assert "AV_ARCHIVE_LIMIT" in verdict.symbol_names
    assert peak < 80 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"


@pytest.mark.clamd
async def test_clamd_stopped_mid_run_gives_451_then_accepts_when_back(clamd: ClamdTestServer) -> None:
    check = real_check(clamd)
    verdict, _ = await decide(check, CLEAN)
    assert verdict.action is Action.ACCEPT, verdict.describe()
    clamd.stop()
    try:
        verdict, _ = await decide(check, CLEAN)
        # the verdict's symbols and reply say which engine answered what, should this fail on a loaded machine
        # (it did once, in a local run beside a CI clone and two other jobs; not reproduced in 7 runs under load)
        assert verdict.action is Action.SOFT_REJECT, verdict.describe()
        assert str(verdict.reply).startswith("451 4.7.0"), verdict.describe()
        eicar, _ = await decide(check, av.WRAPPINGS["zip"](EICAR, "e.com"))
        assert eicar.action is Action.REJECT, eicar.describe()  # YARA still sees the virus: refusing is safe
    finally:
        clamd.start()
    verdict, _ = await decide(check, CLEAN)
    assert verdict.action is Action.ACCEPT, verdict.describe()


@pytest.mark.clamd
async def test_stale_clamav_signatures_soft_reject(clamd: ClamdTestServer) -> None:
    scanner = ClamdScanner(socket_path=clamd.socket_path)
    watch = FreshnessWatch([scanner], {"clamav": timedelta(hours=24)})
    clamd.write_database(age=timedelta(days=3))
    clamd.reload()
    try:
        await watch.check_now()
        assert watch.stale() and watch.stale()[0].name == "clamav"
        check = AntivirusCheck([scanner, AttachmentPolicy()], freshness=watch)
        verdict, _ = await decide(check, CLEAN)
        assert verdict.action is Action.SOFT_REJECT and verdict.reply == replies.SIGNATURES_STALE
    finally:
        clamd.write_database(age=timedelta(hours=1))
        clamd.reload()
    await watch.check_now()
    assert not watch.stale()


async def test_stale_clears_soon_after_signatures_are_fresh_again() -> None:
    fake = av.FakeScanner(signature_date=datetime.now(UTC) - timedelta(days=3))
    watch = FreshnessWatch([fake], {"clamav": timedelta(hours=24)}, interval=3600)
    await watch.check_now()
    check = AntivirusCheck([fake], freshness=watch)
    assert (await decide(check, CLEAN))[0].action is Action.SOFT_REJECT
    fake.signature_date = datetime.now(UTC)  # freshclam caught up
    watch._checked -= 60  # the recheck interval has passed
    await decide(check, CLEAN)  # this message still sees the old status, and triggers a recheck
    assert (await decide(check, CLEAN))[0].action is Action.ACCEPT
