"""Portal page times at scale: 10,000 accounts and 100,000 quarantined messages.

    .venv/bin/python bench/portal_bench.py                  # defaults: 10,000 accounts, 100,000 held, 200 requests a page
    .venv/bin/python bench/portal_bench.py --accounts 2000 --held 20000 --requests 50

A fresh deployment (`mailbastion init` in a temporary folder) is filled directly: accounts by SQL in one
transaction (one precomputed argon2id hash: hashing 10,000 passwords measures argon2, not the portal), held
messages as the quarantine store's own files (`msg/<id>.json` + `.eml`, without the store's two fsyncs per
message). Then the portal runs over HTTPS in a thread of its own and one client, signed in as an
administrator (password + TOTP) or as a user, fetches each page in turn and times the whole request
(TLS connection kept alive, response read in full). Prints p50, p95 and max per page, and the one-time
cost of indexing the quarantine. The dashboard's probes are left out (they run in the background and
their cost is the commands' own); its page time is the rendering of the last results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))
sys.path.insert(0, str(SRC.parent / "tests" / "portal"))

PASSWORD = "Correct-Horse-Battery-9"


def fill_accounts(settings: object, n: int) -> None:
    import datetime as dt

    from sqlalchemy import insert, select

    from mailbastion.directory.models import Account, Domain
    from mailbastion.directory.passwords import hash_password
    from mailbastion.directory.store import Directory

    d = Directory.from_settings(settings)  # type: ignore[arg-type]
    digest, now = hash_password(PASSWORD), dt.datetime.now(dt.UTC)
    with d.engine.begin() as conn:
        dom = conn.execute(select(Domain.__table__.c.id).where(Domain.__table__.c.name == "example.test")).scalar_one()
        conn.execute(insert(Account.__table__), [
            {"address": f"user{i:05d}@example.test", "domain_id": dom, "password_hash": digest, "state": "active",
             "quota_bytes": None, "created_at": now, "activated_at": now} for i in range(n)])


def fill_quarantine(root: Path, n: int, accounts: int) -> None:
    msg = root / "msg"
    msg.mkdir(parents=True, exist_ok=True, mode=0o700)
    base = int(time.time()) - n * 10
    for i in range(n):
        qid = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(base + i * 10)) + f"-{i:08x}"
        subject = f"Invoice {i} overdue" if i % 500 == 0 else f"Weekly offer number {i}"
        rcpt = f"user{i % accounts:05d}@example.test"
        raw = (f"From: Shop <news@shop.example>\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\n"
               f"Dear customer,\r\n{'lorem ipsum dolor sit amet ' * 20}\r\n").encode()
        record = {"id": qid, "received_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(base + i * 10)),
                  "client": "192.0.2.7", "sender": "news@shop.example", "recipients": [rcpt], "size": len(raw),
                  "sha256": "", "subject": subject,
                  "verdict": {"action": "quarantine", "score": 11.5, "forced_by": "", "reply": "",
                              "symbols": [{"name": "BAYES_99", "detail": "0.99", "score": 8.0, "group": "bayes"},
                                          {"name": "R_SPF_FAIL", "detail": "", "score": 3.5, "group": "spf"}]},
                  "engines": [], "reasons": ["BAYES_99(0.99)", "R_SPF_FAIL"], "is_malware": i % 97 == 0}
        (msg / f"{qid}.eml").write_bytes(raw)
        (msg / f"{qid}.json").write_text(json.dumps(record))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--held", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    from portal_kit import PortalRunner, csrf_of, enrol_totp, http, sign_in  # tests/portal: the same kit

    from mailbastion.config import load_settings
    from mailbastion.measures.board import MeasureBoard
    from mailbastion.testing.deployment import Deployment, free_port

    tmp = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    port = free_port()
    d = Deployment(tmp, settings={("portal", "listen"): f'"127.0.0.1:{port}"', ("portal", "digest_time"): '""',
                                  ("portal", "public_url"): f'"https://127.0.0.1:{port}"',
                                  ("antivirus.clamav", "enabled"): "false",
                                  ("antivirus", "stale_policy"): '"alarm_only"'})
    d.init()
    settings = load_settings(d.config)
    started = time.perf_counter()
    fill_accounts(settings, args.accounts)
    fill_quarantine(settings.path(settings.antivirus.quarantine.dir), args.held, args.accounts)
    print(f"filled {args.accounts} accounts and {args.held} held messages in {time.perf_counter() - started:.1f}s")
    d.mb("account", "add", "admin@example.test", "--password-stdin", input=PASSWORD + "\n")
    d.mb("account", "role", "admin@example.test", "administrator", "--reason", "bench")
    policy = tmp / "aup.md"  # a policy in effect: its report covers every account (measure 7's admin page)
    policy.write_text(d.mb("aup", "template"))
    d.mb("aup", "publish", str(policy), "--version", "bench-1")

    runner = PortalRunner(settings, measures=MeasureBoard([], ttl=1e9)).start()
    try:
        started = time.perf_counter()
        runner.ctx.qindex.sync()  # the service also starts this in the background; timed here on its own
        print(f"quarantine index built from {args.held} files in {time.perf_counter() - started:.1f}s "
              "(once; later syncs read only what changed)")
        totp = enrol_totp(runner.ctx, "admin@example.test")
        admin = http(runner, d)
        assert sign_in(admin, "admin@example.test", totp=totp).status_code == 303
        user = http(runner, d)
        assert sign_in(user, "user00042@example.test").status_code == 303
        deep = runner.ctx.qindex.search(limit=1000).entries[-1].id  # page 21 of 50
        one = runner.ctx.qindex.search(limit=1).entries[0].id
        pages = [
            ("GET /signin (no session)", http(runner, d), "/signin"),
            ("GET /admin (dashboard)", admin, "/admin"),
            ("GET /admin/accounts", admin, "/admin/accounts"),
            ("GET /admin/accounts?q=user0999", admin, "/admin/accounts?q=user0999"),
            ("GET /admin/accounts?after=user05000", admin, "/admin/accounts?after=user05000%40example.test"),
            ("GET /admin/accounts/<address>", admin, "/admin/accounts/user00042%40example.test"),
            ("GET /admin/quarantine", admin, "/admin/quarantine"),
            ("GET /admin/quarantine?q=invoice", admin, "/admin/quarantine?q=invoice"),
            ("GET /admin/quarantine?q=<no match>", admin, "/admin/quarantine?q=zzzz-nothing"),
            ("GET /admin/quarantine?before=<1000th>", admin, f"/admin/quarantine?before={deep}"),
            ("GET /admin/quarantine/<id>", admin, f"/admin/quarantine/{one}"),
            ("GET /admin/audit", admin, "/admin/audit"),
            ("GET /my/quarantine (user)", user, "/my/quarantine"),
            ("GET /admin/aup (policy report)", admin, "/admin/aup"),
            ("GET /admin/aup?page=25", admin, "/admin/aup?version=bench-1&state=all&page=25"),
            ("GET /admin/training", admin, "/admin/training"),
            ("GET /admin/training?page=25", admin, "/admin/training?show=all&page=25"),
            ("GET /aup (user)", user, "/aup"),
            ("GET /my/training (user)", user, "/my/training"),
        ]
        print(f"\n{'page':42} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  (n={args.requests} each, sequential)")
        for label, client, path in pages:
            client.get(path)  # warm: templates compiled, connection open
            times = []
            for _ in range(args.requests):
                t = time.perf_counter()
                r = client.get(path)
                times.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, (path, r.status_code)
            print(f"{label:42} {statistics.median(times):8.1f} {percentile(times, 95):8.1f} {max(times):8.1f}")
        token = csrf_of(admin.get("/admin/accounts").text)
        times = []
        for i in range(min(args.requests, 50)):
            t = time.perf_counter()
            r = admin.post("/admin/accounts", data={"csrf": token, "address": f"new{i}@example.test", "reason": "bench"})
            times.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 303
        print(f"{'POST /admin/accounts (create, audited)':42} {statistics.median(times):8.1f} "
              f"{percentile(times, 95):8.1f} {max(times):8.1f}  (n={len(times)}; includes the recipient map rewrite)")
    finally:
        runner.stop()
    print(f"\nmachine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; "
          f"python {sys.version.split()[0]}; data in {tmp}")
    subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    main()
