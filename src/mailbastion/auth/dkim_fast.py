"""dkimpy's verification, the same results for less CPU: a narrow subclass of `dkim.DKIM` and `dkim.ARC`.

Five things dkimpy 1.1.8 does on every verification are done here with less work, each byte for byte
what dkimpy computes (tests/auth/test_dkim_fast.py holds them equal on generated and real messages):

- `split_message`: dkimpy's `rfc822_parse` splits the *whole* message into lines with a regex and joins
  the body lines again. Only the header section needs its line loop; the body it returns is the rest of
  the message with each line end written CRLF, which is the rest itself when every `\\n` is in a CRLF
  (two C counts, no copy).
- `relaxed_body`: RFC 6376 §3.4.4 as dkimpy writes it (`[\\t ]+\\r\\n` → CRLF, then `[\\t ]+` → one space)
  but a pass runs only when the bytes it targets are present (`in` is a C scan), and the second pass
  matches only the runs it changes (a tab, or two or more WSP) instead of every single space.
- body hashes: each signature canonicalizes and hashes the body again; here a (canonicalization, hash,
  `l=`) triple is computed once per message, and the canonical header list once per canonicalization
  (`relaxed_headers`: the unfolding is two C replaces, the runs compressed as in the body).
- key records: dkimpy parses the record (tags, base64, ASN.1) for every signature; `parsed_key` keeps
  the parsed key per distinct record text, as the DNS cache keeps the text.
- RSA: dkimpy converts between bytes and int one byte at a time in Python (`str2int`, `int2str`, twice
  per signature); `_rsa_verify` is its RSASSA_PKCS1_v1_5_verify with int.from_bytes / int.to_bytes.
  The header hash is dkimpy's own `hash_headers`, the encoding its own `EMSA_PKCS1_v1_5_encode`.

Nothing of dkimpy is patched: only `DkimMessage` and `ArcMessage` (and `arc_verify`) behave this way.
What the fast path does not cover is dkimpy's own code: a tlsrpt key, or a c= or a= dkimpy refuses (all of
it), an ed25519 key (the header hash and signature, after the body hash checked here).
`DKIMPY_VERSION` is the release this mirrors; a test fails when another is installed, so an upgrade
re-checks the equivalence before it ships.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from typing import Any

import dkim  # type: ignore[import-untyped]
from dkim import hash_headers  # type: ignore[import-untyped]
from dkim.canonicalization import (  # type: ignore[import-untyped]
    CanonicalizationPolicy,
    InvalidCanonicalizationPolicyError,
    Relaxed,
    correct_empty_body,
    strip_trailing_lines,
)
from dkim.crypto import HASH_ALGORITHMS, DigestTooLargeError, EMSA_PKCS1_v1_5_encode  # type: ignore[import-untyped]

# The dkimpy whose rfc822_parse, Relaxed.canonicalize_body/_headers, evaluate_pk, verify_sig,
# verify_sig_process, RSASSA_PKCS1_v1_5_verify and arc_verify this mirrors.
DKIMPY_VERSION = "1.1.8"

_TRAILING_WSP = re.compile(rb"[\t ]+\r\n")  # dkimpy's strip_trailing_whitespace
_WSP_RUN = re.compile(rb"\t[\t ]*| [\t ]+")  # the runs `[\t ]+` → b" " changes: a tab, or 2+ WSP
# An LF, then an empty line: the first match ends the header section for rfc822_parse (every \n ends a line)
# and bounds it for HeaderBlock (dkim_verify._may_have_arc).
BLANK_LINE_AFTER = re.compile(rb"\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")  # rfc822_parse's line separator


def relaxed_body(body: bytes) -> bytes:
    """`dkim.canonicalization.Relaxed.canonicalize_body(body)`, with less work.

    Trailing WSP is removed before runs are compressed, as dkimpy does; removing it never joins two
    runs. A run `[\\t ]+` left alone by `_WSP_RUN` is a single space, which `[\\t ]+` → b" " keeps."""
    if b" \r\n" in body or b"\t\r\n" in body:
        body = _TRAILING_WSP.sub(b"\r\n", body)
    if b"\t" in body or b"  " in body:
        body = _WSP_RUN.sub(b" ", body)
    return correct_empty_body(strip_trailing_lines(body))


def canonical_body(algorithm: Any, body: bytes) -> bytes:
    """`algorithm.canonicalize_body(body)` for dkimpy's Simple or Relaxed class."""
    return relaxed_body(body) if algorithm is Relaxed else algorithm.canonicalize_body(body)


def relaxed_headers(headers: list[Any]) -> list[tuple[bytes, bytes]]:
    """`dkim.canonicalization.Relaxed.canonicalize_headers(headers)`, with less work.

    Unfolding (`\\r?\\n` → b"") is two C replaces: removing each CRLF and then each remaining LF removes
    exactly every LF and every CR just before one. Runs are compressed as in `relaxed_body`."""
    out = []
    for name, value in headers:
        value = value.replace(b"\r\n", b"").replace(b"\n", b"")
        if b"\t" in value or b"  " in value:
            value = _WSP_RUN.sub(b" ", value)
        out.append((name.lower().rstrip(), value.strip() + b"\r\n"))
    return out


def canonical_headers(algorithm: Any, headers: list[Any]) -> list[Any]:
    """`algorithm.canonicalize_headers(headers)` for dkimpy's Simple or Relaxed class."""
    if algorithm is Relaxed:
        return relaxed_headers(headers)
    return algorithm.canonicalize_headers(headers)  # type: ignore[no-any-return]


def split_message(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """`dkim.rfc822_parse(message)`: (headers, body), the header lines read by dkimpy's own loop.

    rfc822_parse's lines are the pieces between `\\r?\\n` separators, and every `\\n` ends one, so the
    first empty line starts at 0 or after a `\\n` followed by `\\r?\\n`. The header lines before it are
    parsed by rfc822_parse itself (same lines, same exceptions); the body is the lines after it joined
    with CRLF, i.e. the rest of the message with each separator written CRLF."""
    if message.startswith(b"\n") or message.startswith(b"\r\n"):
        headers: list[list[bytes]] = []
        rest = message[1:] if message[:1] == b"\n" else message[2:]
    else:
        m = BLANK_LINE_AFTER.search(message)
        if m is None:
            return dkim.rfc822_parse(message)  # type: ignore[no-any-return]  # no body: nothing to save
        headers = dkim.rfc822_parse(message[: m.start() + 1])[0]
        rest = message[m.end():]
    if rest.count(b"\n") == rest.count(b"\r\n"):
        return headers, rest
    return headers, b"\r\n".join(_LINE_END.split(rest))


class _SharedBody:
    """The fast parts for `dkim.DKIM` and `dkim.ARC` (DomainSigner): the message split once, each body
    hash and canonical header list once per message, each key record once, the RSA check in C ints."""

    headers: list[list[bytes]]
    body: bytes
    tlsrpt: Any
    seqtlsrpt: bool

    def set_message(self, message: bytes | None) -> None:
        super().set_message(None)  # type: ignore[misc]  # dkimpy resets its per-message state
        if message:
            self.headers, self.body = split_message(message)
        self._canonical: dict[Any, bytes] = {}
        self._canonical_headers: dict[Any, list[Any]] = {}
        self._digests: dict[tuple[Any, bytes, int | None], bytes] = {}

    def canonical_body(self, algorithm: Any) -> bytes:
        """The body canonicalized by dkimpy's Simple or Relaxed, computed once per message."""
        found = self._canonical.get(algorithm)
        if found is None:
            found = self._canonical[algorithm] = canonical_body(algorithm, self.body)
        return found

    def canonical_headers(self, algorithm: Any) -> list[Any]:
        """`algorithm.canonicalize_headers(self.headers)`, computed once per message."""
        found = self._canonical_headers.get(algorithm)
        if found is None:
            found = self._canonical_headers[algorithm] = canonical_headers(algorithm, self.headers)
        return found

    def verify_sig(self, sig: dict[bytes, bytes], include_headers: list[bytes], sig_header: Any, dnsfunc: Any) -> Any:
        """dkimpy 1.1.8's verify_sig (the key record fetched, parsed, then verify_sig_process), the record
        parsed by `parsed_key`; the same exceptions caught and logged, the same False."""
        name = sig[b"s"] + b"._domainkey." + sig[b"d"] + b"."
        try:
            record = dnsfunc(name, timeout=self.timeout)
            self.pk, self.keysize, self.ktag, self.seqtlsrpt = parsed_key(name, record)
        except dkim.KeyFormatError as e:
            self.logger.error("%s" % e)
            return False
        except binascii.Error as e:
            self.logger.error("KeyFormatError: {0}".format(e))
            return False
        except dkim.DnsTimeoutError as e:
            self.logger.error("DnsTimeoutError: Domain: {0} Selector: {1} Error message: {2}".format(
                sig[b"d"], sig[b"s"], e))
            return False
        return self.verify_sig_process(sig, include_headers, sig_header, dnsfunc)

    def verify_sig_process(self, sig: dict[bytes, bytes], include_headers: list[bytes], sig_header: Any,
                           dnsfunc: Any) -> Any:
        """dkimpy 1.1.8's verify_sig_process, the body hash and canonical headers from per-message caches.

        dkimpy checks, in order: the tlsrpt service type, c=, a=, then bh against the body, then the
        header hash against b= with the key. When any of the first three would raise, dkimpy runs alone
        (same exception, same message). Otherwise the body hash is checked here as dkimpy checks it (same
        ValueError from a bad l=, same binascii.Error from a bad bh, same ValidationError text on a
        mismatch). For an RSA key the header hash and the signature are then checked here as dkimpy does
        (`_rsa_verify`); any other key goes to dkimpy with the tags minus bh (its body check skipped)."""
        parent = super().verify_sig_process  # type: ignore[misc]
        if self.tlsrpt or self.seqtlsrpt or sig.get(b"a") not in HASH_ALGORITHMS:
            return parent(sig, include_headers, sig_header, dnsfunc)
        try:
            policy = CanonicalizationPolicy.from_c_value(sig.get(b"c", b"simple/simple"))
        except InvalidCanonicalizationPolicyError:
            return parent(sig, include_headers, sig_header, dnsfunc)
        hasher = HASH_ALGORITHMS[sig[b"a"]]
        if b"bh" in sig:
            self._check_body_hash(sig, policy, hasher)
        pk = self.pk
        if (self.ktag != b"rsa" or self.debug_content or not isinstance(pk, dict)
                or not isinstance(pk.get("modulus"), int) or pk["modulus"] <= 0):
            return parent({k: v for k, v in sig.items() if k != b"bh"}, include_headers, sig_header, dnsfunc)
        if b"from" in include_headers:  # dkimpy's bug#644046 rule: an extra From is hashed too
            include_headers.append(b"from")
        h = hasher()
        self.signed_headers = hash_headers(h, policy, self.canonical_headers(policy.header_algorithm),
                                           include_headers, sig_header, sig)
        signature = base64.b64decode(re.sub(rb"\s+", b"", sig[b"b"]))
        try:
            res = _rsa_verify(h, signature, pk)
            if res and self.keysize < self.minkey:
                raise dkim.KeyFormatError("public key too small: %d" % self.keysize)
            return res
        except (TypeError, DigestTooLargeError) as e:
            raise dkim.KeyFormatError("digest too large for modulus: %s" % e) from None

    def _check_body_hash(self, sig: dict[bytes, bytes], policy: Any, hasher: Any) -> None:
        """dkimpy's body check: the digest of a (canonicalization, hash, l=) triple is computed once."""
        length = int(sig[b"l"]) if b"l" in sig else None
        key = (policy.body_algorithm, sig[b"a"], length)
        bodyhash = self._digests.get(key)
        if bodyhash is None:
            body = self.canonical_body(policy.body_algorithm)
            h = hasher()
            h.update(body if length is None else body[:length])
            bodyhash = self._digests[key] = h.digest()
        try:
            bh = base64.b64decode(re.sub(rb"\s+", b"", sig[b"bh"]))
        except TypeError as e:
            raise dkim.MessageFormatError(str(e)) from None
        if bodyhash != bh:
            raise dkim.ValidationError(
                "body hash mismatch (got %s, expected %s)" % (base64.b64encode(bodyhash), sig[b"bh"]))


@functools.lru_cache(maxsize=256)
def _parsed_key(record: bytes | str | None) -> tuple[Any, Any, Any, bool]:
    return dkim.evaluate_pk(b"", record)  # type: ignore[no-any-return]


def parsed_key(name: bytes, record: bytes | str | None) -> tuple[Any, Any, Any, bool]:
    """`dkim.evaluate_pk(name, record)`: (key, bits, k=, tlsrpt service), parsed once per distinct record.

    evaluate_pk reads only `record` (`name` is in its error texts), so its value is kept for the record,
    for this process (256 records, least recently used first out); the parsed key is only read, never
    changed, by dkimpy. A record it refuses is parsed by dkimpy again, so the exception names `name`."""
    try:
        return _parsed_key(record)
    except Exception:  # noqa: BLE001 - dkimpy raises it again below, with the right name
        return dkim.evaluate_pk(name, record)  # type: ignore[no-any-return]


def _rsa_verify(h: Any, signature: bytes, pk: dict[str, int]) -> bool:
    """`dkim.crypto.RSASSA_PKCS1_v1_5_verify(h, signature, pk)` for a modulus > 0, with int.from_bytes and
    int.to_bytes in place of dkimpy's byte-by-byte str2int / int2str loops (the same values: the result of
    pow() is below the modulus, so it fits the modulus's length)."""
    modulus = pk["modulus"]
    modlen = (modulus.bit_length() + 7) // 8  # len(int2str(modulus)) for modulus > 0
    encoded = EMSA_PKCS1_v1_5_encode(h, modlen)
    signed = pow(int.from_bytes(signature, "big"), pk["publicExponent"], modulus).to_bytes(modlen, "big")
    return encoded == signed


class DkimMessage(_SharedBody, dkim.DKIM):  # type: ignore[misc]
    """`dkim.DKIM` for verification: same results, one split and one body hash per triple."""


class ArcMessage(_SharedBody, dkim.ARC):  # type: ignore[misc]
    """`dkim.ARC` for verification, as `DkimMessage`."""


def arc_verify(message: bytes, logger: Any = None, dnsfunc: Any = None, minkey: int = 1024
               ) -> tuple[bytes | None, list[dict[str, object]], str]:
    """`dkim.arc_verify` (1.1.8) on an `ArcMessage`: same arguments, same three-tuple."""
    a = ArcMessage(message, logger=logger, minkey=minkey, timeout=5)
    try:
        return a.verify(dnsfunc=dnsfunc)  # type: ignore[no-any-return]
    except dkim.DKIMException as x:
        if logger is not None:
            logger.error("%s" % x)
        return dkim.CV_Fail, [], "%s" % x


__all__ = ["BLANK_LINE_AFTER", "DKIMPY_VERSION", "ArcMessage", "DkimMessage", "arc_verify", "canonical_body",
           "canonical_headers", "parsed_key", "relaxed_body", "relaxed_headers", "split_message"]
