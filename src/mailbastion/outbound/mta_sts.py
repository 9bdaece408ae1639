"""MTA-STS (RFC 8461): the `_mta-sts` TXT record, the policy fetched over HTTPS, its cache on disk.

    fetcher = MtaStsFetcher(resolver, cache_dir, ssl_context=https_context(trust_file))
    found = await fetcher.policy("example.org")
    found.policy          -> MtaStsPolicy(mode="enforce", mx=("mx1.example.org", "*.example.net"), ...) or None
    found.error           -> why there is none (RFC 8460 result type in found.result_type)

RFC 8461 rules kept here: the TXT record must be exactly one `v=STSv1; id=...` (§3.1); the policy comes
from https://mta-sts.<domain>/.well-known/mta-sts.txt, certificate verified for that name, no redirects,
200 only, text/plain, at most `max_bytes`, within `timeout` (§3.3); a cached policy is used until its
max_age runs out, even when the TXT record or the web server is gone, and fetched again when the id
changes (§5.1); a failed refresh keeps the cached policy. Policies are cached as JSON files (0600) under
the cache folder, so a restart keeps them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from mailbastion.core.errors import LookupTimeout
from mailbastion.dns.resolver import DnsResolver
from mailbastion.private_files import private_dir, write_private

log = logging.getLogger("mailbastion.outbound.mta_sts")

MAX_AGE_LIMIT = 31557600  # RFC 8461 §3.2: one year
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
FETCH_ERROR, POLICY_INVALID, WEBPKI_INVALID = "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid"


class MtaStsInvalid(ValueError):
    """A policy file or TXT record that RFC 8461 does not allow."""


@dataclass(frozen=True, slots=True)
class MtaStsPolicy:
    domain: str
    id: str
    mode: str  # "enforce" | "testing" | "none"
    mx: tuple[str, ...]
    max_age: int
    fetched: float  # epoch seconds
    text: str = ""

    @property
    def expires(self) -> float:
        return self.fetched + self.max_age

    def matches(self, host: str) -> bool:
        """RFC 8461 §4.1: an exact name, or `*.example.org` matching exactly one more left-most label."""
        host = host.lower().rstrip(".")
        for pattern in self.mx:
            if pattern.startswith("*."):
                head, _, rest = host.partition(".")
                if head and rest == pattern[2:]:
                    return True
            elif host == pattern:
                return True
        return False

    def lines(self) -> tuple[str, ...]:
        """The policy as RFC 8460's policy-string: one entry per line."""
        return tuple(ln for ln in self.text.replace("\r\n", "\n").split("\n") if ln.strip())


def parse_txt(records: list[str] | tuple[str, ...]) -> str | None:
    """The policy id of the `_mta-sts` TXT records, or None when there is no valid single STSv1 record
    (RFC 8461 §3.1: other records are discarded; zero or several left means no policy)."""
    sts = [r for r in records if r.startswith("v=STSv1;") or r.strip() == "v=STSv1"]
    if len(sts) != 1:
        return None
    fields = {}
    for part in sts[0].split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    ident = fields.get("id", "")
    return ident if _ID.match(ident) else None


def parse_policy(domain: str, ident: str, text: str, fetched: float) -> MtaStsPolicy:
    """RFC 8461 §3.2: `key: value` lines (CRLF or LF). Raises MtaStsInvalid."""
    values: dict[str, list[str]] = {}
    for raw in text.replace("\r\n", "\n").split("\n"):
        if not raw.strip():
            continue
        key, sep, value = raw.partition(":")
        if not sep:
            raise MtaStsInvalid(f"line without a colon: {raw[:60]!r}")
        values.setdefault(key.strip(), []).append(value.strip())
    if values.get("version") != ["STSv1"]:
        raise MtaStsInvalid("version is not STSv1")
    mode = (values.get("mode") or [""])[0]
    if mode not in ("enforce", "testing", "none"):
        raise MtaStsInvalid(f"mode {mode!r} is not enforce, testing or none")
    try:
        max_age = int((values.get("max_age") or [""])[0])
    except ValueError:
        raise MtaStsInvalid("max_age is not a number") from None
    if not 0 <= max_age <= MAX_AGE_LIMIT:
        raise MtaStsInvalid(f"max_age {max_age} outside 0..{MAX_AGE_LIMIT}")
    mx = tuple(m.lower().rstrip(".") for m in values.get("mx", []))
    if mode != "none" and not mx:
        raise MtaStsInvalid("no mx line")
    return MtaStsPolicy(domain, ident, mode, mx, max_age, fetched, text)


@dataclass(frozen=True, slots=True)
class StsLookup:
    policy: MtaStsPolicy | None
    error: str = ""
    result_type: str | None = None  # RFC 8460: sts-policy-fetch-error | sts-policy-invalid | sts-webpki-invalid


def https_context(ca_file: str | Path | None) -> ssl.SSLContext:
    """Verifies the policy host's certificate (RFC 8461 §3.3) against `ca_file`, else the system CAs."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class MtaStsCache:
    """Policies by domain as JSON files (0600) in `folder`; survives a restart (RFC 8461 §5.1)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, domain: str) -> Path:
        return self.folder / f"{domain}.json"

    def get(self, domain: str) -> MtaStsPolicy | None:
        try:
            data = json.loads(self._path(domain).read_text(encoding="utf-8"))
            data["mx"] = tuple(data["mx"])
            return MtaStsPolicy(**data)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def put(self, policy: MtaStsPolicy) -> None:
        private_dir(self.folder)
        write_private(self._path(policy.domain), json.dumps(asdict(policy)).encode())


class MtaStsFetcher:
    def __init__(self, resolver: DnsResolver, cache: MtaStsCache, *, ssl_context: ssl.SSLContext,
                 timeout: float = 30.0, max_bytes: int = 65536, max_age_cap: int = MAX_AGE_LIMIT,
                 https_port: int = 443, clock: Callable[[], float] = time.time) -> None:
        self.resolver = resolver
        self.cache = cache
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_age_cap = max_age_cap
        self.https_port = https_port  # 443; tests serve the policy elsewhere on loopback
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}

    async def policy(self, domain: str) -> StsLookup:
        """The policy in force for `domain` (cached, or fetched now). Never raises."""
        domain = domain.lower().rstrip(".")
        async with self._locks.setdefault(domain, asyncio.Lock()):
            return await self._policy(domain)

    async def _policy(self, domain: str) -> StsLookup:
        now = self.clock()
        cached = self.cache.get(domain)
        if cached is not None and cached.expires <= now:
            cached = None
        try:
            ident = parse_txt((await self.resolver.lookup(f"_mta-sts.{domain}", "TXT")).records)
        except LookupTimeout as exc:
            return StsLookup(cached, f"_mta-sts TXT lookup failed: {exc}")
        if ident is None or (cached is not None and cached.id == ident):
            return StsLookup(cached)  # §5.1: no record, or the same id: the cached policy stays in force
        try:
            text = await self._fetch(domain)
            policy = parse_policy(domain, ident, text, now)
        except MtaStsInvalid as exc:
            return self._failed(domain, cached, f"policy invalid: {exc}", POLICY_INVALID)
        except ssl.SSLError as exc:
            return self._failed(domain, cached, f"policy host certificate: {exc}", WEBPKI_INVALID)
        except (OSError, httpx.HTTPError, LookupTimeout, _FetchError) as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
                return self._failed(domain, cached, f"policy host certificate: {exc}", WEBPKI_INVALID)
            return self._failed(domain, cached, f"policy fetch: {exc}", FETCH_ERROR)
        if policy.max_age > self.max_age_cap:
            policy = MtaStsPolicy(policy.domain, policy.id, policy.mode, policy.mx, self.max_age_cap,
                                  policy.fetched, policy.text)
        try:
            self.cache.put(policy)
        except OSError as exc:  # a policy we cannot keep still applies now
            log.warning("mta-sts: cannot cache the policy of %s: %s", domain, exc)
        log.info("mta-sts: %s policy id=%s mode=%s mx=%s max_age=%d", domain, policy.id, policy.mode,
                 ",".join(policy.mx), policy.max_age)
        return StsLookup(policy)

    def _failed(self, domain: str, cached: MtaStsPolicy | None, error: str, result_type: str) -> StsLookup:
        log.warning("mta-sts: %s: %s%s", domain, error, " (keeping the cached policy)" if cached else "")
        return StsLookup(cached, error, result_type)

    async def _fetch(self, domain: str) -> str:
        host = f"mta-sts.{domain}"
        addresses: list[str] = []
        for rdtype in ("A", "AAAA"):
            addresses += (await self.resolver.lookup(host, rdtype)).records
        if not addresses:
            raise _FetchError(f"{host} has no address")
        ip = addresses[0]
        literal = f"[{ip}]" if ":" in ip else ip
        url = f"https://{literal}:{self.https_port}/.well-known/mta-sts.txt"
        # The address comes from our resolver; the name goes in the Host header and in SNI, and the
        # certificate is verified for it (httpcore's "sni_hostname" extension).
        async with httpx.AsyncClient(verify=self.ssl_context, follow_redirects=False, trust_env=False,
                                     timeout=self.timeout) as client:
            async with asyncio.timeout(self.timeout):
                headers = {"Host": host, "Accept": "text/plain", "Accept-Encoding": "identity"}
                request = client.build_request("GET", url, headers=headers, extensions={"sni_hostname": host})
                response = await client.send(request, stream=True)
                try:
                    if response.status_code != 200:  # §3.3: redirects are not followed
                        raise _FetchError(f"HTTP {response.status_code} from https://{host}/.well-known/mta-sts.txt")
                    ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
                    if ctype != "text/plain":
                        raise MtaStsInvalid(f"media type {ctype or 'none'!r}, not text/plain")
                    body = bytearray()
                    async for chunk in response.aiter_raw():
                        body += chunk
                        if len(body) > self.max_bytes:
                            raise _FetchError(f"policy larger than {self.max_bytes} bytes")
                finally:
                    await response.aclose()
        try:
            return bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise MtaStsInvalid("policy is not UTF-8") from None


class _FetchError(Exception):
    pass


__all__ = ["MtaStsCache", "MtaStsFetcher", "MtaStsInvalid", "MtaStsPolicy", "StsLookup", "https_context",
           "parse_policy", "parse_txt"]
