"""CPU of inbound DKIM and ARC verification per message (DkimVerifier.verify + verify_arc), in process.

    git show main:src/mailbastion/auth/dkim_verify.py > /tmp/dkim_verify_main.py
    PYTHONPATH=src .venv/bin/python bench/dkim_bench.py [--baseline /tmp/dkim_verify_main.py] [--rounds 5] [--arc]

Messages: the anchors' corpus (bench/.work/anchor/corpus, made by bench/message_path.py; its manifest
says which are DKIM-signed), keys served from its dns-local-data.conf by a DnsTestServer on loopback.
With --arc each message is also ARC-sealed (one instance, by example.com's corpus key, as a forwarder
would) before the run, so verify_arc has a chain to check. One warm-up pass fills the resolver's TTL
cache; then each round times every message with time.process_time and the best round is printed, in µs per message.

--baseline FILE loads another dkim_verify.py (e.g. main's) as a second module and alternates its rounds
with the current one, so both are measured in the same conditions; the results of both are compared
message by message (they must be equal). On a shared machine compare figures within one run only.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import re
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import dkim

from mailbastion.auth import dkim_verify
from mailbastion.dns.resolver import DnsResolver
from mailbastion.testing.dns_server import DnsTestServer

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "bench" / ".work" / "anchor" / "corpus"
_TXT = re.compile(r"""^local-data: '(\S+) \d+ IN TXT (".*")'$""")  # the value as quoted strings


def _zone(server: DnsTestServer, conf: Path) -> None:
    for line in conf.read_text().splitlines():
        m = _TXT.match(line.strip())
        if m and "._domainkey." in m.group(1):
            server.add(m.group(1).rstrip("."), "TXT", m.group(2))


def _messages(corpus: Path, limit: int, arc: bool) -> list[bytes]:
    manifest = json.loads((corpus / "manifest.json").read_text())
    out = []
    for entry in manifest["messages"][:limit]:
        raw = (corpus / entry["file"]).read_bytes()
        if arc:
            domain = "example.com"  # a forwarder's seal: the corpus has keys for example.com and example.org
            key = (corpus / "keys" / f"{domain}.bench1.key").read_bytes()
            raw = f"Authentication-Results: mx.{domain}; dkim=pass header.d={domain}\r\n".encode() + raw
            raw = b"".join(dkim.arc_sign(raw, b"bench1", domain.encode(), key, f"mx.{domain}".encode())) + raw
        out.append(raw)
    return out


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("baseline_dkim_verify", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def _pass(verifier: Any, messages: list[bytes]) -> tuple[float, list[tuple[Any, Any]]]:
    results = []
    t0 = time.process_time()
    for raw in messages:
        results.append((await verifier.verify(raw), await verifier.verify_arc(raw)))
    return time.process_time() - t0, results


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--arc", action="store_true", help="ARC-seal every message first")
    ap.add_argument("--baseline", type=Path, help="another dkim_verify.py to measure alongside")
    args = ap.parse_args()
    if not (args.corpus / "manifest.json").is_file():
        sys.exit(f"no corpus at {args.corpus}: make it with bench/message_path.py first")
    messages = _messages(args.corpus, args.messages, args.arc)
    kib = sum(map(len, messages)) / len(messages) / 1024
    with DnsTestServer() as server:
        _zone(server, args.corpus / "dns-local-data.conf")
        resolver = DnsResolver([server.host], port=server.port, timeout=2.0)
        modules = {"current": dkim_verify}
        if args.baseline:
            modules = {"baseline": _load(args.baseline), **modules}
        verifiers = {name: m.DkimVerifier(resolver) for name, m in modules.items()}
        first: dict[str, list[tuple[Any, Any]]] = {}
        for name, v in verifiers.items():  # warm-up: fills the resolver's cache
            _, first[name] = await _pass(v, messages)
        counts: dict[str, int] = {}
        for dk, arc in first["current"]:
            for s in dk.signatures:
                counts[f"dkim {s.result}"] = counts.get(f"dkim {s.result}", 0) + 1
            counts[f"arc {arc.cv}"] = counts.get(f"arc {arc.cv}", 0) + 1
        if "baseline" in first:
            same = [repr(a) == repr(b) for a, b in zip(first["baseline"], first["current"], strict=True)]
            print(f"results equal to the baseline's: {sum(same)}/{len(same)}")
            if not all(same):
                sys.exit("results differ")
        best = {name: float("inf") for name in verifiers}
        for _ in range(args.rounds):
            for name, v in verifiers.items():
                spent, _ = await _pass(v, messages)
                best[name] = min(best[name], spent)
    print(f"{len(messages)} messages, {kib:.1f} KiB on average{', ARC-sealed' if args.arc else ''}; "
          f"results: {dict(sorted(counts.items()))}")
    for name, spent in best.items():
        print(f"{name:9s} {spent / len(messages) * 1e6:8.1f} µs/message (best of {args.rounds} rounds)")
    if "baseline" in best:
        print(f"current / baseline = {best['current'] / best['baseline']:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
