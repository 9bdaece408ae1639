"""SIGHUP's TLS half: `reload_server_context` validates the new files, then a running context takes them
in place, so the next handshake on every listener that holds it (STARTTLS, implicit TLS, LMTP) sees them."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from tls_testkit import (
    HOST,
    Listeners,
    client_context,
    implicit_tls_certificate,
    make_deployment,
    mb,
    start_listeners,
    starttls_certificate,
)

from mailbastion.core.errors import ConfigError
from mailbastion.pki import load_chain
from mailbastion.tls_policy import reload_server_context


@pytest.fixture
async def listeners(tmp_path: Path) -> Listeners:
    lst = await start_listeners(make_deployment(tmp_path / "var"))
    yield lst  # type: ignore[misc]
    await lst.stop()


async def lmtp_certificate(lst: Listeners) -> int:
    from cryptography import x509

    ctx = client_context(lst.settings, client_cert=True)
    reader, writer = await asyncio.open_connection(HOST, lst.lmtp_port, ssl=ctx, server_hostname="mda")
    try:
        await asyncio.wait_for(reader.readline(), 10)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der).serial_number
    finally:
        writer.close()


async def serials(lst: Listeners) -> tuple[int, int]:
    ctx = client_context(lst.settings)
    return ((await starttls_certificate(lst.starttls_port, ctx)).serial_number,
            (await implicit_tls_certificate(lst.implicit_port, ctx)).serial_number)


async def test_renewed_certificate_is_served_after_reload(listeners: Listeners) -> None:
    s = listeners.settings
    cert = s.path(s.tls.cert)
    old = load_chain(cert)[0].serial_number
    assert await serials(listeners) == (old, old)
    res = await asyncio.to_thread(mb, "tls", "renew", "-c", str(s.source))
    assert res.returncode == 0, res.stderr
    new = load_chain(cert)[0].serial_number
    assert new != old
    assert await serials(listeners) == (old, old)  # files alone change nothing until the reload
    live = listeners.gateway.edge.config.tls_context
    assert live is not None
    reload_server_context(live, s)
    assert await serials(listeners) == (new, new)  # both listeners, from the one context


async def test_mda_context_reloads_in_place(listeners: Listeners) -> None:
    s = listeners.settings
    old = await lmtp_certificate(listeners)
    res = await asyncio.to_thread(mb, "tls", "renew", "--role", "mda", "-c", str(s.source))
    assert res.returncode == 0, res.stderr
    reload_server_context(listeners.mda.ssl_context, s, "mda")
    new = await lmtp_certificate(listeners)
    assert new != old and new == load_chain(s.path(s.tls.mda_cert))[0].serial_number


async def test_a_bad_pair_is_refused_and_the_running_one_stays(listeners: Listeners) -> None:
    s = listeners.settings
    tls = s.path(s.tls.cert).parent
    before = await serials(listeners)
    live = listeners.gateway.edge.config.tls_context
    assert live is not None
    shutil.copy(tls / "mda.key", tls / "gateway.key")  # a half-finished manual edit
    with pytest.raises(ConfigError, match="does not belong"):
        reload_server_context(live, s)
    (tls / "gateway.crt").unlink()
    with pytest.raises(ConfigError, match="does not exist"):
        reload_server_context(live, s)
    assert await serials(listeners) == before  # still served, with its own key
