"""`auth/dkim_fast` computes exactly what dkimpy computes: canonicalization, message split, verification results.

Each faster piece is held byte for byte equal to dkimpy's own function on generated inputs (Hypothesis)
and on real messages (the anchors' corpus and the shared corpora, when present on this machine), and the
verification results (True/False or the exception, type and text) equal dkimpy's `DKIM` / `arc_verify`.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import dkim
import pytest
from authkit import SigningKey, ed_key, message, rsa_key
from dkim.canonicalization import Relaxed, Simple
from dkim.crypto import RSASSA_PKCS1_v1_5_verify
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbastion.auth.dkim_fast import (
    DKIMPY_VERSION,
    ArcMessage,
    DkimMessage,
    _rsa_verify,
    arc_verify,
    canonical_body,
    canonical_headers,
    parsed_key,
    relaxed_body,
    relaxed_headers,
    split_message,
)
from mailbastion.auth.dkim_verify import _may_have_arc, verifiable_message
from mailbastion.core.header_block import HeaderBlock

REPO = Path(__file__).resolve().parents[2]
# The anchors' corpus, made by bench/message_path.py in this checkout (absent in a clean clone), and the shared
# corpora beside the checkout (or $MAILBASTION_CORPORA), as tests/spam/test_spam_corpora.py finds them.
ANCHOR_CORPUS = REPO / "bench" / ".work" / "anchor" / "corpus"
SHARED_CORPORA = Path(os.environ.get("MAILBASTION_CORPORA") or REPO.parent / "shared" / "corpora")


def test_the_installed_dkimpy_is_the_one_mirrored() -> None:
    """dkim_fast mirrors dkimpy 1.1.8's rfc822_parse, Relaxed.canonicalize_body and verify_sig_process:
    another release must be read again (and this file's tests run) before DKIMPY_VERSION moves."""
    assert importlib.metadata.version("dkimpy") == DKIMPY_VERSION


# -- generated inputs ----------------------------------------------------------------------------------

_BODY_PIECES = [b" ", b"  ", b"\t", b" \t", b"\t ", b"\r\n", b"\n", b"\r", b"\r\r\n", b"a", b"xy z", b"\xe9\xff",
                b"\x00", b"\x0b", b"\x0c", b"\xa0", b" \r\n", b"\t\r\n", b"\r\n\r\n", b"=20\r\n", b"-- \r\n"]
BODIES = st.one_of(
    st.lists(st.sampled_from(_BODY_PIECES), max_size=40).map(b"".join),
    st.binary(max_size=200),
    st.lists(st.sampled_from([b" ", b"\t", b"\r\n", b"a"]), max_size=200).map(b"".join),
)
_HEADER_LINES = [b"From: a@example.org", b"Subject: hi  there ", b" folded", b"\tfolded\t", b"From a@b 2026",
                 b"X-Empty:", b"::x", b"a:b:c", b"DKIM-Signature: v=1; a=rsa-sha256;", b"bad line", b" ",
                 b"\xff: v", b"\r", b"N\x7f: v", b"To:\x00x"]
EOLS = st.sampled_from([b"\r\n", b"\n", b"\r"])


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.one_of(st.sampled_from(_HEADER_LINES), st.binary(max_size=12)), max_size=8))
    out = b"".join(line + draw(EOLS) for line in lines)
    if draw(st.booleans()):
        out += draw(st.sampled_from([b"\r\n", b"\n", b""]))  # the empty line, or none
    return out + draw(BODIES)


@settings(max_examples=1000, deadline=None)
@given(BODIES)
def test_relaxed_body_is_dkimpys(body: bytes) -> None:
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)
    assert canonical_body(Simple, body) == Simple.canonicalize_body(body)


_VALUES = st.lists(st.sampled_from(_BODY_PIECES + [b"\r\n ", b"\n\t", b"\r\r\n", b"\n\r"]), max_size=12).map(b"".join)
_NAMES = st.sampled_from([b"From", b"SUBJECT ", b"x-a\t", b"Dkim-Signature", b"\xc9t\xe9"])


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(_NAMES, st.one_of(_VALUES, st.binary(max_size=60))), max_size=5))
def test_relaxed_headers_are_dkimpys(pairs: list[tuple[bytes, bytes]]) -> None:
    headers = [[n, v] for n, v in pairs]  # rfc822_parse's shape: [name, value] lists
    assert relaxed_headers(headers) == Relaxed.canonicalize_headers(headers)
    assert canonical_headers(Simple, headers) is headers  # simple: dkimpy's own (it keeps the list)


def _outcome(fn: Callable[[], object]) -> object:
    """A function's value, or its exception as (type, text): two outcomes compare equal or not."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the exception is the outcome compared
        return (type(exc), str(exc))


@settings(max_examples=600, deadline=None)
@given(messages())
def test_split_is_rfc822_parse(raw: bytes) -> None:
    assert _outcome(lambda: split_message(raw)) == _outcome(lambda: dkim.rfc822_parse(raw))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_split_of_arbitrary_bytes_is_rfc822_parse(raw: bytes) -> None:
    assert _outcome(lambda: split_message(raw)) == _outcome(lambda: dkim.rfc822_parse(raw))


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=1, max_value=2**2100), st.integers(min_value=1, max_value=2**17 + 1),
       st.binary(max_size=300), st.sampled_from(["sha1", "sha256"]))
def test_rsa_verify_is_dkimpys(modulus: int, exponent: int, signature: bytes, name: str) -> None:
    """Any modulus (too small for the digest too), any signature length; genuine ones are verified below."""
    pk, h = {"modulus": modulus, "publicExponent": exponent}, hashlib.new(name, signature)
    ours = _outcome(lambda: _rsa_verify(h, signature, pk))
    assert ours == _outcome(lambda: RSASSA_PKCS1_v1_5_verify(h, signature, pk))


# -- real messages ---------------------------------------------------------------------------------------

def _real_messages(shared_every: int) -> Iterator[tuple[str, bytes]]:
    """Every 4th message of the anchors' corpus, and every `shared_every`-th of the shared corpora."""
    for root, every in ((ANCHOR_CORPUS, 4), (SHARED_CORPORA, shared_every)):
        if root.is_dir():
            found = [p for p in sorted(root.rglob("*")) if p.is_file() and p.name != "index"
                     and p.suffix not in (".json", ".conf", ".key", ".md", ".sha256")]
            for path in found[::every]:
                yield str(path), path.read_bytes()


def test_real_messages_split_and_canonicalize_as_dkimpy_does() -> None:
    """Every 4th of the anchors' 2,000 and one in 20 of the shared corpora's 13,432 (all of them: checked once,
    by hand, 0 differences)."""
    if not ANCHOR_CORPUS.is_dir() and not SHARED_CORPORA.is_dir():
        pytest.skip(f"neither {ANCHOR_CORPUS} nor {SHARED_CORPORA} is on this machine")
    seen = 0
    for name, raw in _real_messages(20):
        for ready in {raw, verifiable_message(raw)}:
            ours, theirs = _outcome(lambda: split_message(ready)), _outcome(lambda: dkim.rfc822_parse(ready))
            assert ours == theirs, name
            if isinstance(theirs, tuple) and isinstance(theirs[1], bytes):
                headers, body = theirs
                assert relaxed_body(body) == Relaxed.canonicalize_body(body), name
                assert relaxed_headers(headers) == Relaxed.canonicalize_headers(headers), name
        seen += 1
    assert seen >= 300


# -- verification results ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    found = {d: rsa_key(d, "s", bits=1024) for d in ("one.test", "two.test")}
    found["ed.test"] = ed_key("ed.test", "s")  # dkimpy's own path after the body hash
    return found


def _dns(keys: dict[str, SigningKey]) -> Callable[..., bytes | None]:
    records = {f"s._domainkey.{k.domain}.".encode(): k.record.encode() for k in keys.values()}
    return lambda name, timeout=5: records.get(name)


def _sign(key: SigningKey, raw: bytes, c: tuple[bytes, bytes], *, length: bool = False,
          algorithm: bytes = b"rsa-sha256", include: list[bytes] | None = None) -> bytes:
    algorithm = key.algorithm if key.algorithm.startswith(b"ed25519") else algorithm
    return dkim.sign(raw, b"s", key.domain.encode(), key.private, canonicalize=c, length=length,
                     signature_algorithm=algorithm, include_headers=include) + raw


def _results(cls: type, raw: bytes, dnsfunc: Callable[..., bytes | None], minkey: int = 1024) -> list[object]:
    d = cls(raw, minkey=minkey)
    count = sum(1 for n, _ in d.headers if n.lower() == b"dkim-signature")
    out: list[object] = []
    for i in range(count):
        d.pk = None
        out.append(_outcome(lambda i=i: (d.verify(idx=i, dnsfunc=dnsfunc), d.keysize)))  # type: ignore[misc]
    return out


_CANON = st.sampled_from([(b"relaxed", b"relaxed"), (b"relaxed", b"simple"), (b"simple", b"simple"),
                          (b"simple", b"relaxed")])
_TAIL = st.sampled_from([b"", b"appended  \t line\r\n", b"\r\n\r\n", b" ", b"x"])
_ADDED = st.sampled_from([b"", b"From: other@two.test\r\n", b"Subject: another\r\n", b"X-Added:  a \t b\r\n"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(BODIES, st.lists(st.tuples(_CANON, st.booleans(), st.sampled_from([b"rsa-sha256", b"rsa-sha1"]),
                                  st.sampled_from([None, [b"from", b"subject"]])), min_size=1, max_size=3),
       _TAIL, _ADDED,
       st.sampled_from([None, b"l=", b"l=x", b"bh=", b"bh=!!", b"c=odd", b"a=rsa-md5", b"b="]))
def test_verification_results_are_dkimpys(keys: dict[str, SigningKey], body: bytes,
                                          sigs: list[tuple[tuple[bytes, bytes], bool, bytes, list[bytes] | None]],
                                          tail: bytes,
                                          added: bytes, broken: bytes | None) -> None:
    """Several signatures over one body (the caches shared), tampered with after signing or not."""
    raw = message("A <a@one.test>", body=body.decode("latin-1"))
    for n, (c, length, algorithm, include) in enumerate(sigs):  # include=None: dkimpy's default, From oversigned
        raw = _sign(keys[("one.test", "two.test", "ed.test")[n]], raw, c, length=length, algorithm=algorithm,
                    include=include)
    raw = added + raw + tail  # a field added above the signatures (a second From: dkimpy hashes both)
    if broken is not None:  # spoil the topmost signature's tag: dkimpy's own exception must come out
        tag = broken.partition(b"=")[0] + b"="
        head, sep, rest = raw.partition(b"; " + tag)
        if sep:
            raw = head + b"; " + broken + b"Z" + rest
    dnsfunc = _dns(keys)
    assert _results(DkimMessage, raw, dnsfunc) == _results(dkim.DKIM, raw, dnsfunc)
    assert _results(DkimMessage, raw, dnsfunc, 2048) == _results(dkim.DKIM, raw, dnsfunc, 2048)  # key too small


def test_a_shared_body_hash_is_computed_once_per_canonicalization_hash_and_length(
        keys: dict[str, SigningKey]) -> None:
    raw = message("A <a@one.test>", body="Hello  \t there \r\n\r\n")
    raw = _sign(keys["one.test"], raw, (b"relaxed", b"relaxed"))
    raw = _sign(keys["two.test"], raw, (b"simple", b"relaxed"))
    raw = _sign(keys["one.test"], raw, (b"relaxed", b"relaxed"), length=True)
    raw += b"appended\r\n"  # past the l= of the topmost signature only
    d = DkimMessage(raw)
    outcomes = [_outcome(lambda i=i: d.verify(idx=i, dnsfunc=_dns(keys))) for i in range(3)]  # type: ignore[misc]
    kinds = [o if o is True else o[0] for o in outcomes]  # type: ignore[index]
    assert kinds == [True, dkim.ValidationError, dkim.ValidationError]
    assert outcomes == [_outcome(lambda i=i: dkim.DKIM(raw).verify(idx=i, dnsfunc=_dns(keys)))  # type: ignore[misc]
                        for i in range(3)]
    assert len(d._digests) == 2  # (relaxed, sha256, l=) and (relaxed, sha256, none): the last two share one
    assert set(d._canonical) == {Relaxed}
    assert set(d._canonical_headers) == {Relaxed}  # the two others failed on the body first


def test_arc_results_are_dkimpys(keys: dict[str, SigningKey]) -> None:
    dnsfunc = _dns(keys)
    raw = b"Authentication-Results: mx.one.test; dkim=pass header.d=one.test\r\n" + \
        _sign(keys["one.test"], message("A <a@one.test>", body="Hi  there\t\r\n\r\n"), (b"relaxed", b"relaxed"))
    sealed = b"".join(dkim.arc_sign(raw, b"s", b"one.test", keys["one.test"].private, b"mx.one.test")) + raw
    raw2 = b"Authentication-Results: mx.two.test; arc=pass\r\n" + sealed
    twice = b"".join(dkim.arc_sign(raw2, b"s", b"two.test", keys["two.test"].private, b"mx.two.test")) + raw2
    cases = [sealed, twice, sealed + b"tampered\r\n", twice.replace(b"Hi  there", b"Hi there!"),
             twice.replace(base64.b64encode(b"x")[:2], b"!!", 1), b"From: a@one.test\r\n\r\nno chain\r\n"]
    outcomes = [arc_verify(m, dnsfunc=dnsfunc)[::2] for m in cases]
    assert outcomes == [dkim.arc_verify(m, dnsfunc=dnsfunc)[::2] for m in cases]
    assert [cv for cv, _ in outcomes[:4]] == [dkim.CV_Pass, dkim.CV_Pass, dkim.CV_Fail, dkim.CV_Fail]
    full = ArcMessage(twice).verify(dnsfunc=dnsfunc)
    assert full == dkim.ARC(twice).verify(dnsfunc=dnsfunc)


# -- key records ------------------------------------------------------------------------------------------

def test_every_kind_of_key_record_gives_dkimpys_result(keys: dict[str, SigningKey]) -> None:
    rsa, ed = keys["one.test"].record, keys["ed.test"].record
    p = rsa.partition("p=")[2]
    records: list[str | None] = [
        rsa, rsa + "; s=tlsrpt", rsa + "; s=email", rsa + "; s=other", "v=DKIM2; " + rsa.partition("; ")[2],
        f"k=rsa; p={p}", f"p={p}", f"v=DKIM1; k=rsa; p={p[:-8]}", f"v=DKIM1; k=rsa; p={p[:40]}!!",
        "v=DKIM1; k=rsa; p=", "v=DKIM1; k=rsa", "v=DKIM1; k=dsa; p=AAAA", ed, ed[:-6], "garbage", "", None,
    ]
    raw = _sign(keys["one.test"], message("A <a@one.test>", body="Hi  there\r\n"), (b"relaxed", b"simple"))
    for record in records:
        for kind in (str, bytes):
            value = None if record is None else record if kind is str else record.encode()
            dnsfunc = lambda name, timeout=5, value=value: value  # noqa: E731
            assert _results(DkimMessage, raw, dnsfunc) == _results(dkim.DKIM, raw, dnsfunc), record
            assert _results(DkimMessage, raw, dnsfunc) == _results(DkimMessage, raw, dnsfunc), record  # cached
    assert parsed_key(b"a.", rsa.encode()) is parsed_key(b"b.", rsa.encode())  # one parse per record


# -- the ARC pre-check (dkim_verify._may_have_arc) ----------------------------------------------------------

_ARC_PIECES = [b"ARC-Seal: i=1", b"arc-message-signature: i=1", b"Arc-Seal : i=1", b"ARC-Authentication-Results: i=1",
               b" ARC-Seal: folded", b"X-ARC-Seal: no", b"From: a@b", b"", b"\r", b"ARC-SEAL:", b"arc-seal"]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_ARC_PIECES), st.binary(max_size=10)), max_size=8),
       st.lists(EOLS, min_size=8, max_size=8), BODIES)
def test_the_arc_precheck_never_misses_a_field(lines: list[bytes], eols: list[bytes], body: bytes) -> None:
    """Whatever the line ends and malformed lines, a field HeaderBlock counts is never missed."""
    raw = b"".join(line + eol for line, eol in zip(lines, eols, strict=False)) + body
    block = HeaderBlock.parse(raw)
    if block.count("arc-seal") or block.count("arc-message-signature"):
        assert _may_have_arc(raw)


def test_the_arc_precheck_answers_for_mail_without_arc() -> None:
    plain = message("A <a@one.test>", body="ARC-Seal: i=1; in the body, not a field\r\n")
    assert not _may_have_arc(plain)
    assert not _may_have_arc(b"From: a@b\n\nARC-Seal: i=1\n")  # LF line ends: the body again
    assert _may_have_arc(b"From: a@b\nArc-Message-Signature: i=1\n\nbody\n")
