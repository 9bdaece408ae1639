from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbastion.testing.clamd import ClamdTestServer, clamd_missing_reason
from mailbastion.testing.deployment import Deployment
from mailbastion.testing.dns_server import DnsTestServer


def publish(server: DnsTestServer, zone_text: str) -> None:
    """Put every record line of `dns records` into the loopback DNS server."""
    for line in zone_text.splitlines():
        parts = line.split("\t", 4)
        if line.startswith(";") or len(parts) != 5:
            continue
        name, _ttl, _in, rtype, value = parts
        server.remove(name.rstrip("."), rtype)
        server.add(name.rstrip("."), rtype, value)


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsTestServer]:
    with DnsTestServer() as server:
        yield server


@pytest.fixture(scope="module")
def clamd() -> Iterator[ClamdTestServer]:
    reason = clamd_missing_reason()
    if reason:
        pytest.skip(reason)
    server = ClamdTestServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory, dns: DnsTestServer, clamd: ClamdTestServer) -> Iterator[Deployment]:
    """A running all-in-one: clamd with test signatures, every DNS record `dns records` prints published."""
    d = Deployment(Path(tmp_path_factory.mktemp("audit")), dns=dns, settings={
        ("antivirus.clamav", "enabled"): "true", ("antivirus.clamav", "socket"): f'"{clamd.socket_path}"',
        ("antivirus", "workstation_engine"): '"microsoft"',
        # the scheduler checks the dates at start only, within these tests: a leave date a test sets stays
        # unapplied (what a late leaver job leaves behind) until the test puts it back
        ("lifecycle", "check_interval_seconds"): "3600"})
    d.init()
    hostname = re.search(r'hostname = "([^"]+)"', d.config.read_text())
    assert hostname is not None
    dns.add(hostname.group(1), "A", "127.0.0.1")
    publish(dns, d.mb("dns", "records"))
    d.mb("dns", "check")  # live: signing switches to the published keys
    d.mb("account", "add", "ann@example.test", "--password-stdin", input="Correct-Horse-Battery-9\n")
    d.start()
    yield d
    d.stop()
