"""Listeners: graceful drain, several acceptor processes on one socket, uvloop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from gateway_testkit import HOST, MESSAGE, GatewayFactory

from mailbastion.core.stages import Stage
from mailbastion.core.verdict import CheckResult
from mailbastion.policy.check import CheckContext, FunctionCheck
from mailbastion.smtp.listeners import bind, parse_listen
from mailbastion.tls_policy import server_context
from mailbastion.testing.fakes import FakeSpool
from mailbastion.testing.smtp_dialogue import SmtpDialogue


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:25") == ("127.0.0.1", 25)
    assert parse_listen("[::1]:2525") == ("::1", 2525)
    assert parse_listen(":25") == ("0.0.0.0", 25)
    with pytest.raises(ValueError):
        parse_listen("localhost")


async def test_graceful_drain(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(spool=FakeSpool(delay=0.5))
    busy, idle = await gw.connect(), await gw.connect()
    await busy.cmd("EHLO mail.example.org")
    await busy.cmd("MAIL FROM:<a@example.org>")
    await busy.cmd("RCPT TO:<alice@example.net>")
    assert (await busy.cmd("DATA")).code == 354
    await busy.send(MESSAGE + b".\r\n")
    await asyncio.sleep(0.1)  # the commit is under way
    stopping = asyncio.create_task(gw.server.stop(drain_seconds=5))
    r = await idle.read_reply()
    assert (r.code, r.status) == (421, "4.3.2")  # an idle session is told to come back later
    done = await busy.read_reply()
    assert done.code == 250  # the open transaction finished: a promise kept
    assert (await busy.read_reply()).code == 421
    await stopping
    assert len(gw.spool.commits) == 1
    with pytest.raises(OSError):
        await SmtpDialogue.open(HOST, gw.port, timeout=2)


def _failed_starttls(port: int) -> None:
    """A client that only speaks TLS 1.1: the handshake after STARTTLS fails."""
    import smtplib

    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1  # refused by our TLS >= 1.2
    client = smtplib.SMTP(HOST, port, timeout=10)
    client.ehlo("probe.example")
    with pytest.raises((ssl.SSLError, OSError)):
        client.starttls(context=ctx)
    client.close()


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
@pytest.mark.parametrize("probe", ["connect-close", "failed-starttls"])
def test_client_that_connects_and_closes_leaves_no_session(loop_kind: str, probe: str, certs: dict[str, Path]) -> None:
    """A probe that connects and closes at once (health checks, port scanners) must not hold a
    connection slot. Under uvloop (what `mailbastion serve` runs on) aiosmtpd's EOF handling left
    such a session half-open for ever, and a drain waited for it until its bound."""
    from gateway_testkit import make_pipeline, recipients

    from mailbastion.apps.gateway import build_gateway
    from mailbastion.config import parse_settings

    async def slow_connect_check(ctx: CheckContext) -> CheckResult:
        await asyncio.sleep(0.2)  # like a DNS lookup at CONNECT: the client's EOF arrives meanwhile
        return CheckResult()

    async def scenario() -> None:
        settings = parse_settings({"smtp": {"listen": [f"{HOST}:0"]}})
        slow = FunctionCheck(slow_connect_check, "slow_connect", Stage.CONNECT, frozenset())
        server = build_gateway(settings, pipeline=make_pipeline(None, [slow]), recipients=recipients(),
                               spool=FakeSpool(), tls_context=server_context(certs["cert"], certs["key"]))
        await server.start()
        for _ in range(3):
            if probe == "connect-close":
                # Blocking connect and close: the server sees the connection and its EOF in one loop turn.
                socket.create_connection((HOST, server.ports[0]), timeout=5).close()
            else:
                await asyncio.to_thread(_failed_starttls, server.ports[0])
        await asyncio.sleep(1.0)
        edge = server.listeners.bound[0].edge
        left = len(edge.connections)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await server.stop(drain_seconds=3)
        assert left == 0
        assert loop.time() - t0 < 2  # nothing left to wait for

    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()


async def test_drain_bound_closes_stragglers(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory()
    d = await gw.connect()
    await d.cmd("EHLO mail.example.org")
    await d.cmd("MAIL FROM:<a@example.org>")  # inside a transaction, then silent
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await gw.server.stop(drain_seconds=0.5)
    assert loop.time() - t0 < 3
    r = await d.read_reply()
    assert r.code == 421
    assert await d.is_closed()


WORKER = textwrap.dedent('''
    import asyncio, os, signal, socket, sys
    from mailbastion.config.loader import parse_settings
    from mailbastion.apps.gateway import build_gateway
    from mailbastion.smtp.listeners import bind, run_workers
    sys.path.insert(0, sys.argv[2])
    from gateway_testkit import make_pipeline, recipients
    from mailbastion.testing.fakes import FakeSpool

    class PidSpool(FakeSpool):
        async def commit(self, *a, **kw):
            return f"pid{os.getpid()}"

    settings = parse_settings({"server": {"hostname": "mx.example.net"}, "smtp": {"listen": ["127.0.0.1:0"]}})
    socks = bind(["127.0.0.1:0"])
    print(socks[0].getsockname()[1], flush=True)

    async def worker(sockets):
        server = build_gateway(settings, pipeline=make_pipeline(), recipients=recipients(), spool=PidSpool(),
                               tls_context=None)
        await server.start(sockets=sockets)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop(2.0)

    sys.exit(run_workers(int(sys.argv[1]), socks, worker))
''')


@pytest.mark.slow
async def test_workers_share_one_socket(tmp_path: Path) -> None:
    script = tmp_path / "workers.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, str(script), "3", str(Path(__file__).parent)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, text=True)  # noqa: ASYNC220 - long-lived child
    try:
        assert proc.stdout is not None
        port = int(await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline))
        pids = set()
        for _ in range(40):
            d = await SmtpDialogue.open(HOST, port)
            await d.cmd("EHLO mail.example.org")
            await d.cmd("MAIL FROM:<a@example.org>")
            await d.cmd("RCPT TO:<alice@example.net>")
            r = await d.message(MESSAGE)
            assert r.code == 250
            pids.add(r.text.rsplit(" ", 1)[1])
            await d.close()
            if len(pids) > 1:
                break
        assert len(pids) > 1, "every connection went to one process"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.get_running_loop().run_in_executor(None, proc.wait, 20) == 0


def test_uvloop_session(certs: dict[str, Path], client_tls: ssl.SSLContext) -> None:
    """A whole session, STARTTLS included, under uvloop (what the workers use when installed)."""
    uvloop = pytest.importorskip("uvloop")
    assert socket is not None  # imported for the worker script
    from gateway_testkit import make_pipeline, recipients

    from mailbastion.apps.gateway import build_gateway
    from mailbastion.config.loader import parse_settings

    async def main() -> int:
        settings = parse_settings({"server": {"hostname": "mx.example.net"}, "smtp": {"listen": [f"{HOST}:0"]}})
        spool = FakeSpool()
        server = build_gateway(settings, pipeline=make_pipeline(), recipients=recipients(), spool=spool,
                               tls_context=server_context(certs["cert"], certs["key"]))
        await server.start()
        d = await SmtpDialogue.open(HOST, server.ports[0])
        await d.cmd("EHLO mail.example.org")
        assert (await d.starttls(client_tls, server_hostname="mx.example.net")).code == 220
        await d.cmd("EHLO mail.example.org")
        await d.cmd("MAIL FROM:<a@example.org>")
        await d.cmd("RCPT TO:<alice@example.net>")
        r = await d.message(MESSAGE)
        await d.close()
        await server.stop(1)
        assert b"(using TLSv1.3 with cipher" in spool.commits[0].message
        return r.code

    assert uvloop.run(main()) == 250
    _ = bind
