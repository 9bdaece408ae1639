"""The ICAP client against a small ICAP server on loopback (the commercial engine's role)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mailbastion.core.errors import EngineUnavailable
from mailbastion.engines.base import ScanSubject
from mailbastion.engines.icap import IcapScanner, parse_threat
from mailbastion.testing.clamd import EICAR


class IcapServer:
    """Answers OPTIONS, and RESPMOD with 204 unless the body holds EICAR (then 200 + X-Infection-Found)."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        body = b""
        if head.startswith(b"RESPMOD"):
            # encapsulated headers, then the chunked body up to the 0 chunk
            while not body.endswith(b"\r\n0\r\n\r\n") and not body.endswith(b"0\r\n\r\n"):
                chunk = await reader.read(65536)
                if not chunk:
                    break
                body += chunk
        self.requests.append(head + body)
        if head.startswith(b"OPTIONS"):
            writer.write(b'ICAP/1.0 200 OK\r\nMethods: RESPMOD\r\nService: FakeAV 9.1\r\nISTag: "sig-2026"\r\n'
                         b"Encapsulated: null-body=0\r\n\r\n")
        elif EICAR in body:
            writer.write(b"ICAP/1.0 200 OK\r\nX-Infection-Found: Type=0; Resolution=2; Threat=EICAR-Test-File;\r\n"
                         b"Encapsulated: res-hdr=0, null-body=19\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\n")
        else:
            writer.write(b"ICAP/1.0 204 No Content\r\n\r\n")
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> IcapServer:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def icap() -> AsyncIterator[IcapServer]:
    async with IcapServer() as server:
        yield server


async def test_clean_204_and_infected_200(icap: IcapServer) -> None:
    scanner = IcapScanner(f"icap://127.0.0.1:{icap.port}/avscan", vendor="sophos")
    assert (await scanner.scan(ScanSubject(b"hello"))).is_clean
    result = await scanner.scan(ScanSubject(b"x " + EICAR))
    assert [f.name for f in result.findings] == ["EICAR-Test-File"]
    assert icap.requests[-1].startswith(b"RESPMOD icap://127.0.0.1:")
    assert b"Allow: 204" in icap.requests[-1]


async def test_info_reads_service_and_istag(icap: IcapServer) -> None:
    info = await IcapScanner(f"icap://127.0.0.1:{icap.port}/avscan", vendor="sophos").info()
    assert info.vendor == "sophos" and info.version == "FakeAV 9.1" and info.signature_version == "sig-2026"


async def test_down_is_engine_unavailable() -> None:
    with pytest.raises(EngineUnavailable):
        await IcapScanner("icap://127.0.0.1:1/avscan").scan(ScanSubject(b"x"))


def test_parse_threat_headers() -> None:
    assert parse_threat({"x-virus-id": "Troj/Agent-A"}) == "Troj/Agent-A"
    assert parse_threat({"x-infection-found": "Type=0; Resolution=2; Threat=W97M/Downloader;"}) == "W97M/Downloader"
    assert parse_threat({}) is None
