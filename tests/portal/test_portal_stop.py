"""Stopping the portal: `PortalService.stop` closes the measures board while its HTTPS server still answers, and a
dashboard request in that gap shows the last results; it starts no refresh, whose child nothing would end."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from portal_kit import PASSWORD, PortalRunner, enrol_totp, http, portal_deployment, settings_of, sign_in

from mailbastion.measures.board import MeasureBoard, MeasureResult

ADMIN = "admin@example.test"


class GapProbe:
    """The dashboard's probe. Its first run lasts until it is cancelled (the portal's stop closing the board);
    its clean-up then asks for the dashboard over HTTPS, as an administrator's browser would in that moment, and
    waits for the answer before it ends. Every run is counted."""

    numbers: tuple[int, ...] = (1,)

    def __init__(self) -> None:
        self.runs = 0
        self.started = threading.Event()
        self.client: Any = None
        self.gap_status: int | None = None
        self.gap_page = ""

    async def __call__(self) -> Sequence[MeasureResult]:
        self.runs += 1
        if self.runs > 1:
            return []
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            r = await asyncio.to_thread(self.client.get, "/admin")
            self.gap_status, self.gap_page = r.status_code, r.text
            raise
        return []


def test_a_dashboard_request_while_the_portal_stops_starts_no_refresh(tmp_path: Path) -> None:
    d = portal_deployment(tmp_path / "d")
    d.mb("account", "add", ADMIN, "--password-stdin", input=PASSWORD + "\n")
    d.mb("account", "role", ADMIN, "administrator", "--reason", "test")
    probe = GapProbe()
    runner = PortalRunner(settings_of(d), measures=MeasureBoard([probe])).start()
    stopped = False
    try:
        with closing(http(runner, d)) as client:
            r = sign_in(client, ADMIN, totp=enrol_totp(runner.ctx, ADMIN))
            assert r.status_code == 303, r.text[:500]
            probe.client = client
            assert probe.started.wait(60), "the portal's first refresh did not start"  # the warm-up's
            runner.stop()
            stopped = True
        assert probe.gap_status == 200  # the dashboard was served in the gap: the board was closed, the server not
        assert probe.runs == 1  # and it started no refresh
        assert "not checked yet" in probe.gap_page  # it shows the last results
        assert "a check is running" not in probe.gap_page  # and does not promise a check
    finally:
        if not stopped:
            runner.stop()
