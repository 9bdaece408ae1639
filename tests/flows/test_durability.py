"""Nothing lost: a 250 is a promise, kept across SIGKILL.

While a client sends a few hundred messages, the server is killed with SIGKILL several times and
restarted. At the end, every message that got a 250 is in a mailbox. Messages that got no answer are
sent again, as a real client would, which is how an SMTP message can arrive twice; the test reports
how many did (the goal is none) but only fails on loss.
"""

import re
import smtplib
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from flow_messages import business_message

from mailbastion.testing.deployment import Deployment
from mailbastion.testing.dns_server import DnsTestServer

MESSAGES = 300
KILLS = 4
SENDERS = 4


def _send_all(d: Deployment, todo: list[int], acked: Counter[int], lock: threading.Lock, stop: threading.Event) -> None:
    while not stop.is_set():
        with lock:
            if not todo:
                return
            n = todo.pop(0)
        try:
            with smtplib.SMTP("127.0.0.1", d.smtp_port, local_hostname="mx.partner.example", timeout=15) as s:
                s.sendmail("carol@partner.example", ["alice@example.test"], business_message(n=n))
            with lock:
                acked[n] += 1
        except (OSError, smtplib.SMTPException):
            with lock:
                todo.append(n)  # no 250: the client tries again later
            time.sleep(0.05)


@pytest.mark.slow
def test_every_acknowledged_message_survives_sigkill(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with DnsTestServer() as dns:
        d = Deployment(tmp_path, dns=dns, settings={("antivirus.clamav", "enabled"): "false",
        ("antivirus", "stale_policy"): '"alarm_only"'})
        d.init()
        d.mb("account", "add", "alice@example.test", "--password-stdin", input="Correct-Horse-Battery-9\n")
        d.start()
        todo = list(range(MESSAGES))
        acked: Counter[int] = Counter()
        lock = threading.Lock()
        stop = threading.Event()
        senders = [threading.Thread(target=_send_all, args=(d, todo, acked, lock, stop)) for _ in range(SENDERS)]
        for t in senders:
            t.start()
        try:
            for kill in range(KILLS):
                # wait for some progress, then pull the plug mid-traffic
                target = (kill + 1) * MESSAGES // (KILLS + 1)
                deadline = time.monotonic() + 120
                while len(acked) < target and time.monotonic() < deadline:
                    time.sleep(0.05)
                d.kill()
                time.sleep(0.3)
                d.start()
            for t in senders:
                t.join(timeout=300)
            assert not any(t.is_alive() for t in senders), "senders did not finish"
            assert len(acked) == MESSAGES
            # every acknowledged message must arrive
            deadline = time.monotonic() + 120
            refs: Counter[int] = Counter()
            while time.monotonic() < deadline:
                refs = Counter()
                for raw in d.delivered("alice@example.test"):
                    m = re.search(rb"Carol \(ref (\d+)\)", raw)
                    if m:
                        refs[int(m.group(1))] += 1
                if set(acked) <= set(refs):
                    break
                time.sleep(0.5)
            lost = sorted(set(acked) - set(refs))
            twice = sum(1 for n, c in refs.items() if c > 1)
            with capsys.disabled():
                print(f"\ndurability: {MESSAGES} messages acknowledged across {KILLS} SIGKILLs; "
                      f"lost {len(lost)}, delivered twice {twice}, acknowledged twice "
                      f"{sum(1 for c in acked.values() if c > 1)}")
            assert lost == [], f"acknowledged but never delivered: {lost[:20]}"
            assert not list((tmp_path / "spool" / "corrupt").glob("*")), "corrupt queue entries"
        finally:
            stop.set()
            d.stop()
