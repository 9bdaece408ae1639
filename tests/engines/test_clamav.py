"""The clamd adapter against the real Debian clamd (started by the tests with a database made here)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from datetime import UTC, datetime, timedelta

import pytest

from mailbastion.core.errors import EngineUnavailable
from mailbastion.engines.base import FindingKind, Part, ScanSubject
from mailbastion.engines.cache import ScanCache
from mailbastion.engines.clamav import ClamdScanner, parse_version
from mailbastion.testing.clamd import EICAR, TESTFILES_DIR, ClamdTestServer

pytestmark = pytest.mark.clamd


def test_parse_version() -> None:
    version, sigs, date = parse_version("ClamAV 1.4.6/27000/Sat Nov 28 02:09:18 2026\0")
    assert version == "1.4.6" and sigs == "27000"
    assert date is not None and date.tzinfo is not None
    assert parse_version("ClamAV 1.4.6") == ("1.4.6", "", None)


async def test_eicar_found_clean_passes(clamd: ClamdTestServer) -> None:
    scanner = ClamdScanner(socket_path=clamd.socket_path)
    result = await scanner.scan(ScanSubject(b"Subject: x\r\n\r\nhello " + EICAR + b"\r\n"))
    assert [f.name for f in result.findings] == ["Eicar-Test-Signature"]
    assert result.findings[0].kind is FindingKind.MALWARE
    assert (await scanner.scan(ScanSubject(b"Subject: x\r\n\r\nhello\r\n"))).is_clean
    await scanner.close()


async def test_decoded_parts_are_scanned_too(clamd: ClamdTestServer) -> None:
    scanner = ClamdScanner(socket_path=clamd.socket_path)
    exe = (TESTFILES_DIR / "clam.exe").read_bytes() if TESTFILES_DIR.is_dir() else EICAR
    result = await scanner.scan(ScanSubject(b"opaque", (Part("2 a.bin", exe, "a.bin"),)))
    assert result.findings and result.findings[0].where == "2 a.bin"


async def test_info_reads_version_and_signature_date(clamd: ClamdTestServer) -> None:
    info = await ClamdScanner(socket_path=clamd.socket_path).info()
    assert info.vendor == "clamav" and info.version.startswith(("0.", "1.", "2."))
    assert info.signature_version == str(clamd.version)
    assert info.signature_date is not None
    assert abs(datetime.now(UTC) - info.signature_date - timedelta(hours=1)) < timedelta(minutes=5)


async def test_pool_bounds_connections_and_reuses_sessions(clamd: ClamdTestServer) -> None:
    scanner = ClamdScanner(socket_path=clamd.socket_path, pool_size=3)
    blobs = [ScanSubject(b"message %d" % i) for i in range(40)]
    results = await asyncio.gather(*(scanner.scan(b) for b in blobs))
    assert all(r.is_clean for r in results)
    assert len(scanner._idle) <= 3
    await scanner.close()


async def test_cache_by_digest(clamd: ClamdTestServer) -> None:
    cache = ScanCache()
    scanner = ClamdScanner(socket_path=clamd.socket_path, cache=cache)
    await scanner.scan(ScanSubject(EICAR))
    await scanner.scan(ScanSubject(EICAR))
    assert cache.hits == 1


async def test_unreachable_is_engine_unavailable() -> None:
    scanner = ClamdScanner(socket_path="/nonexistent/clamd.sock", connect_timeout=0.5)
    with pytest.raises(EngineUnavailable):
        await scanner.scan(ScanSubject(b"x"))
    with pytest.raises(EngineUnavailable):
        await scanner.info()


async def test_tcp_refused_is_engine_unavailable() -> None:
    scanner = ClamdScanner(address="127.0.0.1:1", connect_timeout=0.5)
    with pytest.raises(EngineUnavailable):
        await scanner.scan(ScanSubject(b"x"))


async def test_silent_daemon_times_out() -> None:
    path = os.path.join(tempfile.mkdtemp(prefix="mb-slow-"), "s.sock")

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_unix_server(never_answer, path)
    try:
        scanner = ClamdScanner(socket_path=path, scan_timeout=0.3)
        with pytest.raises(EngineUnavailable, match="no answer"):
            await scanner.scan(ScanSubject(b"x"))
    finally:
        server.close()


async def test_restart_recovers_stale_pooled_sessions(clamd: ClamdTestServer) -> None:
    scanner = ClamdScanner(socket_path=clamd.socket_path)
    assert (await scanner.scan(ScanSubject(b"before"))).is_clean
    clamd.restart()
    assert (await scanner.scan(ScanSubject(b"after"))).is_clean  # the dead session is replaced


async def test_oversized_stream_is_unscannable_not_clean(clamd: ClamdTestServer) -> None:
    scanner = ClamdScanner(socket_path=clamd.socket_path, stream_max_length=1024)
    result = await scanner.scan(ScanSubject(b"x" * 4096))
    assert result.findings and result.findings[0].kind is FindingKind.UNSCANNABLE



async def test_blob_over_clamds_stream_limit_fails_closed(clamd: ClamdTestServer) -> None:
    # A scanner configured above clamd's StreamMaxLength (50M in the test clamd) must not call it clean.
    scanner = ClamdScanner(socket_path=clamd.socket_path, stream_max_length=200 * 1024 * 1024)
    try:
        result = await scanner.scan(ScanSubject(b"x" * (51 * 1024 * 1024)))
    except EngineUnavailable:
        pass
    else:
        assert result.findings and result.findings[0].kind is FindingKind.UNSCANNABLE
    assert (await scanner.scan(ScanSubject(b"small"))).is_clean


def _recording(scanner: ClamdScanner) -> list[bytes]:
    """Every blob the scanner streams to clamd, in order."""
    sent: list[bytes] = []
    real = scanner.scan_bytes

    async def recording(data: bytes) -> str | None:
        sent.append(data)
        return await real(data)

    scanner.scan_bytes = recording  # type: ignore[method-assign]
    return sent


async def test_each_decoded_part_goes_to_clamd_once_and_the_raw_message_not_at_all(clamd: ClamdTestServer) -> None:
    from mailbastion.core.message import SpooledMessage
    from mailbastion.engines.mime_walk import build_subject
    from mailbastion.testing import av

    pdf = av.clean_pdf()
    raw = av.attach([("a.pdf", "application/pdf", pdf), ("copy.pdf", "application/pdf", pdf),
                     ("e.com", "application/octet-stream", EICAR)])
    message = SpooledMessage(raw)
    subject = build_subject(message)
    assert subject.well_formed
    scanner = ClamdScanner(socket_path=clamd.socket_path)
    sent = _recording(scanner)
    result = await scanner.scan(subject)
    assert [f.name for f in result.findings] == ["Eicar-Test-Signature"]
    assert raw not in sent and len(sent) == len(set(sent))
    assert sent.count(pdf) == 1 and sent.count(EICAR) == 1
    assert set(sent) == {p.data for p in message.parts}  # the shared parts, nothing else
    await scanner.close()


async def test_malformed_mime_also_gets_clamds_own_parser(clamd: ClamdTestServer) -> None:
    from mailbastion.core.message import SpooledMessage
    from mailbastion.engines.mime_walk import build_subject
    from mailbastion.testing import av

    raw = av.WRAPPINGS["broken_boundary"](EICAR, "e.com")
    subject = build_subject(SpooledMessage(raw))
    assert not subject.well_formed
    scanner = ClamdScanner(socket_path=clamd.socket_path)
    sent = _recording(scanner)
    result = await scanner.scan(subject)
    assert sent[0] == raw and sent.count(raw) == 1 and EICAR in sent
    assert result.findings
    whole = ClamdScanner(socket_path=clamd.socket_path, scan_whole_message=True)
    sent_whole = _recording(whole)
    await whole.scan(build_subject(SpooledMessage(av.attach([("a.pdf", "application/pdf", av.clean_pdf())]))))
    assert sent_whole[0].startswith(b"From: sender@example.net")  # the site asked for the whole message too
    await scanner.close()
    await whole.close()
