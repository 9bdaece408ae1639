"""No header section makes the sender-authentication code raise (issue 8, item 4), fuzzed with Hypothesis.

Covers every reader of the header section in auth/ and in the checks beside it: the From analysis,
the header counts, the Authentication-Results claims, DKIM and ARC verification (through dkimpy, with
the loopback DNS server answering), and the input DKIM signing gives dkimpy.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import dkim
import pytest
from authkit import ed_key, message, rsa_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbastion.auth.dkim_verify import DkimVerifier, verifiable_message
from mailbastion.auth.from_header import REFUSING, analyze_from
from mailbastion.core.header_block import HeaderBlock
from mailbastion.core.message import SpooledMessage
from mailbastion.dns.resolver import DnsResolver
from mailbastion.policy.checks.auth_results import claimed_authserv_ids
from mailbastion.policy.checks.headers import header_counts
from mailbastion.testing.dns_server import DnsTestServer

_PIECES = [
    b"From: a@example.org", b"From: \"x\" <a@example.org>", b"from : b@evil.test", b" From: c@victim.test",
    b" cont", b"\tcont", b"", b"X: \x00", b"Subject:", b":", b"From a@b", b"\r", b"\xff\xfe: v",
    b"Sender: s@other.test", b"Authentication-Results: mx.ours.test; spf=pass", b" Authentication-Results: mx",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AA==; b=AA==",
    b"DKIM-Signature: l=5; d=; s=", b"ARC-Seal: i=1; a=rsa-sha256; d=example.org; s=sel; cv=none; b=AA==",
    b"ARC-Message-Signature: i=1; d=example.org; s=sel; h=from; bh=AA==; b=AA==",
    b"ARC-Authentication-Results: i=1; mx; dmarc=pass", b"From: =?utf-8?q?a=40b?= <c@d.test>",
    b"From: )", b"From: a) <b@c.test>", b"From: (a (b (c", b"From: \\", b"From: <a@b.test>)",  # ")" once looped
]
LINES = st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(_PIECES)), max_size=12)
EOLS = st.sampled_from([b"\r\n", b"\n"])


def _raw(lines: list[bytes], eol: bytes, body: bytes) -> bytes:
    return eol.join(lines) + eol + eol + body


@settings(max_examples=500, deadline=None)
@given(LINES, EOLS)
def test_from_analysis_never_raises(lines: list[bytes], eol: bytes) -> None:
    block = HeaderBlock.parse(eol.join(lines))
    analysis = analyze_from(block)
    assert analysis == analyze_from(block.header_bytes)  # bytes and the parsed block read alike
    if analysis.domain is not None:
        assert block.count("from") == 1
    assert analysis.refuse == any(s.name in REFUSING for s in analysis.symbols)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_from_analysis_of_arbitrary_bytes(raw: bytes) -> None:
    analyze_from(raw)


@settings(max_examples=400, deadline=None)
@given(LINES, EOLS, st.binary(max_size=20))
def test_counts_and_auth_results_claims_never_raise(lines: list[bytes], eol: bytes, body: bytes) -> None:
    msg = SpooledMessage(_raw(lines, eol, body))
    counts = header_counts(msg.header)
    assert counts == header_counts(msg.header_block)
    assert sum(counts.values()) == sum(1 for f in msg.header.fields if f.name)
    claims = claimed_authserv_ids(msg)
    assert len(claims) >= msg.header.count("authentication-results")


@settings(max_examples=400, deadline=None)
@given(LINES, EOLS, st.binary(max_size=30))
def test_dkimpy_reads_every_verifiable_message(lines: list[bytes], eol: bytes, body: bytes) -> None:
    raw = _raw(lines, eol, body)
    ready = verifiable_message(raw)
    headers, _ = dkim.rfc822_parse(ready)  # raised IndexError / MessageFormatError on the raw input
    assert [n.lower() for n, _v in headers] == [f.name.encode() for f in HeaderBlock.parse(raw).fields if f.name]


# -- verification end to end, against the loopback DNS server -------------------------------------------

_KEY = ed_key("example.org", "sel")
_SIGNED = _KEY.sign(message())
_SIGNED_HEAD, _, _SIGNED_BODY = _SIGNED.partition(b"\r\n\r\n")
_SEALER = rsa_key("sealer.test", "arc")
_SEALED = _SEALER.arc_seal(b"Authentication-Results: sealer.test; dkim=pass header.d=example.org; "
                           b"dmarc=pass header.from=example.org\r\n" + _SIGNED, "sealer.test")


@pytest.fixture(scope="module")
def verifier() -> Iterator[DkimVerifier]:
    server = DnsTestServer().start()
    server.add("sel._domainkey.example.org", "TXT", _KEY.record)
    server.add("arc._domainkey.sealer.test", "TXT", _SEALER.record)
    try:
        yield DkimVerifier(DnsResolver([server.host], port=server.port, timeout=0.5), timeout=2.0)
    finally:
        threading.Thread(target=server.stop, daemon=True).start()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(LINES, EOLS, st.binary(max_size=30))
def test_dkim_and_arc_verification_never_raise(verifier: DkimVerifier, lines: list[bytes], eol: bytes,
                                               body: bytes) -> None:
    raw = _raw(lines, eol, body)

    async def both() -> None:
        results = await verifier.verify(raw)
        assert all(s.result in ("pass", "fail", "neutral", "policy", "temperror", "permerror")
                   for s in results.signatures)
        arc = await verifier.verify_arc(raw)
        assert arc.cv in ("pass", "fail", "none", "temperror")

    asyncio.run(both())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.binary(max_size=30), st.sampled_from([b" orphan", b"\tfolded", b"no colon"])),
                min_size=1, max_size=4),
       st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=4))
def test_genuine_signature_with_inserted_lines(verifier: DkimVerifier, extra: list[bytes],
                                               where: list[int]) -> None:
    """Lines inserted anywhere in a signed header section: never an exception; and malformed lines
    put before the first field (the shape of item 4) never break a genuine signature."""
    fields = _SIGNED_HEAD.split(b"\r\n")
    for line, at in zip(extra, where, strict=False):
        fields.insert(min(at, len(fields)), line.replace(b"\n", b"").replace(b"\r", b""))
    asyncio.run(verifier.verify(b"\r\n".join(fields) + b"\r\n\r\n" + _SIGNED_BODY))
    orphans = [b" " + line.replace(b"\n", b"").replace(b"\r", b"") for line in extra]
    shaped = b"\r\n".join(orphans) + b"\r\n" + _SIGNED
    results = asyncio.run(verifier.verify(shaped))
    assert [s.result for s in results.signatures] == ["pass"]


_TAG_NAMES = st.sampled_from([b"v", b"a", b"b", b"bh", b"c", b"d", b"h", b"i", b"l", b"q", b"s", b"t", b"x", b"z",
                              b"cv", b"arc"])
_TAG_VALUES = st.one_of(st.sampled_from([b"", b"0", b"-1", b"99999999999999999999999999999", b"relaxed/",
                                         b"rsa-sha256", b"ed25519-sha256", b":", b"from:from", b"pass", b"=",
                                         b"sel", b"example.org", b"AA==", b"\xff"]),
                        st.binary(max_size=12).filter(lambda v: b";" not in v and b"\n" not in v))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([b"DKIM-Signature:", b"ARC-Seal:", b"ARC-Message-Signature:"]),
       st.lists(st.tuples(_TAG_NAMES, _TAG_VALUES), min_size=1, max_size=3))
def test_mutated_signature_tags_never_raise(verifier: DkimVerifier, field: bytes,
                                            tags: list[tuple[bytes, bytes]]) -> None:
    """A genuine signature and seal with tags added or repeated: every outcome is a result value."""
    extra = b"".join(b" " + k + b"=" + v + b";" for k, v in tags)
    raw = _SEALED.replace(field, field + extra, 1)

    async def both() -> None:
        results = await verifier.verify(raw)
        assert all(s.result in ("pass", "fail", "neutral", "policy", "temperror", "permerror")
                   for s in results.signatures)
        assert (await verifier.verify_arc(raw)).cv in ("pass", "fail", "none", "temperror")

    asyncio.run(both())


def test_the_unmutated_sample_passes(verifier: DkimVerifier) -> None:
    # So the mutations above start from a signature and a seal that reach dkimpy's deepest paths.
    assert [s.result for s in asyncio.run(verifier.verify(_SEALED)).signatures] == ["pass"]
    assert asyncio.run(verifier.verify_arc(_SEALED)).cv == "pass"


def test_empty_length_tag_is_a_permerror(verifier: DkimVerifier) -> None:
    raw = _SIGNED.replace(b"DKIM-Signature: v=1;", b"DKIM-Signature: v=1; l=;", 1)
    [sig] = asyncio.run(verifier.verify(raw)).signatures
    assert sig.result == "permerror" and "malformed" in sig.reason
