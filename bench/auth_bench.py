"""Per-message cost of sender authentication (SPF + DKIM + DMARC, DNS cached) on one core.

    .venv/bin/python bench/auth_bench.py [--messages 300] [--rounds 3] [--body-kib 4]

A DnsTestServer on loopback serves the zones (no internet); one warm-up pass fills the resolver's TTL
cache, after which no query reaches the network (the bench checks this). Figures, in messages/second of
one process pinned to one CPU:

  ours, spf+dkim+dmarc   our three checks through the real Pipeline (From parsed, since DMARC needs it)
  ours, all auth checks  + ARC and the Authentication-Results header (the whole feature)
  dkimpy alone           dkim.DKIM(raw).verify() for every signature, keys from an in-memory dict
  pyspf alone            spf.query(...).check() with pyspf's own answer cache pre-filled
  dkimpy + pyspf alone   the two libraries back to back: the floor our checks are built on

Messages: --messages distinct ones from 20 domains (SPF `ip4 + include:` two levels deep, DMARC
p=reject), each DKIM-signed rsa-sha256 2048 (one in four also ed25519), --body-kib of body.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "auth"))

import dkim
import spf as pyspf
from authkit import Rig, ed_key, message, rsa_key

from mailbastion.auth.dns_bridge import DnsSnapshot
from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo
from mailbastion.core.stages import Stage
from mailbastion.dns.resolver import DnsResolver
from mailbastion.policy.check import CheckContext
from mailbastion.policy.pipeline import Pipeline
from mailbastion.testing.dns_server import DnsTestServer

DOMAINS = 20
CLIENT = "192.0.2.10"


def _pin_one_core() -> str:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"


def _corpus(rig: Rig, n: int, body_kib: int) -> list[tuple[bytes, str]]:
    rig.dns.add("_spf.relay.test", "TXT", f"v=spf1 ip4:{CLIENT}/32 include:_spf2.relay.test -all")
    rig.dns.add("_spf2.relay.test", "TXT", "v=spf1 ip4:203.0.113.0/24 -all")
    keys = []
    for i in range(DOMAINS):
        d = f"d{i}.test"
        rig.dns.add(d, "TXT", "v=spf1 ip4:198.51.100.0/24 include:_spf.relay.test -all")
        rig.dns.add(f"_dmarc.{d}", "TXT", "v=DMARC1; p=reject; rua=mailto:r@" + d)
        keys.append((rig.publish(rsa_key(d, "r")), rig.publish(ed_key(d, "e"))))
    body = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 18 + "\r\n") * max(1, body_kib)
    out = []
    for j in range(n):
        d = f"d{j % DOMAINS}.test"
        rk, ek = keys[j % DOMAINS]
        raw = message(f"User {j} <u{j}@{d}>", subject=f"report {j}", body=body[: body_kib * 1024])
        raw = rk.sign(raw)
        if j % 4 == 0:
            raw = ek.sign(raw)
        out.append((raw, f"bounce{j}@{d}"))
    return out


async def _ours(pipe: Pipeline, corpus: list[tuple[bytes, str]]) -> None:
    for raw, sender in corpus:
        env = Envelope(sender=parse_address(sender), helo="mail.relay.test")
        ctx = CheckContext(Stage.DATA, PeerInfo(ip=CLIENT, helo="mail.relay.test"), env, message=SpooledMessage(raw))
        outcome = await pipe.run_stage(ctx)
        verdict = pipe.decide(outcome.symbols, outcome.forced, outcome.edits)
        assert "DMARC_POLICY_ALLOW" in verdict.symbol_names, verdict.describe()


def _dkimpy(corpus: list[tuple[bytes, str]], keys: dict[bytes, bytes]) -> None:
    def txt(name: bytes, timeout: float = 5) -> bytes | None:
        return keys.get(name)

    for raw, _ in corpus:
        d = dkim.DKIM(raw)
        n = sum(1 for k, _v in d.headers if k.lower() == b"dkim-signature")
        for i in range(n):
            assert d.verify(idx=i, dnsfunc=txt)


def _pyspf_cache(snapshot: DnsSnapshot) -> dict[tuple[str, str], list[object]]:
    cache: dict[tuple[str, str], list[object]] = {}
    for (name, rtype), ans in snapshot.answers.items():
        if ans is None:
            continue
        if rtype == "TXT":
            cache[(name, rtype)] = [(r.encode(),) for r in ans.records]
        elif rtype == "MX":
            cache[(name, rtype)] = [(int(r.split()[0]), r.split()[1]) for r in ans.records]
        else:
            cache[(name, rtype)] = list(ans.records)
    return cache


def _pyspf(corpus: list[tuple[bytes, str]], cache: dict[tuple[str, str], list[object]]) -> None:
    for _raw, sender in corpus:
        q = pyspf.query(i=CLIENT, s=sender, h="mail.relay.test")
        q.cache = dict(cache)
        res = q.check()[0]
        assert res == "pass", res


def _rate(fn, rounds: int, n: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    best = min(times)
    return n / best, best / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--body-kib", type=int, default=4)
    args = ap.parse_args()
    pinned = _pin_one_core()
    with DnsTestServer() as server:
        resolver = DnsResolver([server.host], port=server.port, timeout=2.0)
        rig = Rig(server, resolver)
        corpus = _corpus(rig, args.messages, args.body_kib)
        full = rig.pipeline()
        core = Pipeline([c for c in full.checks if c.name in ("from_header", "spf", "dkim", "dmarc")], full.scorer)
        asyncio.run(_ours(full, corpus))  # warm-up: fills the TTL cache
        warm_queries = resolver.queries
        # Everything pyspf and dkimpy need, in their own in-memory forms.
        snapshot = DnsSnapshot()
        for key in list(resolver._cache):
            snapshot.answers[key] = resolver._cache[key][1]
        keys = {f"{n}.".encode(): a.records[0].encode() for (n, t), a in snapshot.answers.items()
                if a is not None and "_domainkey" in n and a.records}
        spf_cache = _pyspf_cache(snapshot)

        def ours(pipe: Pipeline):  # type: ignore[no-untyped-def]
            return lambda: asyncio.run(_ours(pipe, corpus))

        n = len(corpus)
        rows = [
            ("ours, spf+dkim+dmarc", _rate(ours(core), args.rounds, n)),
            ("ours, all auth checks", _rate(ours(full), args.rounds, n)),
            ("dkimpy alone", _rate(lambda: _dkimpy(corpus, keys), args.rounds, n)),
            ("pyspf alone", _rate(lambda: _pyspf(corpus, spf_cache), args.rounds, n)),
            ("dkimpy + pyspf alone", _rate(lambda: (_dkimpy(corpus, keys), _pyspf(corpus, spf_cache)),
                                           args.rounds, n)),
        ]
        assert resolver.queries == warm_queries, "a measured pass reached the network"
    sigs = statistics.mean(raw.count(b"DKIM-Signature:") for raw, _ in corpus)
    print(f"auth bench: {n} messages, {args.body_kib} KiB body, {sigs:.2f} DKIM signatures/message, "
          f"{DOMAINS} domains, DNS cached (0 network queries measured); CPU time, best of {args.rounds}; {pinned}")
    print(f"{'':24} {'msgs/s':>9} {'us/msg':>9}")
    for name, (rate, us) in rows:
        print(f"{name:24} {rate:9.0f} {us:9.0f}")


if __name__ == "__main__":
    main()
