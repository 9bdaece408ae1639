"""The dashboard's measures: what exists is probed, what does not says "not built", and nothing is called met
that no code proved."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from portal_kit import portal_deployment, settings_of

from mailbastion.directory.portal import PortalStore
from mailbastion.directory.store import Directory
from mailbastion.lifecycle import status as lifecycle_status
from mailbastion.measures.antivirus import AntivirusProbe
from mailbastion.measures.board import MET, NOT_BUILT, NOT_MET, PARTIAL, UNKNOWN, MeasureBoard, MeasureResult
from mailbastion.measures.people import DirectoryProbe
from mailbastion.measures.tls import TlsProbe

YARA = {"engine": "yara", "vendor": "mailbastion", "state": "ok", "stale": False, "reachable": True, "auto": False,
        "vendor_signatures": False}
CLAMAV = {"engine": "clamav", "vendor": "clamav", "state": "ok", "stale": False, "reachable": True, "auto": True,
          "vendor_signatures": True, "signature_age": "2h"}


def report(*engines: dict[str, Any], met: bool = False) -> Any:
    async def status() -> dict[str, Any]:
        return {"engines": list(engines), "workstation_engine": "microsoft",
                "measure2": {"met": met, "by": ["clamav"] if met else [], "reasons": [] if met else ["no engine"]}}
    return status


def run(probe: Any) -> dict[int, MeasureResult]:
    return {r.number: r for r in asyncio.run(probe())}


def test_antivirus_probe() -> None:
    only_ours = run(AntivirusProbe(report(YARA)))
    assert only_ours[1].state == NOT_MET and only_ours[2].state == NOT_MET
    fresh = run(AntivirusProbe(report(YARA, CLAMAV, met=True)))
    assert fresh[1].state == MET and fresh[2].state == MET and "clamav" in fresh[1].summary
    stale = run(AntivirusProbe(report(YARA, {**CLAMAV, "stale": True}, met=False)))
    assert stale[1].state == NOT_MET and "clamav" in stale[1].summary


def test_board_never_calls_unprobed_measures_met_and_survives_a_failing_probe() -> None:
    class Broken:
        numbers = (9,)

        async def __call__(self) -> Sequence[MeasureResult]:
            raise OSError("disk on fire")

    async def go() -> dict[int, MeasureResult]:
        return await MeasureBoard([AntivirusProbe(report(CLAMAV, met=True)), Broken()]).refresh()

    results = asyncio.run(go())
    assert results[9].state == UNKNOWN and "disk on fire" in results[9].summary
    for n in (3, 4, 5, 6, 7, 8, 10):
        assert results[n].state == NOT_BUILT
    assert results[1].state == MET


def test_directory_and_tls_probes(tmp_path: Path) -> None:
    d = portal_deployment(tmp_path / "d")
    settings = settings_of(d)
    store = PortalStore(Directory.from_settings(settings))
    idle = run(DirectoryProbe(store, settings))[6]  # no scheduler has ever checked the dates here
    assert idle.state == NOT_MET and any("last checked the dates: never" in line for line in idle.details)
    lifecycle_status.record(settings, checked=True)  # what the running scheduler leaves after each check
    assert run(DirectoryProbe(store, settings))[6].state == MET
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3 * settings.lifecycle.check_interval_seconds + 120)
    assert run(DirectoryProbe(store, settings, now=lambda: later))[6].state == NOT_MET  # the scheduler stopped
    d.mb("account", "add", "gone@example.test")
    d.mb("account", "alias", "add", "team@example.test", "gone@example.test")
    d.mb("account", "state", "gone@example.test", "suspended", "--reason", "t")
    six = run(DirectoryProbe(store, settings))[6]
    assert six.state == NOT_MET and any("team@example.test" in line for line in six.details)
    assert run(TlsProbe(settings))[9].state == PARTIAL
    (tmp_path / "d" / "tls" / "mda.key").unlink()
    nine = run(TlsProbe(settings))[9]
    assert nine.state == NOT_MET and "MDA" in nine.summary
