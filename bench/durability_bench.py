#!/usr/bin/env python3
"""The long SIGKILL durability run (issue 9's figure): 500 messages from 16 clients, three SIGKILLs of the
whole server with a restart after each, then every acknowledged message must be in the mailbox.

    PYTHONPATH=src .venv/bin/python bench/durability_bench.py [--messages 500] [--clients 16] [--kills 3]
                                                              [--workers 1]

Prints one line: lost (acknowledged but never delivered; must be 0), duplicates (one queue entry
delivered twice; 0 with the exactly-once MDA), messages the client re-sent after a kill cut its answer off
(SMTP's own at-least-once), and the time taken. Exits 1 when anything was lost or duplicated. The
scenario is mailbastion.testing.sigkill, the same as tests/flows/test_durability.py (short there).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1, help="server.workers (acceptor processes)")
    ap.add_argument("--keep", action="store_true", help="keep the deployment folder (its path is printed)")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from mailbastion.testing.deployment import Deployment
    from mailbastion.testing.dns_server import DnsTestServer
    from mailbastion.testing.sigkill import run_sigkill_scenario

    work = Path(tempfile.mkdtemp(prefix="mb-durability-"))
    with DnsTestServer() as dns:
        d = Deployment(work, dns=dns, settings={("antivirus.clamav", "enabled"): "false",
                                                ("antivirus", "stale_policy"): '"alarm_only"',  # no clamd here
                                                ("server", "workers"): str(args.workers),
                                                ("smtp", "max_connections_per_client"): str(4 * args.clients)})
        d.init()
        d.mb("account", "add", "alice@example.test", "--password-stdin", input="Correct-Horse-Battery-9\n")
        d.start()
        try:
            report = run_sigkill_scenario(d, "alice@example.test", messages=args.messages, clients=args.clients,
                                          kills=args.kills, settle_seconds=300)
        finally:
            d.stop()
    print(report.line() + (f" (workers={args.workers})" if args.workers > 1 else ""))
    if report.lost:
        print(f"lost refs: {report.lost[:50]}")
    if args.keep:
        print(f"deployment kept in {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 1 if report.lost or report.duplicates or report.acknowledged != args.messages else 0


if __name__ == "__main__":
    raise SystemExit(main())
