"""Fixtures of the gateway tests; the helpers live in gateway_testkit.py."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gateway_testkit import HOST, OUR_HOST, Gateway, GatewayFactory, make_pipeline, recipients

from mailbastion.apps.gateway import build_gateway
from mailbastion.config.loader import parse_settings
from mailbastion.pki import issue, make_ca
from mailbastion.policy.check import Check
from mailbastion.policy.scoring import Thresholds
from mailbastion.tls_policy import server_context
from mailbastion.testing.fakes import FakeQuarantine, FakeSpool


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tls")
    make_ca(d / "ca.crt", d / "ca.key")
    issue(d / "ca.crt", d / "ca.key", d / "gw.crt", d / "gw.key", common_name=OUR_HOST, dns_names=[OUR_HOST],
          ips=[HOST])
    return {"ca": d / "ca.crt", "cert": d / "gw.crt", "key": d / "gw.key"}


@pytest.fixture
def client_tls(certs: dict[str, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs["ca"]))
    return ctx


@pytest.fixture
async def gateway_factory(certs: dict[str, Path]) -> AsyncIterator[GatewayFactory]:
    started: list[Gateway] = []

    async def make(*, smtp: dict[str, Any] | None = None, relay: list[str] | None = None, tls: bool = True,
                   spool: Any = None, thresholds: Thresholds | None = None, extra: list[Check] | None = None,
                   quarantine: bool = True) -> Gateway:
        settings = parse_settings({
            "server": {"hostname": OUR_HOST},
            "smtp": {"listen": [f"{HOST}:0"], **(smtp or {})},
            "relay": {"networks": relay or []},
        })
        spool = spool if spool is not None else FakeSpool()
        q = FakeQuarantine()
        ctx = server_context(certs["cert"], certs["key"]) if tls else None
        server = build_gateway(settings, pipeline=make_pipeline(thresholds, extra), recipients=recipients(),
                               spool=spool, quarantine=q if quarantine else None, tls_context=ctx)
        await server.start()
        gw = Gateway(server, spool, q, server.ports[0])
        started.append(gw)
        return gw

    yield make
    for gw in started:
        await gw.stop(0.5)


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> Gateway:
    return await gateway_factory()


@pytest.fixture
def smtp_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="mailbastion.smtp")
    return caplog

