"""ClamAV `enabled = "auto"` against the real clamd: a first run without signatures defers mail and never
claims measure 2; ClamAV comes on by itself when clamd answers (on reload or the watch's next look), and
goes away again when clamd stops. A clamd with local, undated databases defers mail by default and is
accepted with `undated_signatures = "newest_file"`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from mailbastion.apps.feature_antivirus import AntivirusFeature, build
from mailbastion.apps.features import Services
from mailbastion.apps.pipeline import build_pipeline, refuse_on_problems
from mailbastion.config import parse_settings
from mailbastion.core import replies
from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, Verdict
from mailbastion.policy import CheckContext
from mailbastion.policy.pipeline import Pipeline
from mailbastion.testing import av
from mailbastion.testing.clamd import EICAR, ClamdTestServer

pytestmark = pytest.mark.clamd

ENVELOPE = Envelope(Address("a", "example.net"), (Address("b", "example.org"),))
VIRUS = av.WRAPPINGS["zip"](EICAR, "e.com")
_count = iter(range(10**6))


def clean() -> bytes:
    """A clean message with a part never seen before (the scan cache answers for parts already scanned)."""
    n = next(_count)
    return av.attach([("report.pdf", "application/pdf", av.clean_pdf()), ("notes.txt", "text/plain", b"note %d" % n)])


async def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


class Gateway:
    """The anti-virus feature wired as the gateway wires it, with a way to judge one message."""

    def __init__(self, tmp_path: Path, socket: str, **clamav: object) -> None:
        settings = parse_settings({"server": {"data_dir": str(tmp_path)},
                                   "antivirus": {"clamav": {"socket": socket, **clamav}}})
        self.services = Services(settings, None)  # type: ignore[arg-type]
        self.feature: AntivirusFeature = build(self.services)
        self.pipeline: Pipeline
        self.pipeline, _ = build_pipeline(self.services, [self.feature])  # type: ignore[list-item]
        refuse_on_problems([self.feature])  # type: ignore[list-item]

    async def verdict(self, raw: bytes) -> Verdict:
        ctx = CheckContext(Stage.DATA, PeerInfo("192.0.2.1"), ENVELOPE, message=SpooledMessage(raw))
        out = await self.pipeline.run_stage(ctx)
        return self.pipeline.decide(out.symbols, out.forced, out.edits)

    def reload(self) -> None:
        """What SIGHUP does to this feature: the pipeline is built again."""
        self.pipeline, _ = build_pipeline(self.services, [self.feature])  # type: ignore[list-item]

    @property
    def clamav_on(self) -> bool:
        assert self.feature.freshness is not None
        return self.feature.freshness.is_active("clamav")


@pytest.fixture
async def clamd_later() -> AsyncIterator[ClamdTestServer]:
    """A clamd that is not running yet (its socket path is known): the offline first run."""
    server = ClamdTestServer()
    yield server
    server.close()


async def test_first_run_without_signatures_defers_then_clamav_comes_on_by_itself(
        tmp_path: Path, clamd_later: ClamdTestServer, caplog: pytest.LogCaptureFixture) -> None:
    gw = Gateway(tmp_path, clamd_later.socket_path)  # the embedded default: "auto"
    with caplog.at_level(logging.INFO):
        await gw.feature.start()
        try:
            assert not gw.clamav_on and "av.engine_off engine=clamav" in caplog.text
            assert "av.measure2_not_met" in caplog.text
            deferred = await gw.verdict(clean())
            assert deferred.action is Action.SOFT_REJECT and deferred.reply == replies.SCAN_UNAVAILABLE
            assert "AV_MEASURE2_NOT_MET" in deferred.symbol_names
            assert (await gw.verdict(VIRUS)).action is Action.REJECT  # YARA still refuses what it knows

            caplog.clear()
            await asyncio.to_thread(clamd_later.start)  # freshclam ran; clamd started
            gw.reload()  # SIGHUP: the engines are looked at again at once
            await until(lambda: gw.clamav_on)
            assert "av.engine_on engine=clamav" in caplog.text and "av.measure2 met by clamav" in caplog.text
            accepted = await gw.verdict(clean())
            assert accepted.action is Action.ACCEPT, accepted.describe()
            virus = await gw.verdict(VIRUS)
            assert virus.action is Action.REJECT and "AV_CLAMAV_VIRUS" in virus.symbol_names

            caplog.clear()
            await asyncio.to_thread(clamd_later.stop)  # clamd goes away
            first = await gw.verdict(clean())  # in flight when it went: a required engine failed, 451
            assert first.action is Action.SOFT_REJECT
            await until(lambda: not gw.clamav_on)  # the failure woke the watch
            assert "av.engine_off engine=clamav" in caplog.text and "went away" in caplog.text
            assert (await gw.verdict(clean())).action is Action.SOFT_REJECT  # measure 2 not met: still deferred
        finally:
            await gw.feature.stop()


async def test_local_database_defers_by_default_and_flows_dated_by_its_files(tmp_path: Path) -> None:
    with ClamdTestServer() as clamd:
        clamd.write_local_database(age=timedelta(hours=1))
        clamd.reload()
        undated = Gateway(tmp_path, clamd.socket_path)
        await undated.feature.start()
        try:
            v = await undated.verdict(clean())
            assert v.action is Action.SOFT_REJECT and v.reply == replies.SIGNATURES_STALE
            stale = next(s for s in v.symbols if s.name == "AV_SIGNATURES_STALE")
            assert "signature age unknown: local database only" in stale.detail
        finally:
            await undated.feature.stop()
        dated = Gateway(tmp_path, clamd.socket_path, undated_signatures="newest_file", database_dir=str(clamd.db_dir))
        await dated.feature.start()
        try:
            assert (await dated.verdict(clean())).action is Action.ACCEPT
            assert (await dated.verdict(VIRUS)).action is Action.REJECT
            assert dated.feature.freshness is not None and dated.feature.freshness.measure2().met
        finally:
            await dated.feature.stop()
