"""The recipient map push over mutual TLS on loopback: the publisher on one side, the receiver on the other,
a real directory, real certificates of a test CA. What the receiver refuses, and the age alarm."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest

from mailbastion.apps.map_publisher import MapPublisher, link_client_context, push_map
from mailbastion.apps.map_push import MapAgeWatch, MapReceiver, PushReply
from mailbastion.config import Settings, parse_settings
from mailbastion.deploy.names import GATEWAY_CLIENT_NAME, INTERNAL_CLIENT_NAME, LINK_NAME
from mailbastion.directory.recipient_map import (
    MapData,
    RecipientMap,
    encode_map,
    next_serial,
    read_map,
    write_map,
)
from mailbastion.pki import issue, make_ca
from mailbastion.tls_policy import client_context


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    make_ca(d / "ca.crt", d / "ca.key")
    issue(d / "ca.crt", d / "ca.key", d / "link.crt", d / "link.key", common_name=LINK_NAME, dns_names=[LINK_NAME])
    for name in (INTERNAL_CLIENT_NAME, GATEWAY_CLIENT_NAME):
        issue(d / "ca.crt", d / "ca.key", d / f"{name}.crt", d / f"{name}.key", common_name=name, dns_names=[name],
              server=False, client=True)
    return d


def _gateway(tmp: Path, pki: Path, port: int, **push: object) -> Settings:
    return parse_settings({
        "server": {"role": "gateway", "data_dir": str(tmp / "gw")},
        "tls": {"ca": str(pki / "ca.crt"), "link_cert": str(pki / "link.crt"), "link_key": str(pki / "link.key")},
        "lmtp": {"connect": "127.0.0.1:2424"},
        "map_push": {"listen": f"127.0.0.1:{port}", "timeout": 10, **push}})


def _internal(tmp: Path, pki: Path, port: int, **sections: dict[str, object]) -> Settings:
    return parse_settings({**sections,
        "server": {"role": "internal", "data_dir": str(tmp / "in")},
        "tls": {"ca": str(pki / "ca.crt"), "internal_client_cert": str(pki / "internal.crt"),
                "internal_client_key": str(pki / "internal.key")},
        "lmtp": {"listen": "127.0.0.1:2424"},
        "map_push": {"gateways": [f"127.0.0.1:{port}"], "timeout": 10, "check_interval": 0.1}})


def _map(serial: int, addresses: list[str]) -> bytes:
    return encode_map(domains=["example.test"], addresses=addresses, aliases={}, serial=serial)


async def test_a_pushed_map_is_applied_atomically_in_serial_order(tmp_path: Path, pki: Path) -> None:
    port = _port()
    applied: list[MapData] = []
    receiver = MapReceiver(_gateway(tmp_path, pki, port), on_applied=applied.append)
    await receiver.start()
    ctx = link_client_context(_internal(tmp_path, pki, port))
    target = tmp_path / "gw" / "recipient-map.json"
    try:
        reply = await push_map("127.0.0.1", port, _map(10, ["a@example.test"]), 10, ctx, timeout=10)
        assert reply == PushReply(200, "applied 10")
        assert read_map(target).addresses == {"a@example.test"} and [m.serial for m in applied] == [10]
        assert (await push_map("127.0.0.1", port, _map(10, ["a@example.test"]), 10, ctx, timeout=10)).text == \
            "unchanged 10"
        older = await push_map("127.0.0.1", port, _map(9, []), 9, ctx, timeout=10)
        assert older.code == 409 and read_map(target).serial == 10  # a late push never rolls back
        assert (await push_map("127.0.0.1", port, b"{not json", 11, ctx, timeout=10)).code == 554
        assert (await push_map("127.0.0.1", port, _map(12, []), 13, ctx, timeout=10)).code == 554
        assert (await push_map("127.0.0.1", port, _map(14, ["b@example.test"]), 14, ctx, timeout=10)).is_success
        assert read_map(target).addresses == {"b@example.test"}
        assert target.stat().st_mode & 0o777 == 0o644
    finally:
        await receiver.stop()


async def test_only_the_internal_hosts_certificate_and_address_may_push(tmp_path: Path, pki: Path) -> None:
    port = _port()
    receiver = MapReceiver(_gateway(tmp_path, pki, port, max_bytes=2048))
    await receiver.start()
    try:
        # the gateway's own client certificate is our CA's too, but it is not the internal host's
        as_gateway = client_context(ca=pki / "ca.crt", cert=pki / f"{GATEWAY_CLIENT_NAME}.crt",
                                    key=pki / f"{GATEWAY_CLIENT_NAME}.key")
        reply = await push_map("127.0.0.1", port, _map(5, []), 5, as_gateway, timeout=10)
        assert reply.code == 550 and "internal host's certificate" in reply.text
        # no client certificate at all: the handshake fails
        anonymous = client_context(ca=pki / "ca.crt")
        with pytest.raises((OSError, ConnectionError)):
            await push_map("127.0.0.1", port, _map(5, []), 5, anonymous, timeout=10)
        ctx = link_client_context(_internal(tmp_path, pki, port))
        big = await push_map("127.0.0.1", port, _map(6, [f"u{i}@example.test" for i in range(200)]), 6, ctx, timeout=10)
        assert big.code == 552
    finally:
        await receiver.stop()
    port = _port()
    elsewhere = MapReceiver(_gateway(tmp_path, pki, port, allow=["10.0.0.0/8"]))
    await elsewhere.start()
    try:
        ctx = link_client_context(_internal(tmp_path, pki, port))
        reply = await push_map("127.0.0.1", port, _map(7, []), 7, ctx, timeout=10)
        assert reply.code == 550 and "map_push.allow" in reply.text
    finally:
        await elsewhere.stop()
    assert not (tmp_path / "gw" / "recipient-map.json").exists()


async def test_the_publisher_pushes_after_a_directory_change(tmp_path: Path, pki: Path) -> None:
    from mailbastion.directory import Directory

    port = _port()
    receiver = MapReceiver(_gateway(tmp_path, pki, port))
    await receiver.start()
    internal = _internal(tmp_path, pki, port)
    internal.path(".").mkdir(parents=True, exist_ok=True)
    directory = Directory.from_settings(internal)
    directory.add_domain("example.test", by="test")
    directory.add_account("carol@example.test", None, by="test")
    publisher = MapPublisher(internal)
    gw_map = tmp_path / "gw" / "recipient-map.json"
    try:
        await publisher.start()
        await _until(lambda: gw_map.exists() and "carol@example.test" in read_map(gw_map).addresses)
        first = read_map(gw_map).serial
        directory.deactivate("carol@example.test", by="test", reason="leaver")
        await _until(lambda: "carol@example.test" not in read_map(gw_map).addresses)
        assert read_map(gw_map).serial > first
        assert [s.name for s in publisher.samples()] == ["map_push_last_success_timestamp_seconds"]
    finally:
        await publisher.stop()
        await receiver.stop()


async def test_a_gateway_that_is_down_is_retried(tmp_path: Path, pki: Path, caplog: pytest.LogCaptureFixture) -> None:
    from mailbastion.directory import Directory

    port = _port()
    internal = _internal(tmp_path, pki, port)
    internal.path(".").mkdir(parents=True, exist_ok=True)
    Directory.from_settings(internal).add_domain("example.test", by="test")
    publisher = MapPublisher(internal)
    caplog.set_level(logging.INFO, "mailbastion.map_push")
    try:
        await publisher.start()
        await _until(lambda: "recipient_map.push_failed" in caplog.text)
        receiver = MapReceiver(_gateway(tmp_path, pki, port))
        await receiver.start()
        try:
            await _until(lambda: (tmp_path / "gw" / "recipient-map.json").exists(), timeout=30)
        finally:
            await receiver.stop()
    finally:
        await publisher.stop()


ARC_MESSAGE = (b"From: Sender <sender@outside.example>\r\nTo: fwd@example.test\r\nSubject: forwarded\r\n"
               b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <f1@outside.example>\r\n\r\nHello.\r\n")


async def test_the_sealing_keys_follow_the_internal_host_and_the_gateway_seals_with_them(
        tmp_path: Path, pki: Path) -> None:
    """Split ARC: the internal host pushes the active RSA key of each sealing domain (KEYS on the link); the
    gateway holds exactly those, seals forwarded copies with them, follows a rotation, and drops them when
    the internal host stops sealing."""
    import dkim  # type: ignore[import-untyped]

    from mailbastion.auth.keys import KeyStore
    from mailbastion.directory import Directory
    from mailbastion.outbound.arc_seal import ArcSealer

    port = _port()
    gw = _gateway(tmp_path, pki, port)
    receiver = MapReceiver(gw)
    await receiver.start()
    internal = _internal(tmp_path, pki, port)
    internal.path(".").mkdir(parents=True, exist_ok=True)
    Directory.from_settings(internal).add_domain("example.test", by="test")
    store = KeyStore(internal.path(internal.auth.dkim_keys_dir))
    first = store.generate("example.test")
    store.activate("example.test", first.selector)
    ed = store.generate("example.test", "ed25519-sha256")
    store.activate("example.test", ed.selector)
    nxt = store.generate("example.test")  # pending: not pushed until it is active
    held = KeyStore(gw.path(gw.srs.arc_keys_dir))
    publisher = MapPublisher(internal)
    try:
        await publisher.start()
        await _until(lambda: [k.selector for k in held.active("example.test")] == [first.selector])
        assert held.private_key("example.test", first.selector) == store.private_key("example.test", first.selector)
        assert [k.selector for k in held.keys("example.test")] == [first.selector]  # no ed25519, no pending
        assert held.permission_problems() == []
        # The gateway's sealer reads the pushed copy, and its seal verifies against the published record.
        sealer = ArcSealer.from_settings(gw)
        raw = f"Authentication-Results: {sealer.authserv_id}; spf=pass smtp.mailfrom=outside.example\r\n".encode()
        records = {f"{k.record_name}.": k.record.encode() for k in store.keys("example.test")}
        sealed = sealer.seal(raw + ARC_MESSAGE, "example.test")
        assert sealed.startswith(b"ARC-Seal:") and f"s={first.selector}".encode() in sealed, sealer.last_reason
        cv, _results, reason = dkim.arc_verify(sealed, dnsfunc=lambda name, timeout=5: records.get(name.decode(), b""))
        assert cv == b"pass", reason
        # A rotation on the internal host reaches the gateway; the old key is gone there.
        store.activate("example.test", nxt.selector)
        await _until(lambda: [k.selector for k in held.keys("example.test")] == [nxt.selector])
        assert not (held.root / "example.test" / f"{first.selector}.key").exists()
        assert f"s={nxt.selector}".encode() in sealer.seal(raw + ARC_MESSAGE, "example.test")
    finally:
        await publisher.stop()
    quiet = MapPublisher(_internal(tmp_path, pki, port, srs={"arc_seal": False}))
    try:
        await quiet.start()
        await _until(lambda: held.domains() == [])
        assert sealer.seal(raw + ARC_MESSAGE, "example.test") == raw + ARC_MESSAGE  # unsealed, reason logged
    finally:
        await quiet.stop()
        await receiver.stop()


async def test_sealing_keys_the_gateway_refuses(tmp_path: Path, pki: Path) -> None:
    from mailbastion.apps.map_publisher import push_keys
    from mailbastion.auth.keys import KeyStore
    from mailbastion.outbound.sealing_keys import encode_keys

    port = _port()
    gw = _gateway(tmp_path, pki, port)
    receiver = MapReceiver(gw)
    await receiver.start()
    ctx = link_client_context(_internal(tmp_path, pki, port))
    try:
        for data, text in ((b"not json", "not JSON"), (b'{"format": "x", "keys": []}', "not a"),
                           (encode_keys({"../etc": ("s1", b"-----BEGIN RSA PRIVATE KEY-----\n")}), "bad or repeated"),
                           (encode_keys({"example.test": ("s1", b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n"
                                                                b"-----END RSA PRIVATE KEY-----\n")}), "refused")):
            reply = await push_keys("127.0.0.1", port, data, ctx, timeout=10)
            assert reply.code == 554 and text in reply.text, (reply, text)
        as_gateway = client_context(ca=pki / "ca.crt", cert=pki / f"{GATEWAY_CLIENT_NAME}.crt",
                                    key=pki / f"{GATEWAY_CLIENT_NAME}.key")
        reply = await push_keys("127.0.0.1", port, encode_keys({}), as_gateway, timeout=10)
        assert reply.code == 550
        assert KeyStore(gw.path(gw.srs.arc_keys_dir)).domains() == []
    finally:
        await receiver.stop()


async def _until(condition: object, timeout: float = 15.0) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


def test_the_age_watch_alarms_on_an_old_or_missing_map(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "recipient-map.json"
    now = [1_000_000.0]
    caplog.set_level(logging.INFO, "mailbastion.map_push")
    missing = MapAgeWatch(RecipientMap(path), max_age=900, clock=lambda: now[0])
    assert missing.check() and "recipient_map.stale no map loaded" in caplog.text
    path.write_bytes(encode_map(domains=["example.test"], addresses=[], aliases={}, serial=3, generated_at=now[0]))
    watch = MapAgeWatch(RecipientMap(path), max_age=900, clock=lambda: now[0])
    caplog.clear()
    assert not watch.check() and "recipient_map" not in caplog.text
    now[0] += 901
    assert watch.check() and "recipient_map.stale age=901s max_age=900s serial=3" in caplog.text
    samples = {s.name: s.value for s in watch.samples()}
    assert samples == {"recipient_map_serial": 3.0, "recipient_map_age_seconds": 901.0}
    path.write_bytes(encode_map(domains=["example.test"], addresses=[], aliases={}, serial=4, generated_at=now[0]))
    watch.recipients.reload()
    caplog.clear()
    assert not watch.check() and "recipient_map.fresh serial=4" in caplog.text


def test_serials_only_grow(tmp_path: Path) -> None:
    assert next_serial(5, now=0.001) == 6  # the clock went back: previous + 1
    assert next_serial(5, now=1000.0) == 1_000_000
    path = tmp_path / "m.json"
    write_map(path, domains=["a.test"], addresses=[], aliases={})
    first = read_map(path).serial
    write_map(path, domains=["a.test"], addresses=[], aliases={})
    assert read_map(path).serial > first
    doc = json.loads(path.read_text())
    assert doc["generated_at"].endswith("+00:00") and read_map(path).age() is not None
