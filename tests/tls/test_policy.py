"""The listener policy, handshake by handshake against our live gateway (no sslyze needed here)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from tls_testkit import HOST, HOSTNAME, Listeners, client_context, make_deployment, start_listeners

from mailbastion.config import load_settings
from mailbastion.tls_policy import MOZILLA_INTERMEDIATE_CIPHERS, server_context_from_settings


@pytest.fixture
async def listeners(tmp_path: Path) -> Listeners:
    lst = await start_listeners(make_deployment(tmp_path / "var"))
    yield lst  # type: ignore[misc]
    await lst.stop()


async def handshake(port: int, ctx: ssl.SSLContext) -> tuple[str, str]:
    """Implicit-TLS handshake; returns (TLS version, cipher). Raises ssl.SSLError or ConnectionError when
    refused."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port, ssl=ctx,
                                                                    server_hostname=HOSTNAME), 10)
    try:
        await asyncio.wait_for(reader.readline(), 10)
        obj = writer.get_extra_info("ssl_object")
        return obj.version(), obj.cipher()[0]
    finally:
        writer.close()


def test_context_carries_the_profile(tmp_path: Path) -> None:
    ctx = server_context_from_settings(load_settings(make_deployment(tmp_path)))
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
    tls12 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 == list(MOZILLA_INTERMEDIATE_CIPHERS)  # the profile's list, in its order
    assert ctx.options & ssl.OP_NO_COMPRESSION and ctx.options & ssl.OP_NO_RENEGOTIATION
    assert ctx.options & ssl.OP_NO_TICKET
    assert not ctx.options & ssl.OP_CIPHER_SERVER_PREFERENCE  # intermediate: server_preferred_order false


@pytest.mark.parametrize("group", ["X448", "secp521r1", "secp384r1", "X25519"])
async def test_groups_outside_p256_are_refused(listeners: Listeners, group: str) -> None:
    """X448 and secp521r1 (outside the profile) are refused; so are X25519 and P-384, which Python 3.11
    cannot keep next to P-256 (docs/architecture.md, change 26). A client offering only one of them gets no session."""
    # openssl's client offers exactly the group named (Python's ssl cannot name X25519 or X448 on every
    # build: Debian's 3.11 knows only EC curves there); the same client with P-256 gets its session.
    assert await _s_client(listeners.implicit_port, "prime256v1")
    assert not await _s_client(listeners.implicit_port, group)


async def _s_client(port: int, group: str) -> bool:
    """True when `openssl s_client` offering only `group` completes a handshake with the listener."""
    proc = await asyncio.create_subprocess_exec(
        "openssl", "s_client", "-connect", f"{HOST}:{port}", "-servername", HOSTNAME, "-groups", group,
        "-brief", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(b""), 60)
    return proc.returncode == 0 and b"CONNECTION ESTABLISHED" in out


async def test_p256_and_tls13_and_tls12_work(listeners: Listeners) -> None:
    ctx = client_context(listeners.settings)
    ctx.set_ecdh_curve("prime256v1")
    assert (await handshake(listeners.implicit_port, ctx))[0] == "TLSv1.3"
    ctx12 = client_context(listeners.settings)
    ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
    version, cipher = await handshake(listeners.implicit_port, ctx12)
    assert version == "TLSv1.2" and cipher in MOZILLA_INTERMEDIATE_CIPHERS


async def test_tls11_is_refused(listeners: Listeners) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.warns(DeprecationWarning):
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError)):  # an alert, or a reset before it is read
        await handshake(listeners.implicit_port, ctx)


async def test_lmtp_requires_a_client_certificate_of_our_ca(listeners: Listeners) -> None:
    s = listeners.settings
    with_cert = client_context(s, client_cert=True)
    reader, writer = await asyncio.open_connection(HOST, listeners.lmtp_port, ssl=with_cert, server_hostname="mda")
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"220")
    writer.close()
    without = client_context(s)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        reader, writer = await asyncio.open_connection(HOST, listeners.lmtp_port, ssl=without, server_hostname="mda")
        # TLS 1.3: the refusal of a missing certificate arrives after the client's handshake completes
        line = await asyncio.wait_for(reader.readline(), 10)
        if not line:
            raise ConnectionError("closed")
