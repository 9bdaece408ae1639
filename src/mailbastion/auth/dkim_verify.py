"""DKIM (RFC 6376, RFC 8463 ed25519) and ARC (RFC 8617) verification through dkimpy, fed by our resolver.

The only DNS names DKIM and ARC need are the key records `<s>._domainkey.<d>` named in the signature
headers, so they are pre-fetched concurrently through `DnsResolver`; dkimpy then runs on a snapshot
(`dns_bridge`) and never touches the network. Hashing a large body is CPU work: past `THREAD_BYTES`
it runs in a worker thread so the loop stays responsive; by then every answer is in memory.

    results = await DkimVerifier(resolver).verify(raw)   # one SignatureResult per DKIM-Signature
    arc = await DkimVerifier(resolver).verify_arc(raw)   # ArcResult(cv="pass"|"fail"|"none", ...)

dkimpy reads the message through the one header parser (`core/header_block.py`), not its own
`rfc822_parse`, which raises on a header section that starts with a folded line (IndexError) and on any
line that is not a field: `verifiable_message` gives it the well-formed fields only (see there).
dkimpy runs as `dkim_fast.DkimMessage` / `ArcMessage`: the same results, the message split and each body
hash computed once, with a cheaper relaxed body canonicalization (see there).

A signature with a body length (`l=`, RFC 6376 §3.5) that verifies while canonicalized body content
follows the signed length is reported as "policy" (RFC 8601 §2.7.1: signed, but not acceptable here),
never "pass": content an attacker appended after the signed part must not ride on the signature
(RFC 6376 §8.2). DMARC counts only "pass", so such a signature does not align anything.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import dkim  # type: ignore[import-untyped]
from dkim.canonicalization import CanonicalizationPolicy, InvalidCanonicalizationPolicyError  # type: ignore[import-untyped]
from dkim.util import InvalidTagValueList, parse_tag_value  # type: ignore[import-untyped]

from mailbastion.auth.dkim_fast import BLANK_LINE_AFTER, DkimMessage, arc_verify
from mailbastion.auth.dns_bridge import DnsSnapshot, Key, fetch
from mailbastion.core.header_block import HeaderBlock
from mailbastion.dns.resolver import DnsResolver

T = TypeVar("T")
THREAD_BYTES = 256 * 1024
# RFC 8617 §4.2.1 allows 50 ARC sets; real chains have a handful. Each distinct key is a DNS lookup, so
# a chain asking for more than this many is refused before any lookup (a cheap amplification otherwise).
MAX_ARC_KEYS = 20
_QUIET = logging.getLogger("mailbastion.auth.dkimpy")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


@dataclass(frozen=True, slots=True)
class SignatureResult:
    """One DKIM-Signature's outcome, as RFC 8601 §2.7.1 names it."""

    result: str  # "pass" | "fail" | "neutral" | "policy" | "temperror" | "permerror"
    domain: str  # d=, lower case ("" when unparseable)
    selector: str = ""
    algorithm: str = ""
    b: str = ""  # the first 12 characters of b= (RFC 6008 header.b)
    reason: str = ""
    key_bits: int = 0
    weak_key: bool = False
    unsigned_tail: int = 0  # canonicalized body bytes after l= (result "policy" when > 0)

    @property
    def is_pass(self) -> bool:
        return self.result == "pass"


@dataclass(frozen=True, slots=True)
class DkimResults:
    """Every DKIM-Signature's result, in header order: the fact DMARC and Authentication-Results read."""

    signatures: tuple[SignatureResult, ...] = ()
    unverified: int = 0  # signatures past max_dkim_signatures


@dataclass(frozen=True, slots=True)
class ArcResult:
    cv: str  # "pass" | "fail" | "none" | "temperror"
    sealer: str = ""  # d= of the latest ARC-Seal
    instances: int = 0
    reason: str = ""
    latest_aar: str = ""  # the ARC-Authentication-Results of the latest instance (sealed, hence authentic on pass)


def _tags(value: bytes) -> dict[bytes, bytes]:
    try:
        return dict(parse_tag_value(re.sub(rb"\r?\n", b"", value)))
    except (InvalidTagValueList, ValueError):
        return {}


def _key_name(tags: dict[bytes, bytes]) -> Key | None:
    s, d = tags.get(b"s", b"").strip(), tags.get(b"d", b"").strip()
    if not s or not d:
        return None
    try:
        return (f"{s.decode('ascii')}._domainkey.{d.decode('ascii')}".lower().rstrip("."), "TXT")
    except UnicodeDecodeError:
        return None


def _dnsfunc(snap: DnsSnapshot) -> Callable[..., bytes | None]:
    def lookup(name: bytes | str, timeout: float = 5) -> bytes | None:
        key = DnsSnapshot.key(name, "TXT")
        found = snap.answers.get(key)
        if found is None or not found.records:
            return None
        # RFC 6376 §3.6.2.2: a key record; prefer the one that looks like one when several TXT exist.
        recs = [r for r in found.records if "p=" in r] or list(found.records)
        return recs[0].encode("utf-8", "surrogateescape")

    return lookup


class DkimVerifier:
    """Never raises for a bad signature or DNS trouble: every outcome is a result value."""

    def __init__(self, resolver: DnsResolver, *, timeout: float = 10.0, max_signatures: int = 5,
                 min_rsa_bits: int = 1024) -> None:
        self.resolver = resolver
        self.timeout = timeout
        self.max_signatures = max_signatures
        self.min_rsa_bits = min_rsa_bits

    async def _prefetch(self, keys: list[Key]) -> DnsSnapshot:
        snap = DnsSnapshot()
        try:
            await asyncio.wait_for(fetch(self.resolver, snap, keys), timeout=self.timeout)
        except TimeoutError:
            for k in keys:
                snap.answers.setdefault(k, None)
        return snap

    async def _cpu(self, raw: bytes, fn: Callable[[], T]) -> T:
        return await asyncio.to_thread(fn) if len(raw) > THREAD_BYTES else fn()

    async def verify(self, raw: bytes) -> DkimResults:
        """Every DKIM-Signature (up to max_signatures, topmost first) verified."""
        try:
            # Parsed once for every signature, from the fields our parser found.
            d = DkimMessage(verifiable_message(raw), logger=_QUIET, minkey=self.min_rsa_bits)
        except dkim.DKIMException:
            return DkimResults()  # defensive: verifiable_message gives dkimpy only lines it reads
        sigs = [v for n, v in d.headers if n.lower() == b"dkim-signature"]
        tags = [_tags(v) for v in sigs[: self.max_signatures]]
        keys = [k for k in (_key_name(t) for t in tags) if k is not None]
        snap = await self._prefetch(keys)
        results = await self._cpu(raw, lambda: tuple(self._verify_one(d, i, t, snap) for i, t in enumerate(tags)))
        return DkimResults(results, max(0, len(sigs) - len(tags)))

    def _verify_one(self, d: DkimMessage, idx: int, tags: dict[bytes, bytes], snap: DnsSnapshot) -> SignatureResult:
        """One signature's result; every failure is a value, never an exception."""
        domain = tags.get(b"d", b"").decode("ascii", "replace").strip().lower()
        meta: dict[str, str] = {
            "domain": domain,
            "selector": tags.get(b"s", b"").decode("ascii", "replace").strip(),
            "algorithm": tags.get(b"a", b"").decode("ascii", "replace").strip(),
            "b": re.sub(r"\s+", "", tags.get(b"b", b"").decode("ascii", "replace"))[:12],
        }
        key = _key_name(tags)
        if not tags or key is None:
            return _result("permerror", meta, reason="malformed signature")
        if key in snap.answers and snap.answers[key] is None:
            return _result("temperror", meta, reason=f"key lookup failed for {key[0]}")
        found = snap.answers.get(key)
        if found is None or not found.records:
            return _result("permerror", meta, reason=f"no key at {key[0]}")
        d.pk = None  # the object is shared between signatures: no key may leak from the previous one
        try:
            ok = d.verify(idx=idx, dnsfunc=_dnsfunc(snap))
        except dkim.ValidationError as exc:
            reason = str(exc)
            result = "fail" if "body hash" in reason or "signature" in reason else "permerror"
            return _result(result, meta, reason=reason[:200], key_bits=int(getattr(d, "keysize", 0) or 0))
        except dkim.DKIMException as exc:
            reason = str(exc)
            weak = "too small" in reason
            return _result("permerror", meta, reason=reason[:200], key_bits=int(getattr(d, "keysize", 0) or 0),
                           weak_key=weak)
        except (ValueError, IndexError, KeyError, TypeError, OverflowError) as exc:
            # dkimpy trusts some tags it validated loosely (an empty l= reaches int()): a malformed
            # signature is a permerror (RFC 8601 §2.7.1), never an exception out of the check.
            return _result("permerror", meta, reason=f"malformed signature: {exc}"[:200])
        bits = int(getattr(d, "keysize", 0) or 0)
        if ok:
            tail = _unsigned_tail(d, tags)
            if tail:
                return _result("policy", meta, key_bits=bits, unsigned_tail=tail,
                               reason=f"{tail} body bytes after l={int(tags[b'l'])} are not signed")
            return _result("pass", meta, key_bits=bits)
        if getattr(d, "pk", None) is None:
            return _result("permerror", meta, reason="unusable key record")
        return _result("fail", meta, reason="signature did not verify", key_bits=bits)

    async def verify_arc(self, raw: bytes) -> ArcResult:
        if not _may_have_arc(raw):
            return ArcResult("none")  # the common case, told without parsing the header section
        block = HeaderBlock.parse(raw)
        if not (block.count("arc-seal") or block.count("arc-message-signature")):
            return ArcResult("none")
        raw = verifiable_message(raw, block)
        headers = [(f.name.encode("ascii"), f.value_bytes) for f in block.fields if f.name]
        arc = [(n, v) for n, v in headers if n in (b"arc-seal", b"arc-message-signature")]
        if not arc:
            return ArcResult("none")
        keys = list(dict.fromkeys(k for k in (_key_name(_tags(v)) for _n, v in arc) if k is not None))
        if len(keys) > MAX_ARC_KEYS:
            return ArcResult("fail", instances=len(arc) // 2, reason=f"{len(keys)} distinct ARC keys: over the limit")
        snap = await self._prefetch(keys)
        if any(snap.answers.get(k, 1) is None for k in keys):
            return ArcResult("temperror", reason="ARC key lookup failed")

        def run() -> tuple[bytes | None, list[dict[str, object]], str]:
            try:
                cv, data, reason = arc_verify(raw, logger=_QUIET, dnsfunc=_dnsfunc(snap), minkey=self.min_rsa_bits)
            except dkim.DKIMException as exc:
                return dkim.CV_Fail, [], str(exc)
            except (ValueError, IndexError, KeyError, TypeError, OverflowError) as exc:
                return dkim.CV_Fail, [], f"malformed ARC set: {exc}"  # as for DKIM: a value, never a raise
            return cv, data, str(reason)

        cv, _data, reason = await self._cpu(raw, run)
        seals = sorted(((_instance(v), _tags(v)) for n, v in arc if n == b"arc-seal"), key=lambda x: x[0])
        latest_i, latest = seals[-1] if seals else (0, {})
        sealer = latest.get(b"d", b"").decode("ascii", "replace").strip().lower()
        aar = next((v for n, v in headers if n == b"arc-authentication-results"
                    and _instance(v) == latest_i), b"")
        verdict = {dkim.CV_Pass: "pass", dkim.CV_None: "none"}.get(cv or b"", "fail")
        return ArcResult(verdict, sealer, latest_i, reason[:200], aar.decode("utf-8", "replace"))


def _result(result: str, meta: dict[str, str], *, reason: str = "", key_bits: int = 0,
            weak_key: bool = False, unsigned_tail: int = 0) -> SignatureResult:
    return SignatureResult(result, meta["domain"], meta["selector"], meta["algorithm"], meta["b"], reason, key_bits,
                           weak_key, unsigned_tail)


_DKIMPY_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")  # what dkimpy's rfc822_parse takes for a field name


def verifiable_message(raw: bytes, block: HeaderBlock | None = None) -> bytes:
    """`raw` as dkimpy can read it: the fields `HeaderBlock` found, the body untouched. Never raises.

    Malformed lines (a folded line with no field before it, a line that is no field) are left out:
    no signature can cover them (RFC 6376 §5.4 signs header *fields*), and dkimpy's own splitter
    raises on them, which turned a genuine signature into "none". A field written with the obsolete
    space before its colon (RFC 5322 §4.5.3) is given as `name:`, the form relaxed canonicalization
    signs (RFC 6376 §3.4.2); simple canonicalization then fails, as it should for an altered line."""
    block = block or HeaderBlock.parse(raw)
    if not block.has_malformed and all(_DKIMPY_NAME.match(f.raw) for f in block.fields):
        return raw  # the common case: dkimpy reads it as it is
    parts: list[bytes] = []
    for f in block.fields:
        if not f.name:
            continue
        if not _DKIMPY_NAME.match(f.raw):
            name, _colon, rest = f.raw.partition(b":")
            parts.append(name.rstrip(b" \t") + b":" + rest)
        else:
            parts.append(f.raw)
    return b"".join(parts) + block.body


def _unsigned_tail(d: DkimMessage, tags: dict[bytes, bytes]) -> int:
    """Canonicalized body bytes past the signature's l= (0 without l=, or when l= covers the body)."""
    length = tags.get(b"l", b"").strip()
    if not length.isdigit():
        return 0
    try:
        policy = CanonicalizationPolicy.from_c_value(tags.get(b"c", b"simple/simple").strip())
    except InvalidCanonicalizationPolicyError:
        return 0  # dkimpy refused the signature for this already; it never gets here
    return max(0, len(d.canonical_body(policy.body_algorithm)) - int(length))


def _may_have_arc(raw: bytes) -> bool:
    """False only when `HeaderBlock.parse(raw)` has no ARC-Seal and no ARC-Message-Signature field.

    HeaderBlock's header section ends at the first empty line, which is at the start or after an LF: the
    section lies within `raw` up to the first LF followed by an empty line (or all of it), so a field
    whose name, in any case, is nowhere in that prefix cannot be there. One C search and a lower-cased
    copy of the header section, instead of a parse of every field."""
    m = BLANK_LINE_AFTER.search(raw)
    head = raw[: m.start() + 1 if m else len(raw)].lower()
    return b"arc-seal" in head or b"arc-message-signature" in head


def _instance(value: bytes) -> int:
    m = re.search(rb"(?:^|;)\s*i\s*=\s*(\d+)", value)
    return int(m.group(1)) if m else 0


__all__ = ["ArcResult", "DkimResults", "DkimVerifier", "SignatureResult"]

