"""`server.workers = 2`: SMTP acceptor processes and the MDA in its own process, one queue manager."""

import os
import time
from pathlib import Path

from flow_messages import business_message

from mailbastion.testing.deployment import Deployment
from mailbastion.testing.dns_server import DnsTestServer


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                out.append(int(d))
    return out


def test_worker_processes_deliver_and_stop_together(tmp_path: Path) -> None:
    with DnsTestServer() as dns:
        d = Deployment(tmp_path, dns=dns, settings={("antivirus.clamav", "enabled"): "false",
        ("antivirus", "stale_policy"): '"alarm_only"',
                                                    ("server", "workers"): "2"})
        d.init()
        d.start()
        assert d.proc is not None
        parent = d.proc.pid
        try:
            time.sleep(1.0)
            children = _children(parent)
            assert len(children) == 3, children  # two SMTP acceptors and the MDA
            for n in range(10):
                assert d.send("carol@partner.example", ["postmaster@example.test"],
                              business_message(to="postmaster@example.test", n=n)) == {}
            got = d.wait_delivered("postmaster@example.test", 10)
            assert len(got) == 10
        finally:
            code = d.stop()
        assert code == 0
        for pid in children:  # no orphan keeps a port or the spool
            assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2]
