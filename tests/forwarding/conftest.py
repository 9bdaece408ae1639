"""One all-in-one deployment for the forwarding flow tests (tests/forwarding/): `mailbastion serve` as a child
process, the loopback DNS server, and the remote MX sink of tests/submission (submission_world.py, reused)
that plays every outside domain: remote.test (alias targets, a successor) and sender.test (the original
senders, who get the bounces and auto-replies). DKIM keys made by `init` are published and switched on, so
the ARC seal of forwarded copies verifies against the loopback DNS."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "submission"))

from forwarding_world import ERIN, LEAVER, SUCCESSOR
from submission_world import ALICE, DOMAIN, World, deployment_with_remote_mx, publish_dkim


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("forwarding")
    with deployment_with_remote_mx(tmp, (ALICE, ERIN, LEAVER), {
            ("lifecycle", "leaver_policy"): '"forward"', ("lifecycle", "check_interval_seconds"): "2",
            ("submission.hijack", "bounces"): "3",
    }) as (d, dns, sink):
        dns.add("sender.test", "MX", "10 mx.remote.test")  # the original senders' MX: the same sink
        d.mb("account", "alias", "add", f"fwd@{DOMAIN}", "carol@remote.test")
        d.mb("account", "alias", "add", f"team@{DOMAIN}", ALICE)
        d.mb("account", "alias", "add", f"team@{DOMAIN}", "dan@remote.test")
        d.mb("account", "leave", LEAVER, "--on", "now", "--successor", SUCCESSOR, "--reason", "HR-7")
        assert len(publish_dkim(d, dns)) == 2
        d.start()
        try:
            yield World(d, dns, sink)
        finally:
            d.stop()
