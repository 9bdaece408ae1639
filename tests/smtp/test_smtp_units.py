"""Unit tests of the edge's pure parts: data reader, XCLIENT parser, header rewrite, Received."""

from __future__ import annotations

import asyncio

import pytest

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.core.peer import PeerInfo, TlsInfo
from mailbastion.core.verdict import Edit
from mailbastion.smtp import commands, data, handler, received, rewrite, xclient
from mailbastion.smtp.commands import split_path
from mailbastion.smtp.data import DataProblem, read_data
from mailbastion.smtp.limits import ConnectionGate, NetworkList


async def feed(raw: bytes, *, max_size: int = 10_000, max_line: int = 1000, limit: int = 2048) -> data.DataResult:
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(raw)
    reader.feed_eof()
    return await read_data(reader, max_size=max_size, max_line=max_line)


async def test_read_data_plain() -> None:
    r = await feed(b"a\r\n..b\r\n.\r\nNEXT\r\n")
    assert (r.content, r.problem) == (b"a\r\n.b\r\n", None)


@pytest.mark.parametrize("raw", [b"a\n.\nb\r\n.\r\n", b"a\r.\rb\r\n.\r\n", b"a\r\n.\nb\r\n.\r\n", b"a\rb\r\n.\r\n"])
async def test_read_data_bare_newlines(raw: bytes) -> None:
    assert (await feed(raw)).problem is DataProblem.BARE_NEWLINE


async def test_read_data_over_long_line_tail_is_not_a_terminator() -> None:
    # the ".\r\n" below ends an over-long line: it must not end the data
    r = await feed(b"x" * 5000 + b".\r\n" + b"still data\r\n.\r\n", limit=1024)
    assert r.problem is DataProblem.LINE_TOO_LONG
    assert r.size == 5000 + 3 + 12 + 3  # read up to the real terminator, no further


async def test_read_data_too_big_and_eof() -> None:
    assert (await feed(b"y" * 80 + b"\r\n" * 1 + (b"z" * 80 + b"\r\n") * 200 + b".\r\n", max_size=1000)).problem \
        is DataProblem.TOO_BIG
    with pytest.raises(asyncio.IncompleteReadError):
        await feed(b"no terminator\r\n")


def test_xclient_parse() -> None:
    req = xclient.parse_xclient("ADDR=IPV6:2001:DB8::1 NAME=[UNAVAILABLE] HELO=mx+2Eexample.org PROTO=esmtp")
    assert (req.addr, req.name, req.helo, req.proto) == ("2001:db8::1", None, "mx.example.org", "ESMTP")
    for bad in ("", "LOGIN=x", "ADDR=nope", "PORT=99999", "NAME=a b", "ADDR"):
        with pytest.raises(xclient.XclientError):
            xclient.parse_xclient(bad)


def test_split_path() -> None:
    assert split_path("FROM:<a@b.example> SIZE=1 BODY=8BITMIME", "FROM:") == ("<a@b.example>", ["SIZE=1",
                                                                                              "BODY=8BITMIME"])
    assert split_path("from: <a@b.example>", "FROM:") == ("<a@b.example>", [])
    assert split_path('TO:<"x>y"@b.example>', "TO:") == ('<"x>y"@b.example>', [])
    assert split_path("TO:<a@b.example>X", "TO:") is None
    assert split_path("TO <a@b.example>", "TO:") is None


def test_rewrite() -> None:
    raw = b"Subject: hi\r\nX-Mailbastion-Junk: no\r\n\tmore\r\nTo: a\r\n\r\nX-Mailbastion-Junk: body\r\n"
    clean, n = rewrite.strip_internal(raw)
    assert n == 1 and clean == b"Subject: hi\r\nTo: a\r\n\r\nX-Mailbastion-Junk: body\r\n"
    out = rewrite.apply_edits(clean, [Edit.subject_tag("[S]"), Edit.subject_tag("[S]"), Edit.remove("to"),
                                      Edit.prepend("X-A", "1")], prepend=[("Received", "from x\nby y")])
    assert out == b"Received: from x\r\n\tby y\r\nX-A: 1\r\nSubject: [S] hi\r\n\r\nX-Mailbastion-Junk: body\r\n"


def test_received_header() -> None:
    peer = PeerInfo(ip="2001:db8::1", helo="mx.example.org", tls=TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", 256))
    env = Envelope(None, recipients=(parse_address("a@example.net"),))
    value = received.received_header(peer, env, by="gw.example.net", trace_id="abc", when=0)
    assert value.startswith("from mx.example.org (unknown [IPv6:2001:db8::1])")
    assert "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))" in value
    assert "with ESMTPS id abc" in value and "for <a@example.net>;" in value
    assert received.count_received(b"Received: a\r\nreceived : b\r\nX-Received: c\r\n") == 2


def test_gate_and_networks() -> None:
    gate = ConnectionGate(3, 2)
    assert gate.admit("a") and gate.admit("a") and not gate.admit("a")
    assert gate.admit("a", exempt=True) and not gate.admit("b")
    gate.release("a")
    assert gate.admit("b")
    nets = NetworkList(["10.0.0.0/8", "::1"])
    assert "10.9.9.9" in nets and "::1" in nets and "::ffff:10.0.0.1" in nets and "11.0.0.1" not in nets
    assert "garbage" not in nets and not NetworkList([])


def test_public_surface() -> None:
    assert handler.__all__ == ["StageHandler"]
    assert "read_data" in data.__all__ and "SmtpEdgeProtocol" in commands.__all__


@pytest.mark.parametrize("raw", [
    b"From someone Sat Nov 28\r\nX-Mailbastion-Junk: no\r\nSubject: a\r\n\r\nbody\r\n",  # mbox line first
    b"Subject: a\r\ngarbage line\r\nX-Mailbastion-Junk: no\r\n\r\nbody\r\n",  # a non-field line before it
    b"Subject: a\r\nX-Mailbastion-Junk : no\r\n\r\nbody\r\n",  # space before the colon
    b"Subject: a\r\nX-MAILBASTION-JUNK:no\r\n\r\nbody\r\n",
    b"X-Mailbastion-Junk no colon\r\nSubject: a\r\n\r\nbody\r\n",
])
def test_internal_header_cannot_hide(raw: bytes) -> None:
    import email
    import email.policy

    clean, n = rewrite.strip_internal(raw)
    assert n == 1
    parsed = email.message_from_bytes(clean, policy=email.policy.default)
    assert not [k for k in parsed if k.lower().startswith("x-mailbastion")]
    assert clean.endswith(b"\r\n\r\nbody\r\n")


def test_rewrite_message_without_blank_line() -> None:
    assert rewrite.strip_internal(b"X-Mailbastion-Junk: yes\r\n") == (b"", 1)
    assert rewrite.apply_edits(b"\r\nbody\r\n", [], prepend=[("Received", "x")]) == b"Received: x\r\n\r\nbody\r\n"
