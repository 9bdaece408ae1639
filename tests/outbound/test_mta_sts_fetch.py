"""MTA-STS policies fetched over HTTPS from a test server (RFC 8461 §3.3, §5.1): verified, size- and
type-checked, never through a redirect, cached on disk across a restart, refreshed when the id changes,
kept when a refresh fails."""

from __future__ import annotations

from pathlib import Path

from outbound_world import STS_POLICY, World

from mailbastion.dns.resolver import DnsResolver
from mailbastion.outbound.mta_sts import MtaStsCache, MtaStsFetcher, https_context
from mailbastion.testing.https_server import HttpsTestServer

PATH = "/.well-known/mta-sts.txt"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def fetcher(world: World, cache: Path, *, clock: Clock | None = None, port: int | None = None,
            max_bytes: int = 65536) -> MtaStsFetcher:
    dns = DnsResolver([world.plain.host], port=world.plain.port, timeout=5, cache_size=0)
    return MtaStsFetcher(dns, MtaStsCache(cache), ssl_context=https_context(world.ca.cert_path), timeout=10,
                         https_port=port or world.web.port, max_bytes=max_bytes, clock=clock or Clock())


def publish(world: World, domain: str, ident: str, body: str | None = None, **route: object) -> None:
    world.plain.remove(f"_mta-sts.{domain}")
    world.plain.add(f"_mta-sts.{domain}", "TXT", f"v=STSv1; id={ident}")
    world.plain.remove(f"mta-sts.{domain}")
    world.plain.add(f"mta-sts.{domain}", "A", "127.0.0.1")
    world.web.serve(f"mta-sts.{domain}", PATH, body if body is not None else
                    STS_POLICY.format(mode="enforce", mx=f"mx.{domain}"), **route)  # type: ignore[arg-type]


async def test_policy_is_cached_on_disk_and_survives_a_restart(world: World, tmp_path: Path) -> None:
    publish(world, "f1.test", "one")
    clock = Clock()
    found = await fetcher(world, tmp_path, clock=clock).policy("f1.test")
    assert found.policy is not None and found.policy.mode == "enforce" and found.policy.id == "one"
    assert (tmp_path / "f1.test.json").stat().st_mode & 0o777 == 0o600
    gets = sum(1 for r in world.web.requests if r[1] == "mta-sts.f1.test")
    # A new process (new fetcher, same folder): the id did not change, so no fetch, same policy.
    world.web.serve("mta-sts.f1.test", PATH, "broken", status=500)
    again = await fetcher(world, tmp_path, clock=clock).policy("f1.test")
    assert again.policy == found.policy and sum(1 for r in world.web.requests if r[1] == "mta-sts.f1.test") == gets
    # The TXT record goes away: the cached policy stays in force until max_age (§5.1)...
    world.plain.remove("_mta-sts.f1.test")
    assert (await fetcher(world, tmp_path, clock=clock).policy("f1.test")).policy == found.policy
    # ...and not after.
    clock.now += 86401
    assert (await fetcher(world, tmp_path, clock=clock).policy("f1.test")).policy is None


async def test_a_new_id_refreshes_and_a_failed_refresh_keeps_the_cached_policy(world: World, tmp_path: Path) -> None:
    publish(world, "f2.test", "one")
    f = fetcher(world, tmp_path)
    assert (await f.policy("f2.test")).policy.mode == "enforce"  # type: ignore[union-attr]
    publish(world, "f2.test", "two", STS_POLICY.format(mode="testing", mx="mx.f2.test"))
    refreshed = (await f.policy("f2.test")).policy
    assert refreshed is not None and (refreshed.id, refreshed.mode) == ("two", "testing")
    publish(world, "f2.test", "three", "gone", status=404)
    kept = await f.policy("f2.test")
    assert kept.policy == refreshed and kept.result_type == "sts-policy-fetch-error"


async def test_redirects_are_not_followed(world: World, tmp_path: Path) -> None:
    publish(world, "f3.test", "r", "", status=302, headers={"Location": "https://mta-sts.f1.test" + PATH})
    found = await fetcher(world, tmp_path).policy("f3.test")
    assert found.policy is None and found.result_type == "sts-policy-fetch-error" and "302" in found.error


async def test_oversized_wrongly_typed_and_invalid_policies_are_refused(world: World, tmp_path: Path) -> None:
    publish(world, "f4.test", "big", STS_POLICY.format(mode="enforce", mx="mx.f4.test") + "x: " + "y" * 5000 + "\n")
    found = await fetcher(world, tmp_path, max_bytes=2048).policy("f4.test")
    assert found.policy is None and "larger than 2048" in found.error
    publish(world, "f5.test", "html", STS_POLICY.format(mode="enforce", mx="mx.f5.test"), content_type="text/html")
    found = await fetcher(world, tmp_path).policy("f5.test")
    assert found.policy is None and found.result_type == "sts-policy-invalid"
    publish(world, "f6.test", "bad", "version: STSv1\nmode: enforce\nmax_age: 10\n")  # no mx
    found = await fetcher(world, tmp_path).policy("f6.test")
    assert found.policy is None and found.result_type == "sts-policy-invalid"


async def test_policy_host_with_an_untrusted_certificate_is_a_webpki_failure(world: World, tmp_path: Path) -> None:
    rogue_cert = world.rogue.issue(tmp_path / "rogue-web", ["mta-sts.f7.test"])
    with HttpsTestServer(rogue_cert.chain_path, rogue_cert.key_path) as rogue:
        publish(world, "f7.test", "x")
        rogue.serve("mta-sts.f7.test", PATH, STS_POLICY.format(mode="enforce", mx="mx.f7.test"))
        found = await fetcher(world, tmp_path, port=rogue.port).policy("f7.test")
    assert found.policy is None and found.result_type == "sts-webpki-invalid", found.error
