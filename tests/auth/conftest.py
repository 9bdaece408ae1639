"""Fixtures for sender-authentication tests: a real DNS server on loopback and a resolver pointed at it."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from authkit import Rig  # noqa: E402

from mailbastion.dns.resolver import DnsResolver  # noqa: E402
from mailbastion.testing.dns_server import DnsTestServer  # noqa: E402


@pytest.fixture
def dns_server() -> Iterator[DnsTestServer]:
    with DnsTestServer() as server:
        yield server


@pytest.fixture
def resolver(dns_server: DnsTestServer) -> DnsResolver:
    return DnsResolver([dns_server.host], port=dns_server.port, timeout=0.5)


@pytest.fixture
async def rig(dns_server: DnsTestServer, resolver: DnsResolver) -> AsyncIterator[Rig]:
    yield Rig(dns_server, resolver)
