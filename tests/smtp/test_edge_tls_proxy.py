"""STARTTLS (and what the Received header records), XCLIENT and the PROXY protocol."""

from __future__ import annotations

import ssl
import struct
from ipaddress import ip_address
from pathlib import Path

import pytest
from gateway_testkit import MESSAGE, OUR_HOST, Gateway, GatewayFactory, send_message


async def test_starttls_and_received_records_cipher(gateway: Gateway, client_tls: ssl.SSLContext) -> None:
    d = await gateway.connect()
    await d.cmd("EHLO mail.example.org")
    r = await d.starttls(client_tls, server_hostname=OUR_HOST)
    assert r.code == 220
    assert d.tls_version in ("TLSv1.2", "TLSv1.3")
    ehlo = await d.cmd("EHLO mail.example.org")
    assert not any(line.startswith("STARTTLS") for line in ehlo.lines)  # not twice
    assert (await d.cmd("STARTTLS")).code == 503
    replies = await send_message(d)
    assert replies[-1].code == 250
    received = gateway.spool.commits[0].message.split(b"\r\n\r\n")[0].decode()
    assert f"(using {d.tls_version} with cipher " in received
    assert "with ESMTPS" in received
    await d.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_tls_below_1_2_refused(gateway: Gateway, client_tls: ssl.SSLContext) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    try:
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    d = await gateway.connect()
    await d.cmd("EHLO mail.example.org")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        await d.starttls(old)
        await d.cmd("EHLO again.example.org")
    assert gateway.spool.commits == []


async def test_starttls_command_injection_discarded(gateway: Gateway, client_tls: ssl.SSLContext) -> None:
    d = await gateway.connect()
    await d.cmd("EHLO mail.example.org")
    await d.send(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")  # plaintext after STARTTLS
    assert (await d.read_reply()).code == 220
    await d.writer.start_tls(client_tls, server_hostname=OUR_HOST)
    # RFC 3207 §4.2: the injected MAIL was dropped, and knowledge from before TLS is forgotten.
    assert (await d.cmd("RCPT TO:<alice@example.net>")).code == 503
    await d.close()


async def test_no_tls_context_no_starttls(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(tls=False)
    d = await gw.connect()
    ehlo = await d.cmd("EHLO mail.example.org")
    assert not any(line.startswith("STARTTLS") for line in ehlo.lines)
    assert (await d.cmd("STARTTLS")).code == 502
    await d.close()


async def test_xclient_refused_from_untrusted(gateway: Gateway) -> None:
    d = await gateway.connect()
    await d.cmd("EHLO mail.example.org")
    r = await d.cmd("XCLIENT ADDR=192.0.2.7 NAME=mx.example.org")
    assert (r.code, r.status) == (550, "5.7.0")
    await send_message(d)
    assert gateway.spool.commits[0].client == "127.0.0.1"
    await d.close()


async def test_xclient_accepted_from_trusted(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"xclient_hosts": ["127.0.0.1"]})
    d = await gw.connect()
    ehlo = await d.cmd("EHLO bench.example.org")
    assert any(line.startswith("XCLIENT") for line in ehlo.lines)
    r = await d.cmd("XCLIENT ADDR=192.0.2.7 NAME=mx.example.org HELO=mx.example.org PROTO=ESMTP")
    assert r.code == 220
    replies = await send_message(d, helo="ignored.example.org")
    assert replies[-1].code == 250
    commit = gw.spool.commits[0]
    assert commit.client == "192.0.2.7"
    assert b"Received: from mx.example.org (mx.example.org [192.0.2.7])" in commit.message
    await d.close()


async def test_xclient_cannot_forge_relay_rights_from_untrusted(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(relay=["192.0.2.0/24"])
    d = await gw.connect()
    await d.cmd("EHLO mail.example.org")
    assert (await d.cmd("XCLIENT ADDR=192.0.2.7")).code == 550
    replies = await send_message(d, rcpts=("user@foreign.example",))
    assert replies[-1].code == 550
    await d.close()


async def test_xclient_bad_syntax(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"xclient_hosts": ["127.0.0.1"]})
    d = await gw.connect()
    assert (await d.cmd("XCLIENT ADDR=not-an-ip")).code == 501
    assert (await d.cmd("XCLIENT LOGIN=admin")).code == 501
    await d.close()


async def test_proxy_v1_sets_client_address(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"proxy_protocol": True, "proxy_protocol_from": ["127.0.0.1"]})
    d = await gw.connect(preamble=b"PROXY TCP4 198.51.100.9 192.0.2.1 40000 25\r\n")
    assert d.greeting is not None and d.greeting.code == 220
    await send_message(d)
    assert gw.spool.commits[0].client == "198.51.100.9"
    await d.close()


async def test_proxy_v2_sets_client_address(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"proxy_protocol": True, "proxy_protocol_from": ["127.0.0.0/8"]})
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    body = ip_address("203.0.113.5").packed + ip_address("192.0.2.1").packed + struct.pack("!HH", 40000, 25)
    header = sig + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body
    d = await gw.connect(preamble=header)
    assert d.greeting is not None and d.greeting.code == 220
    await send_message(d)
    assert gw.spool.commits[0].client == "203.0.113.5"
    await d.close()


async def test_proxy_header_from_untrusted_is_not_believed(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"proxy_protocol": True, "proxy_protocol_from": ["10.0.0.1"]})
    d = await gw.connect()
    assert d.greeting is not None and d.greeting.code == 220  # served as a direct client
    r = await d.cmd("PROXY TCP4 198.51.100.9 192.0.2.1 40000 25")
    assert r.code == 500
    await send_message(d)
    assert gw.spool.commits[0].client == "127.0.0.1"
    await d.close()


async def test_proxy_off_by_default(gateway: Gateway) -> None:
    d = await gateway.connect()
    assert (await d.cmd("PROXY TCP4 198.51.100.9 192.0.2.1 40000 25")).code == 500
    await d.close()


async def test_invalid_proxy_header_closes(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"proxy_protocol": True, "proxy_protocol_from": ["127.0.0.1"]})
    d = await gw.connect(read_greeting=False, preamble=b"EHLO not-a-proxy-header\r\n")
    assert await d.is_closed(5)
    assert gw.spool.commits == []
    _ = MESSAGE


async def test_require_starttls(gateway_factory: GatewayFactory, client_tls: ssl.SSLContext) -> None:
    gw = await gateway_factory(smtp={"require_starttls": True})
    d = await gw.connect()
    await d.cmd("EHLO mail.example.org")
    r = await d.cmd("MAIL FROM:<a@example.org>")
    assert (r.code, r.status) == (530, "5.7.0")
    assert (await d.starttls(client_tls, server_hostname=OUR_HOST)).code == 220
    assert (await send_message(d))[-1].code == 250
    await d.close()


async def test_implicit_tls_listener(certs: dict[str, Path], client_tls: ssl.SSLContext) -> None:
    from gateway_testkit import make_pipeline, recipients

    from mailbastion.apps.gateway import build_gateway
    from mailbastion.config.loader import parse_settings
    from mailbastion.testing.fakes import FakeSpool
    from mailbastion.testing.smtp_dialogue import SmtpDialogue

    tls_dir = certs["cert"].parent
    settings = parse_settings({
        "server": {"hostname": OUR_HOST, "data_dir": str(tls_dir)},
        "smtp": {"listen": ["127.0.0.1:0"], "implicit_tls_listen": ["127.0.0.1:0"]},
        "tls": {"cert": str(certs["cert"]), "key": str(certs["key"])},
    })
    spool = FakeSpool()
    server = build_gateway(settings, pipeline=make_pipeline(), recipients=recipients(), spool=spool)
    await server.start()
    try:
        lines = server.describe()
        assert any("(implicit TLS)" in x for x in lines) and any("(STARTTLS)" in x for x in lines)
        port = server.ports[1]
        d = await SmtpDialogue.open("127.0.0.1", port, ssl_context=client_tls)
        assert d.tls_version in ("TLSv1.2", "TLSv1.3")
        ehlo = await d.cmd("EHLO mail.example.org")
        assert not any(x.startswith("STARTTLS") for x in ehlo.lines)
        assert (await send_message(d))[-1].code == 250
        assert b"with ESMTPS" in spool.commits[0].message
        await d.close()
        assert server.reload_tls()  # SIGHUP: the same pair reloads into the live context
        d = await SmtpDialogue.open("127.0.0.1", port, ssl_context=client_tls)
        assert d.greeting is not None and d.greeting.code == 220
        await d.close()
    finally:
        await server.stop(0.5)


def test_smtp_package_surface() -> None:
    from mailbastion import smtp

    for name in smtp.__all__:
        assert getattr(smtp, name) is not None
    with pytest.raises(AttributeError):
        _ = smtp.nothing_here  # type: ignore[attr-defined]
