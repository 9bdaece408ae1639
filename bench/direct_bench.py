"""CPU per delivery of the hop from the queue manager to the MDA: over the LMTP link (mutual TLS on
loopback, the gateway's client, the MDA's engine) against direct delivery in the same process
(`mailbox/direct.py`, the all-in-one's default). Both sides run in this one process, under uvloop as
`serve` runs, so `time.process_time()` counts the client, the server, TLS and the Maildir writes with
their fsyncs alike; the two ways alternate, several rounds, into one MDA (a directory on SQLite,
Maildirs in a temporary directory). Messages are the anchors' corpus when present (`bench/.work/anchor/
corpus`, see bench/message_path.py), else a 5 KB message. Prints µs of CPU per message and the ratio.

    .venv/bin/python bench/direct_bench.py [--messages 1000] [--in-flight 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mailbastion.apps.mda import build_mda  # noqa: E402
from mailbastion.config.schema import Settings  # noqa: E402
from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest  # noqa: E402
from mailbastion.delivery.lmtp_client import LmtpDeliveryAgent  # noqa: E402
from mailbastion.directory import Directory  # noqa: E402
from mailbastion.mailbox.direct import DirectAgent  # noqa: E402
from mailbastion.pki import make_deployment_pki  # noqa: E402
from mailbastion.tls_policy import client_context  # noqa: E402

USERS = [f"user{i}@example.org" for i in range(20)]


def corpus(limit: int) -> list[bytes]:
    folder = ROOT / "bench" / ".work" / "anchor" / "corpus"
    files = sorted(p for p in folder.rglob("*.eml"))[:limit] if folder.is_dir() else []
    if files:
        return [p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for p in files]
    print("(no anchors' corpus under bench/.work/anchor/corpus: a generated 5 KB message)")
    body = b"".join(b"line %d of a plain message, about seventy characters long, to fill it\r\n" % i
                    for i in range(70))
    return [b"From: a@remote.example\r\nTo: user0@example.org\r\nSubject: bench\r\n\r\n" + body]


async def main(args: argparse.Namespace) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="direct-bench-") as tmp:
        root = Path(tmp)
        pki = make_deployment_pki(root / "tls", "localhost")
        settings = Settings.model_validate({
            "server": {"hostname": "mda.test", "data_dir": str(root)},
            "tls": {"ca": str(pki["ca.crt"]), "mda_cert": str(pki["mda.crt"]), "mda_key": str(pki["mda.key"])},
            "lmtp": {"listen": "127.0.0.1:0"},
            "directory": {"url": f"sqlite:///{root / 'directory.db'}", "recipient_map": str(root / "map.json")},
            "mailbox": {"root": str(root / "mail"), "default_quota_bytes": 0},
        })
        directory = Directory.from_settings(settings)
        directory.add_domain("example.org", by="bench")
        for user in USERS:
            directory.add_account(user, None, "bench")
        server = build_mda(settings)  # the directory cache, as `serve` builds it: no ORM query per recipient
        await server.start()
        ctx = client_context(ca=pki["ca.crt"], cert=pki["gateway-client.crt"], key=pki["gateway-client.key"])
        ways = {"LMTP link (mutual TLS)": LmtpDeliveryAgent("127.0.0.1", server.port, ssl_context=ctx,
                                                            max_idle=args.in_flight),
                "direct (same process)": DirectAgent(server.handler)}
        messages = corpus(args.messages)
        ids = itertools.count()

        def request(i: int) -> DeliveryRequest:
            return DeliveryRequest(f"0BE0C4{next(ids):012X}", "sender@remote.example",
                                   (DeliveryRecipient(USERS[i % len(USERS)]),), messages[i % len(messages)])

        async def run(agent: object, count: int) -> float:
            queue = iter(range(count))

            async def lane() -> None:
                for i in queue:
                    out = await agent.deliver(request(i))  # type: ignore[attr-defined]
                    if not all(o.reply.code == 250 for o in out.values()):
                        raise SystemExit(f"not delivered: {out}")

            t0 = time.process_time()
            await asyncio.gather(*(lane() for _ in range(args.in_flight)))
            return time.process_time() - t0

        try:
            for agent in ways.values():  # warm-up: sessions open, caches filled
                await run(agent, 50)
            per: dict[str, list[float]] = {name: [] for name in ways}
            for r in range(args.rounds):
                for name, agent in ways.items():
                    used = await run(agent, args.messages)
                    per[name].append(used / args.messages * 1e6)
                    print(f"round {r + 1}  {name:24s} {per[name][-1]:7.1f} µs CPU per message")
            link, direct = per.values()
            print("direct ÷ link per round: " + ", ".join(f"{d / k:.2f}" for d, k in zip(direct, link, strict=True))
                  + f"; best ÷ best {min(direct) / min(link):.2f}")
        finally:
            await ways["LMTP link (mutual TLS)"].close()  # type: ignore[attr-defined]
            await server.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--in-flight", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(ap.parse_args()))
