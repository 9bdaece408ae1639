"""`server.workers = 2`: SMTP acceptor processes, one queue manager; the MDA in its own process when
the all-in-one delivers over LMTP (`lmtp.direct = false`), in the parent when it delivers directly.

Robust on a slow, busy machine: every wait is on a condition (the server's readiness, its children, the
mailbox), bounded generously; none is a fixed sleep. The MDA process must listen before the queue manager
delivers, and a refused connection to it is retried within seconds, never on the Internet back-off."""

import os
import time
from pathlib import Path

import pytest
from flow_messages import business_message

from mailbastion.testing.deployment import Deployment
from mailbastion.testing.dns_server import DnsTestServer


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid and b"serve" in Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0"):
                    out.append(int(d))  # the server's own processes (not a short-lived `av status` the portal runs)
            except OSError:
                continue
    return out


def _wait_children(pid: int, count: int, timeout: float = 60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (children := _children(pid)) and len(children) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return children


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "lmtp"])
def test_worker_processes_deliver_and_stop_together(tmp_path: Path, direct: bool) -> None:
    with DnsTestServer() as dns:
        settings = {("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"',
                    ("lmtp", "direct"): "true" if direct else "false", ("server", "workers"): "2"}
        if direct:
            # The acceptors commit in processes of their own: the queue manager hears of each message through
            # the spool's wake-up FIFO, not at its next full scan, which here comes only after the wait below.
            settings[("spool", "scan_interval_seconds")] = "600"
        d = Deployment(tmp_path, dns=dns, settings=settings)
        d.init()
        d.start()  # returns once serve printed its ready line and an acceptor greets
        assert d.proc is not None
        parent = d.proc.pid
        expected = 2 if direct else 3  # two SMTP acceptors, and the MDA unless it is in the parent
        try:
            children = _wait_children(parent, expected)  # forks happen before serve says it is ready
            assert len(children) == expected, children
            for n in range(10):
                assert d.send("carol@partner.example", ["postmaster@example.test"],
                              business_message(to="postmaster@example.test", n=n)) == {}
            # 120 s is less than the Internet back-off's first step (300 s): a refused MDA put on it fails here
            got = d.wait_delivered("postmaster@example.test", 10, timeout=120)
            assert len(got) == 10
            log = d.log()
            if direct:  # no LMTP link: the queue manager writes through the MDA in its own process
                assert "to the MDA in this process (lmtp.direct)" in log
                assert "MDA answers on" not in log
            else:  # the queue manager waited for the MDA process (bounded) before delivering
                assert "MDA answers on" in log or "queue manager starting anyway" in log
        finally:
            code = d.stop(timeout=120)
        assert code == 0
        for pid in children:  # no orphan keeps a port or the spool
            stat = Path(f"/proc/{pid}/stat")
            assert not stat.exists() or "Z" in stat.read_text().rsplit(")", 1)[1].split()[0]


def _gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return "Z" in stat.read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True


def test_children_stop_when_serve_is_killed(tmp_path: Path) -> None:
    """A parent gone without stopping them (SIGKILL, a start that failed after the fork): the acceptors and
    the MDA stop by themselves; an orphan would accept mail no queue manager delivers, and keep the ports."""
    import signal

    with DnsTestServer() as dns:
        d = Deployment(tmp_path, dns=dns, settings={("antivirus.clamav", "enabled"): "false",
                                                    ("antivirus", "stale_policy"): '"alarm_only"',
                                                    ("lmtp", "direct"): "false",  # the MDA in a child too
                                                    ("server", "workers"): "2"})
        d.init()
        d.start()
        assert d.proc is not None
        children = _wait_children(d.proc.pid, 3)
        assert len(children) == 3, children
        os.kill(d.proc.pid, signal.SIGKILL)
        d.proc.wait(60)
        deadline = time.monotonic() + 120
        while not all(_gone(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        alive = [pid for pid in children if not _gone(pid)]
        for pid in alive:
            os.kill(pid, signal.SIGKILL)  # leave nothing behind, then fail
        assert alive == []
        assert "the serve process that started it is gone; stopping" in d.log()
