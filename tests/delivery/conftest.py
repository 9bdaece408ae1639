"""Fixtures for delivery tests: a test PKI, the LMTP 'MDA' over mutual TLS and an agent pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from delivery_servers import ScriptedHandler, Server, gateway_client_context, start_lmtp

from mailbastion.delivery.lmtp_client import LmtpDeliveryAgent
from mailbastion.pki import make_deployment_pki
from mailbastion.tls_policy import server_context


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_deployment_pki(tmp_path_factory.mktemp("tls"), "localhost")


@pytest.fixture
async def mda(pki: dict[str, Path]) -> AsyncIterator[Server]:
    """The MDA: LMTP, TLS from the first byte, client certificate from our CA required."""
    ctx = server_context(pki["mda.crt"], pki["mda.key"], client_ca=pki["ca.crt"])
    server = await start_lmtp(ScriptedHandler(), ctx)
    yield server
    server.server.close()
    await server.server.wait_closed()


@pytest.fixture
def lmtp_agent(mda: Server, pki: dict[str, Path]) -> LmtpDeliveryAgent:
    return LmtpDeliveryAgent("127.0.0.1", mda.port, ssl_context=gateway_client_context(pki), timeout=10,
                             connect_timeout=5, local_hostname="gw.example.org")
