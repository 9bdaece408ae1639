"""Outsiders' OpenPGP keys: Web Key Directory (WKD) and an optional LDAP attribute.

    discovery = KeyDiscovery.from_settings(settings, store, resolver)
    record = await discovery.find("bob@partner.example")     # the stored or newly found key, or None

`find` answers from the key store when it holds an active key; otherwise it asks WKD, then LDAP, stores
what it found (source "wkd" / "ldap") and remembers a miss for `discovery_cache_hours`, so a busy outbound
path does not ask the same domain again for every message. Never raises: a source that fails is a miss.

WKD (draft-koch-openpgp-webkey-service §3.1): the advanced method
`https://openpgpkey.<domain>/.well-known/openpgpkey/<domain>/hu/<z-base-32(SHA-1(local))>?l=<local>` when
`openpgpkey.<domain>` has an address, else the direct method `https://<domain>/.well-known/openpgpkey/hu/
<hash>?l=<local>`. HTTPS with certificate validation (the system's CAs, or `wkd_ca_file`), the address
from our resolver and the name in SNI and Host (as for MTA-STS), no redirects, at most `wkd_max_bytes`,
`wkd_timeout` seconds. Of the certificates served, only one whose user ID names exactly the address is
taken (§3.1: the server may serve several).

LDAP (ldap3): `ldap_url`, `ldap_base`, `ldap_filter` with `{address}` (escaped, RFC 4515), the armored or
binary key in `ldap_attribute` (e.g. pgpKey). Anonymous bind; ldaps:// for TLS.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx

from mailbastion.crypto import openpgp
from mailbastion.crypto.keystore import KeyRecord, KeyStore, address_dir_name
from mailbastion.private_files import private_dir, write_private

__all__ = ["KeyDiscovery", "LdapSource", "WkdClient", "wkd_hash", "wkd_urls"]

log = logging.getLogger("mailbastion.crypto")

_ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"


def wkd_hash(local: str) -> str:
    """z-base-32 of SHA-1 of the lower-cased local part (§3.1)."""
    digest = hashlib.sha1(local.lower().encode("utf-8")).digest()
    bits = int.from_bytes(digest, "big")
    return "".join(_ZBASE32[(bits >> (160 - 5 * (i + 1))) & 31] for i in range(32))


def wkd_urls(address: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """((host, path) of the advanced method, (host, path) of the direct method)."""
    from urllib.parse import quote

    local, _, domain = address.rpartition("@")
    domain = domain.lower()
    h, q = wkd_hash(local), quote(local, safe="")
    return ((f"openpgpkey.{domain}", f"/.well-known/openpgpkey/{domain}/hu/{h}?l={q}"),
            (domain, f"/.well-known/openpgpkey/hu/{h}?l={q}"))


class AddressResolver(Protocol):
    async def lookup(self, name: str, rdtype: str) -> Any: ...


class WkdClient:
    def __init__(self, resolver: AddressResolver, *, ssl_context: ssl.SSLContext | None = None, timeout: float = 10.0,
                 max_bytes: int = 256 * 1024, https_port: int = 443) -> None:
        self.resolver = resolver
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.https_port = https_port  # 443; tests serve elsewhere on loopback

    async def _addresses(self, host: str) -> list[str]:
        out: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                out += list((await self.resolver.lookup(host, rdtype)).records)
            except Exception:  # noqa: BLE001 - a failed lookup is no address
                continue
        return out

    async def _get(self, host: str, path: str, ip: str) -> bytes | None:
        literal = f"[{ip}]" if ":" in ip else ip
        async with httpx.AsyncClient(verify=self.ssl_context, follow_redirects=False, trust_env=False,
                                     timeout=self.timeout) as client:
            request = client.build_request("GET", f"https://{literal}:{self.https_port}{path}",
                                           headers={"Host": host, "Accept-Encoding": "identity"},
                                           extensions={"sni_hostname": host})
            response = await client.send(request, stream=True)
            try:
                if response.status_code != 200:
                    return None
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise ValueError(f"WKD answer from {host} larger than {self.max_bytes} bytes")
                return bytes(body)
            finally:
                await response.aclose()

    async def lookup(self, address: str) -> bytes | None:
        """The armored certificate for `address` from WKD, or None. Raises nothing."""
        advanced, direct = wkd_urls(address)
        try:
            async with asyncio.timeout(self.timeout):
                ips = await self._addresses(advanced[0])
                host, path = advanced if ips else direct
                if not ips:
                    ips = await self._addresses(direct[0])
                if not ips:
                    return None
                data = await self._get(host, path, ips[0])
        except (OSError, httpx.HTTPError, ValueError, TimeoutError, ssl.SSLError) as exc:
            log.info("wkd: %s: %s", address, exc)
            return None
        if not data:
            return None
        return _matching_cert(data, address)


def _matching_cert(data: bytes, address: str) -> bytes | None:
    """The armored certificate among `data`'s whose user IDs name `address` exactly, or None."""
    try:
        ps = openpgp._ps()
        certs = ps.Cert.split_bytes(data)
    except Exception:  # noqa: BLE001 - not OpenPGP data
        return None
    for cert in certs:
        armored = str(cert).encode()
        try:
            info = openpgp.key_info(armored)
        except openpgp.OpenPgpError:
            continue
        if address.lower() in info.addresses and not info.revoked and not info.has_secret:
            return armored
    return None


class LdapSource:
    """One LDAP server's attribute holding OpenPGP keys (ldap3, synchronous: run in a thread)."""

    def __init__(self, url: str, base: str, *, attribute: str = "pgpKey", filter_template: str = "(mail={address})",
                 timeout: float = 10.0) -> None:
        self.url, self.base, self.attribute, self.filter_template, self.timeout = (url, base, attribute,
                                                                                   filter_template, timeout)

    def lookup_sync(self, address: str) -> bytes | None:
        import ldap3  # type: ignore[import-untyped]
        from ldap3.utils.conv import escape_filter_chars  # type: ignore[import-untyped]

        seconds = max(1, math.ceil(self.timeout))  # ldap3 packs its socket timeouts as integers
        server = ldap3.Server(self.url, connect_timeout=seconds, get_info=ldap3.NONE)
        conn = ldap3.Connection(server, auto_bind=True, receive_timeout=seconds, read_only=True)
        try:
            conn.search(self.base, self.filter_template.format(address=escape_filter_chars(address)),
                        attributes=[self.attribute], size_limit=10, time_limit=int(self.timeout))
            for entry in conn.response or []:
                for value in (entry.get("raw_attributes") or {}).get(self.attribute, []):
                    cert = _matching_cert(value if isinstance(value, bytes) else str(value).encode(), address)
                    if cert:
                        return cert
        finally:
            conn.unbind()
        return None

    async def lookup(self, address: str) -> bytes | None:
        try:
            return await asyncio.to_thread(self.lookup_sync, address)
        except Exception as exc:  # noqa: BLE001 - an LDAP failure is a miss, logged
            log.info("ldap: %s: %s", address, exc)
            return None


Source = Callable[[str], Awaitable[bytes | None]]


class KeyDiscovery:
    def __init__(self, store: KeyStore, sources: list[tuple[str, Source]], *, miss_ttl: float = 86400.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.sources = sources
        self.miss_ttl = miss_ttl
        self.clock = clock
        self.misses = store.key_dir / "lookups"

    @classmethod
    def from_settings(cls, settings: Any, store: KeyStore, resolver: AddressResolver, *,
                      https_port: int = 443) -> KeyDiscovery:
        e = settings.encryption
        sources: list[tuple[str, Source]] = []
        if e.wkd:
            ctx = ssl.create_default_context(cafile=str(settings.path(e.wkd_ca_file)) if e.wkd_ca_file else None)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            sources.append(("wkd", WkdClient(resolver, ssl_context=ctx, timeout=e.wkd_timeout,
                                             max_bytes=e.wkd_max_bytes, https_port=https_port).lookup))
        if e.ldap_url:
            sources.append(("ldap", LdapSource(e.ldap_url, e.ldap_base, attribute=e.ldap_attribute,
                                               filter_template=e.ldap_filter, timeout=e.ldap_timeout).lookup))
        return cls(store, sources, miss_ttl=e.discovery_cache_hours * 3600)

    def _miss_path(self, address: str) -> Any:
        domain, local = address_dir_name(address)
        return self.misses / f"{local}@{domain}.json"

    def _recent_miss(self, address: str) -> bool:
        try:
            data = json.loads(self._miss_path(address).read_bytes())
            return float(data["checked"]) + self.miss_ttl > self.clock()
        except (OSError, ValueError, KeyError):
            return False

    async def find(self, address: str) -> KeyRecord | None:
        address = address.lower()
        active = self.store.active(address, now=self.clock())
        if active:
            return active[0]
        if self._recent_miss(address):
            return None
        for name, source in self.sources:
            armored = await source(address)
            if armored is None:
                continue
            info = openpgp.key_info(armored)
            record = KeyRecord(address=address, kind="openpgp", fingerprint=info.fingerprint, public=armored,
                               source=name, created=self.clock(),
                               expires=info.expires.timestamp() if info.expires else None)
            log.info("%s: found the OpenPGP key of %s (%s)", name, address, info.fingerprint[:16])
            return self.store.put(record)
        try:
            private_dir(self.misses)
            write_private(self._miss_path(address), json.dumps({"checked": self.clock()}).encode())
        except OSError:
            pass
        return None

    async def find_all(self, addresses: list[str]) -> dict[str, KeyRecord | None]:
        results = await asyncio.gather(*(self.find(a) for a in addresses))
        return dict(zip(addresses, results, strict=True))
