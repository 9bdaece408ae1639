"""The LMTP connection cache: one mutual-TLS handshake serves many deliveries, safely."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiosmtpd.lmtp import LMTP
from delivery_servers import ScriptedHandler, gateway_client_context

from mailbastion.core.outcome import Deferred, Delivered, Failed
from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
from mailbastion.delivery.lmtp_client import LmtpDeliveryAgent
from mailbastion.tls_policy import server_context

MESSAGE = b"From: alice@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


def record(n: int, *rcpts: str) -> DeliveryRequest:
    return DeliveryRequest(f"0123456789ABC{n:05d}", "alice@example.org", tuple(DeliveryRecipient(r) for r in rcpts),
                           MESSAGE)


async def _mda(pki: dict[str, Path], handler: ScriptedHandler) -> tuple[asyncio.base_events.Server, list[LMTP]]:
    sessions: list[LMTP] = []

    def factory() -> LMTP:
        proto = LMTP(handler, hostname="mda")
        sessions.append(proto)
        return proto

    ctx = server_context(pki["mda.crt"], pki["mda.key"], client_ca=pki["ca.crt"])
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0, ssl=ctx)
    return server, sessions


def _agent(pki: dict[str, Path], port: int) -> LmtpDeliveryAgent:
    return LmtpDeliveryAgent("127.0.0.1", port, ssl_context=gateway_client_context(pki), timeout=10,
                             connect_timeout=5)


async def test_one_connection_serves_many_deliveries(pki: dict[str, Path]) -> None:
    handler = ScriptedHandler()
    handler.rcpt_replies = {"unknown@example.org": "550 5.1.1 user unknown"}
    server, sessions = await _mda(pki, handler)
    agent = _agent(pki, server.sockets[0].getsockname()[1])
    try:
        for n in range(5):
            out = await agent.deliver(record(n, "ok@example.org"))
            assert isinstance(out["ok@example.org"], Delivered)
        # a transaction with no accepted recipient is reset, and the session still serves the next one
        out = await agent.deliver(record(5, "unknown@example.org"))
        assert isinstance(out["unknown@example.org"], Failed)
        out = await agent.deliver(record(6, "ok@example.org"))
        assert isinstance(out["ok@example.org"], Delivered)
        assert agent.connections_opened == 1 and len(sessions) == 1
        assert len(handler.received) == 6
    finally:
        await agent.close()
        server.close()


async def test_a_session_the_mda_closed_is_replaced_without_losing_or_doubling(pki: dict[str, Path]) -> None:
    handler = ScriptedHandler()
    server, sessions = await _mda(pki, handler)
    agent = _agent(pki, server.sockets[0].getsockname()[1])
    try:
        assert isinstance((await agent.deliver(record(1, "ok@example.org")))["ok@example.org"], Delivered)
        for s in sessions:  # the MDA restarts, or times the idle session out
            if s.transport is not None:
                s.transport.close()
        await asyncio.sleep(0.1)
        out = await agent.deliver(record(2, "ok@example.org"))
        assert isinstance(out["ok@example.org"], Delivered)
        assert agent.connections_opened == 2
        assert len(handler.received) == 2  # each message exactly once
    finally:
        await agent.close()
        server.close()


class _DropAfterData:
    """Takes the message, then drops the connection without a reply (a crash after receiving it)."""

    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: LMTP, session: object, envelope: object) -> str:
        self.received += 1
        if self.received >= 2:
            server.transport.close()
            await asyncio.sleep(0.1)
        return "250 2.0.0 delivered"


async def test_a_cached_session_lost_after_data_is_never_retried(pki: dict[str, Path]) -> None:
    handler = _DropAfterData()
    server, _ = await _mda(pki, handler)  # type: ignore[arg-type]
    agent = _agent(pki, server.sockets[0].getsockname()[1])
    try:
        assert isinstance((await agent.deliver(record(1, "ok@example.org")))["ok@example.org"], Delivered)
        out = await agent.deliver(record(2, "ok@example.org"))  # on the cached session
        assert isinstance(out["ok@example.org"], Deferred)  # the queue retries (within seconds: link lost)...
        assert handler.received == 2  # ...but this delivery did not send the message a second time
        assert agent.connections_opened == 1
    finally:
        await agent.close()
        server.close()
