"""DKIM (RFC 6376, RFC 8463 ed25519) and ARC (RFC 8617) verification through dkimpy, fed by our resolver.

The only DNS names DKIM and ARC need are the key records `<s>._domainkey.<d>` named in the signature
headers, so they are pre-fetched concurrently through `DnsResolver`; dkimpy then runs on a snapshot
(`dns_bridge`) and never touches the network. Hashing a large body is CPU work: past `THREAD_BYTES`
it runs in a worker thread so the loop stays responsive; by then every answer is in memory.

    results = await DkimVerifier(resolver).verify(raw)   # one SignatureResult per DKIM-Signature
    arc = await DkimVerifier(resolver).verify_arc(raw)   # ArcResult(cv="pass"|"fail"|"none", ...)
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import dkim  # type: ignore[import-untyped]
from dkim.util import InvalidTagValueList, parse_tag_value  # type: ignore[import-untyped]

from mailbastion.auth.dns_bridge import DnsSnapshot, Key, fetch
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

    result: str  # "pass" | "fail" | "neutral" | "temperror" | "permerror"
    domain: str  # d=, lower case ("" when unparseable)
    selector: str = ""
    algorithm: str = ""
    b: str = ""  # the first 12 characters of b= (RFC 6008 header.b)
    reason: str = ""
    key_bits: int = 0
    weak_key: bool = False

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
            d = dkim.DKIM(raw, logger=_QUIET, minkey=self.min_rsa_bits)  # parsed once for every signature
        except dkim.DKIMException:
            return DkimResults()  # no header section dkimpy can read: nothing it could verify either
        sigs = [v for n, v in d.headers if n.lower() == b"dkim-signature"]
        tags = [_tags(v) for v in sigs[: self.max_signatures]]
        keys = [k for k in (_key_name(t) for t in tags) if k is not None]
        snap = await self._prefetch(keys)
        results = await self._cpu(raw, lambda: tuple(self._verify_one(d, i, t, snap) for i, t in enumerate(tags)))
        return DkimResults(results, max(0, len(sigs) - len(tags)))

    def _verify_one(self, d: Any, idx: int, tags: dict[bytes, bytes], snap: DnsSnapshot) -> SignatureResult:
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
        bits = int(getattr(d, "keysize", 0) or 0)
        if ok:
            return _result("pass", meta, key_bits=bits)
        if getattr(d, "pk", None) is None:
            return _result("permerror", meta, reason="unusable key record")
        return _result("fail", meta, reason="signature did not verify", key_bits=bits)

    async def verify_arc(self, raw: bytes) -> ArcResult:
        if not _ARC_FIELD.search(_header_block(raw)):
            return ArcResult("none")  # the common case, without parsing the message
        headers, _body = dkim.rfc822_parse(raw)
        arc = [(n.lower(), v) for n, v in headers if n.lower() in (b"arc-seal", b"arc-message-signature")]
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
                cv, data, reason = dkim.arc_verify(raw, logger=_QUIET, dnsfunc=_dnsfunc(snap),
                                                   minkey=self.min_rsa_bits)
            except dkim.DKIMException as exc:
                return dkim.CV_Fail, [], str(exc)
            return cv, data, str(reason)

        cv, _data, reason = await self._cpu(raw, run)
        seals = sorted(((_instance(v), _tags(v)) for n, v in arc if n == b"arc-seal"), key=lambda x: x[0])
        latest_i, latest = seals[-1] if seals else (0, {})
        sealer = latest.get(b"d", b"").decode("ascii", "replace").strip().lower()
        aar = next((v for n, v in headers if n.lower() == b"arc-authentication-results"
                    and _instance(v) == latest_i), b"")
        verdict = {dkim.CV_Pass: "pass", dkim.CV_None: "none"}.get(cv or b"", "fail")
        return ArcResult(verdict, sealer, latest_i, reason[:200], aar.decode("utf-8", "replace"))


def _result(result: str, meta: dict[str, str], *, reason: str = "", key_bits: int = 0,
            weak_key: bool = False) -> SignatureResult:
    return SignatureResult(result, meta["domain"], meta["selector"], meta["algorithm"], meta["b"], reason, key_bits,
                           weak_key)


_ARC_FIELD = re.compile(rb"(?im)^arc-(?:seal|message-signature)[ \t]*:")


def _header_block(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        idx = raw.find(sep)
        if idx >= 0:
            return raw[: idx + 2]
    return raw


def _instance(value: bytes) -> int:
    m = re.search(rb"(?:^|;)\s*i\s*=\s*(\d+)", value)
    return int(m.group(1)) if m else 0


__all__ = ["ArcResult", "DkimResults", "DkimVerifier", "SignatureResult"]

