"""Unit tests of the engine's pure parts (input buffer, content checks, argument parsing, XCLIENT, PROXY,
SASL) and of the gateway's header rewrite and Received field."""

from __future__ import annotations

import base64
import struct
from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.core.peer import PeerInfo, TlsInfo
from mailbastion.core.replies import Reply
from mailbastion.core.verdict import Edit
from mailbastion.gateway import received, rewrite
from mailbastion.smtp import commands, data, handler, xclient
from mailbastion.smtp.commands import MailRequest, parse_bdat, parse_mail, parse_rcpt, split_path, xtext_decode
from mailbastion.smtp.data import DataProblem, check_content, line_ends_are_crlf, unstuff
from mailbastion.smtp.limits import ConnectionGate, NetworkList
from mailbastion.smtp.proxy import ProxyError, parse_proxy
from mailbastion.smtp.reader import InputBuffer
from mailbastion.smtp.sasl import Credentials, decode_plain, read_credentials


def read_all(raw: bytes, *, limit: int = 10_000) -> tuple[bytes | None, int] | None:
    """Feed `raw` in small pieces, as a network would, and take the DATA section."""
    buf = InputBuffer(600)
    ready = buf.start_data(limit)
    for i in range(0, len(raw), 7):
        ready = buf.feed(raw[i:i + 7]) or ready
    return buf.take_data() if ready else None


def test_data_terminator_only_at_crlf_dot_crlf() -> None:
    assert read_all(b"a\r\n..b\r\n.\r\nNEXT\r\n") == (b"a\r\n..b\r\n", 11)
    assert read_all(b".\r\n") == (b"", 3)  # an empty message
    assert read_all(b"\r\n.\r\n") == (b"\r\n", 5)
    for fake in (b"a\n.\nb", b"a\r.\rb", b"a\r\n.\nb", b"x" * 50 + b".\r\n"):
        assert read_all(fake + b"\r\n") is None  # not an end of data: still waiting
    assert read_all(b"a\n.\nb\r\n.\r\n") == (b"a\n.\nb\r\n", 10)


def test_data_over_the_limit_is_dropped_but_read_to_its_end() -> None:
    got = read_all(b"y" * 5000 + b"\r\n.\r\n", limit=1000)
    assert got is not None and got[0] is None and got[1] == 5005


@pytest.mark.parametrize(("raw", "problem"), [
    (b"a\n.\nb\r\n", DataProblem.BARE_NEWLINE), (b"a\r.\rb\r\n", DataProblem.BARE_NEWLINE),
    (b"a\rb\r\n", DataProblem.BARE_NEWLINE), (b"a\x00b\r\n", DataProblem.NUL),
    (b"x" * 999 + b"\r\n", DataProblem.LINE_TOO_LONG), (b"ok\r\n" + b"x" * 998 + b"\r\n", None),
])
def test_check_content(raw: bytes, problem: DataProblem | None) -> None:
    assert check_content(raw, max_line=1000) is problem


def test_long_line_found_in_a_big_message() -> None:
    line = b"x" * 70 + b"\r\n"
    big = line * 40_000  # ~2.9 MB: checked window by window
    assert check_content(big, max_line=1000) is None
    assert check_content(big + b"y" * 1500 + b"\r\n" + big, max_line=1000) is DataProblem.LINE_TOO_LONG
    assert check_content(b"z" * 3_000_000 + b"\r\n", max_line=1000) is DataProblem.LINE_TOO_LONG


def test_unstuff() -> None:
    assert unstuff(b"..a\r\nb\r\n...\r\n.c\r\n") == b".a\r\nb\r\n..\r\nc\r\n"


def test_input_buffer_lines_and_overflow() -> None:
    buf = InputBuffer(20)
    assert not buf.start_line() and not buf.feed(b"NOOP\r") and buf.feed(b"\nRSET\r\nQU")
    assert (buf.take_line(), buf.take_line(), buf.take_line()) == (b"NOOP", b"RSET", None)
    buf.feed(b"x" * 30)
    assert buf.line_overflow
    assert not buf.start_discard() and not buf.feed(b"yyy\r") and buf.feed(b"\nNOOP\r\n")
    assert buf.take_line() == b"NOOP"


def test_input_buffer_bytes_and_skip() -> None:
    buf = InputBuffer(100)
    buf.feed(b"abc")
    assert not buf.start_bytes(5) and buf.feed(b"defg")
    assert buf.take_bytes(5) == b"abcde" and bytes(buf.buf) == b"fg"
    assert not buf.start_skip(10) and not buf.feed(b"12345") and buf.feed(b"678NOOP\r\n")
    assert buf.take_line() == b"NOOP"


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


def test_arguments() -> None:
    allowed = frozenset({"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "REQUIRETLS"})
    got = parse_mail("FROM:<a@b.example> RET=HDRS ENVID=QQ+2B1 BODY=8BITMIME SIZE=10", allowed=allowed, max_size=100)
    assert isinstance(got, MailRequest)
    assert (got.ret, got.envid, got.body_8bitmime, got.size) == ("HDRS", "QQ+1", True, 10)
    assert parse_mail("FROM:<a@b.example> REQUIRETLS", allowed=allowed, max_size=100).requiretls  # type: ignore[union-attr]
    assert parse_mail("FROM:<a@b.example> REQUIRETLS", allowed=frozenset({"SIZE"}), max_size=100).code == 555  # type: ignore[union-attr]
    assert parse_mail("FROM:<a@b.example> SIZE=²", allowed=allowed, max_size=100).code == 501  # type: ignore[union-attr]
    assert parse_mail("FROM:<a@b.example> ENVID=a=b", allowed=allowed, max_size=100).code == 501  # type: ignore[union-attr]
    assert parse_mail("FROM:<a@b.example> SIZE=1 SIZE=2", allowed=allowed, max_size=100).code == 501  # type: ignore[union-attr]
    rcpt = parse_rcpt("TO:<c@d.example> NOTIFY=success,Failure ORCPT=rfc822;c+40d.example", smtputf8=False, dsn=True)
    assert not isinstance(rcpt, Reply)
    assert (str(rcpt[0]), rcpt[1].notify, rcpt[1].orcpt) == ("c@d.example", ("SUCCESS", "FAILURE"), "rfc822;c@d.example")
    for bad in ("TO:<c@d.example> NOTIFY=NEVER,DELAY", "TO:<c@d.example> ORCPT=c@d.example", "TO:<c@d.example> NOTIFY="):
        assert isinstance(parse_rcpt(bad, smtputf8=False, dsn=True), Reply), bad
    assert parse_rcpt("TO:<c@d.example> NOTIFY=NEVER", smtputf8=False, dsn=False).code == 555  # type: ignore[union-attr]
    postmaster = parse_rcpt("TO:<PostMaster>", smtputf8=False, dsn=True)
    assert not isinstance(postmaster, Reply) and postmaster[0].is_bare_postmaster
    assert (parse_bdat("10"), parse_bdat("0 last"), parse_bdat("x"), parse_bdat("1 FIRST")) == ((10, False), (0, True), None, None)
    assert xtext_decode("a+2Bb") == "a+b"
    with pytest.raises(ValueError):
        xtext_decode("a+2bb")


def test_proxy_parser() -> None:
    assert parse_proxy(b"PROXY TCP4 198.51.100.9 192.0.2.1 40000 25\r\nEHLO") == \
        parse_proxy(b"PROXY TCP4 198.51.100.9 192.0.2.1 40000 25\r\n")
    header = parse_proxy(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 25\r\n")
    assert header is not None and (header.source, header.source_port, header.consumed) == ("2001:db8::1", 1, 41)
    assert parse_proxy(b"PROXY UNKNOWN whatever\r\n").source is None  # type: ignore[union-attr]
    assert parse_proxy(b"PRO") is None and parse_proxy(b"PROXY TCP4 1.2") is None and parse_proxy(b"") is None
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    body = ip_address("203.0.113.5").packed + ip_address("192.0.2.1").packed + struct.pack("!HH", 4000, 25)
    v2 = sig + bytes([0x21, 0x11]) + struct.pack("!H", len(body) + 3) + body + b"\x00\x00\x00"
    got = parse_proxy(v2 + b"EHLO")
    assert got is not None and (got.source, got.source_port, got.consumed) == ("203.0.113.5", 4000, len(v2))
    assert parse_proxy(v2[:20]) is None and parse_proxy(sig[:5]) is None
    local = parse_proxy(sig + bytes([0x20, 0x00, 0, 0]))
    assert local is not None and local.source is None
    for bad in (b"EHLO x\r\n", b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", b"PROXY " + b"x" * 200, b"PROXY TCP5 a b 1 2\r\n",
                sig + bytes([0x31, 0x11, 0, 12]) + body, sig + bytes([0x21, 0x11, 0, 4]) + body[:4],
                sig + bytes([0x21, 0x12, 0, 12]) + body, b"\r\n\r\nX"):
        with pytest.raises(ProxyError):
            parse_proxy(bad)


async def test_sasl_decoding() -> None:
    responses: list[bytes | None] = []

    async def prompt(challenge: bytes) -> bytes | None:
        return responses.pop(0)

    plain = base64.b64encode(b"\x00alice@example.org\x00s3cret").decode()
    got = await read_credentials(f"PLAIN {plain}", ("PLAIN", "LOGIN"), prompt)
    assert got == Credentials("PLAIN", "", "alice@example.org", "s3cret")
    assert "s3cret" not in repr(got)
    responses[:] = [base64.b64encode(b"bob"), base64.b64encode(b"pw")]
    assert await read_credentials("login", ("PLAIN", "LOGIN"), prompt) == Credentials("LOGIN", "", "bob", "pw")
    responses[:] = [b"*"]
    assert (await read_credentials("PLAIN", ("PLAIN",), prompt)).code == 501  # type: ignore[union-attr]
    assert (await read_credentials("PLAIN !!!", ("PLAIN",), prompt)).code == 501  # type: ignore[union-attr]
    assert (await read_credentials("CRAM-MD5", ("PLAIN",), prompt)).code == 504  # type: ignore[union-attr]
    responses[:] = [None]
    assert await read_credentials("LOGIN", ("LOGIN",), prompt) is None
    with pytest.raises(ValueError):
        decode_plain(b"only\x00two")


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
    assert handler.__all__ == ["BaseHandler", "LmtpStageHandler", "SessionHandler", "StageHandler"]
    assert "check_content" in data.__all__ and "parse_mail" in commands.__all__


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


_LINE_BYTES = st.lists(st.sampled_from([b"\r\n", b"\n", b"\r", b"a", b"\x00", b".", b"\r\r\n", b"\r\n\n"]),
                       max_size=30).map(b"".join)


@settings(max_examples=1500, deadline=None)
@given(_LINE_BYTES)
def test_bare_line_ends_are_found_as_by_counting_each(raw: bytes) -> None:
    """check_content counts CRs and LFs in one pass; its answer is that of counting each apart."""
    crlf = raw.count(b"\r\n")
    expected = (DataProblem.NUL if b"\x00" in raw
                else DataProblem.BARE_NEWLINE if crlf != raw.count(b"\n") or crlf != raw.count(b"\r") else None)
    assert check_content(raw, max_line=1000) is expected


@pytest.mark.parametrize("lines", [100, 40_000])  # ~7 KB, counted in one pass; ~2.9 MB, counted in place
@pytest.mark.parametrize("bad", [b"", b"\n", b"\r", b"\r\r\n", b"\r\n\n"])
def test_line_ends_on_both_sides_of_the_one_pass_size(lines: int, bad: bytes) -> None:
    line = b"x" * 70 + b"\r\n"
    raw = line * (lines // 2) + b"y" + bad + b"\r\n" + line * (lines // 2)
    assert line_ends_are_crlf(raw) is (bad == b"")
    assert check_content(raw, max_line=1000) is (None if bad == b"" else DataProblem.BARE_NEWLINE)


def test_the_header_section_is_measured_to_the_crlf_before_the_empty_line() -> None:
    def message(header_octets: int) -> bytes:
        line = b"X: " + b"a" * (header_octets - 5) + b"\r\n"  # the whole section: this one field
        return line + b"\r\n" + b"body\r\n" * 1000

    assert check_content(message(100), max_line=1000, max_header=100) is None
    assert check_content(message(101), max_line=1000, max_header=100) is DataProblem.HEADER_TOO_BIG
    assert check_content(b"X: y\r\n" * 40, max_line=1000, max_header=100) is DataProblem.HEADER_TOO_BIG  # no body
    assert check_content(b"\r\n" + b"body\r\n" * 100, max_line=1000, max_header=100) is None  # no header at all
    assert check_content(message(101), max_line=1000) is None  # no limit given
