"""Measure 7 (measures/aup.py) against a real directory database and a moved clock: not met without a
version in effect, met while everyone is accepted or inside the grace period, not met once someone is
overdue or when enforcement is off; the evidence gives the counts. Both boards use it for 7 (8 stays
not built: the training's)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from mailbastion.aup.store import AupStore
from mailbastion.config import parse_settings
from mailbastion.directory.portal import PortalStore
from mailbastion.directory.store import Directory
from mailbastion.measures.aup import AupProbe, NoAupDirectory
from mailbastion.measures.board import MET, NOT_BUILT, NOT_MET
from mailbastion.measures.inventory import portal_board
from mailbastion.measures.training import TrainingProbe

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


def test_measure_7(tmp_path: Path) -> None:
    now = [T0]
    directory = Directory.create(f"sqlite:///{tmp_path / 'dir.db'}", clock=lambda: now[0])
    directory.add_domain("example.org", by="test")
    for who in ("alice", "bob"):
        directory.add_account(f"{who}@example.org", "Correct-Horse-Battery-9", by="test")
    settings = parse_settings({"aup": {"grace_days": 10}})

    def probe(s: object = settings) -> object:
        [result] = asyncio.run(AupProbe(s, directory)())  # type: ignore[arg-type]
        return result

    r = probe()
    assert r.state == NOT_MET and "no acceptable use policy in effect (none published)" in r.summary
    assert "aup publish" in r.advice
    store = AupStore(directory)
    v, _ = store.publish("# Rules\n", "1", by="t")
    r = probe()
    assert r.state == MET and r.status == "pass", r
    assert "2 active account(s): 0 accepted, 2 inside the 10-day grace period, 0 overdue" in r.details
    assert "enforcement: submission" in r.details
    store.accept("alice@example.org", "1", sha256=v.sha256, client="192.0.2.1", by="t")
    now[0] = T0 + dt.timedelta(days=10, seconds=1)
    r = probe()
    assert r.state == NOT_MET and r.status == "fail" and "1 active account(s) have not accepted" in r.summary
    assert any(line.startswith("overdue since ") and line.endswith("bob@example.org") for line in r.details)
    assert "2 active account(s): 1 accepted, 0 inside the 10-day grace period, 1 overdue" in r.details
    store.accept("bob@example.org", "1", sha256=v.sha256, client="192.0.2.2", by="t")
    assert probe().state == MET
    off = probe(parse_settings({"aup": {"enforce": "off"}}))
    assert off.state == NOT_MET and "not enforced" in off.summary  # type: ignore[attr-defined]
    assert asyncio.run(NoAupDirectory()())[0].state == NOT_BUILT

    board = portal_board(settings, PortalStore(directory), av_status=lambda: None)  # type: ignore[arg-type, return-value]
    owners = {n: p for p in board.probes for n in p.numbers}
    assert isinstance(owners[7], AupProbe) and isinstance(owners[8], TrainingProbe)
