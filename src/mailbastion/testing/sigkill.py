"""The SIGKILL durability scenario, shared by the flow test (short) and bench/durability_bench.py (long).

Clients send numbered messages to one mailbox while the whole server (every process) is killed with
SIGKILL several times and restarted. A client that got no 250 sends again, as a real one would. At the end:

    lost        acknowledged (250) but in no mailbox folder: must be 0 (a 250 is a promise)
    duplicates  queue entries delivered into the mailbox more than once: must be 0 (exactly-once MDA)
    resent      messages in the mailbox under two queue entries because the client sent them again
                after a kill cut its answer off (SMTP's own at-least-once; not ours to remove)

One queue entry is recognised in every copy by our gateway's Received field (its date and transaction id
are unique to one acceptance), so a copy delivered twice from one entry is told apart from a re-send.
"""

from __future__ import annotations

import re
import smtplib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate, make_msgid

from mailbastion.core.header_block import HeaderBlock
from mailbastion.testing.deployment import Deployment

_REF = re.compile(rb"\(durability ref (\d+)\)")


def durability_message(n: int, to: str) -> bytes:
    """An ordinary business letter carrying its number (filters let it through to the inbox)."""
    body = ("Hello,\r\n\r\nplease find below the minutes of our meeting on Tuesday. We agreed to move the\r\n"
            "delivery of the second milestone to the end of next month, and Dave will send the revised\r\n"
            "budget by Friday. The next meeting is planned for the 12th at 10:00 in the usual room.\r\n\r\n"
            f"Kind regards,\r\nCarol (durability ref {n})\r\n")
    return (f"From: Carol Jones <carol@partner.example>\r\nTo: <{to}>\r\n"
            f"Subject: Minutes of Tuesday's project meeting\r\nDate: {formatdate(localtime=False)}\r\n"
            f"Message-ID: {make_msgid(domain='partner.example')}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()


def queue_entry_of(copy: bytes) -> bytes:
    """What identifies the queue entry a delivered copy came from: our gateway's Received field(s)."""
    block = HeaderBlock.parse(copy)
    ours = [f.value_bytes for f in block.named("received")
            if b"(mailbastion)" in f.value_bytes and b" with LMTP" not in f.value_bytes]
    return b"\n".join(ours)


@dataclass
class KillReport:
    messages: int
    kills: int
    acknowledged: int = 0
    acknowledged_twice: int = 0
    lost: list[int] = field(default_factory=list)
    duplicates: int = 0  # queue entries delivered more than once
    duplicate_copies: int = 0  # extra copies they made
    resent: int = 0  # refs in the mailbox under more than one queue entry
    seconds: float = 0.0
    corrupt: int = 0

    def line(self) -> str:
        return (f"durability: {self.messages} messages, {self.kills} SIGKILLs, {self.seconds:.0f}s: "
                f"lost {len(self.lost)}, duplicates {self.duplicates} (same queue entry delivered twice), "
                f"re-sent by the client after a kill {self.resent}, acknowledged twice {self.acknowledged_twice}, "
                f"corrupt {self.corrupt}")


def _sender(d: Deployment, to: str, todo: list[int], acked: Counter[int], lock: threading.Lock,
            stop: threading.Event) -> None:
    while not stop.is_set():
        with lock:
            if not todo:
                return
            n = todo.pop(0)
        try:
            with smtplib.SMTP("127.0.0.1", d.smtp_port, local_hostname="mx.partner.example", timeout=15) as s:
                s.sendmail("carol@partner.example", [to], durability_message(n, to))
            with lock:
                acked[n] += 1
        except (OSError, smtplib.SMTPException):
            with lock:
                todo.append(n)  # no 250: the client tries again later
            time.sleep(0.05)


def copies_by_ref(d: Deployment, to: str) -> dict[int, Counter[bytes]]:
    """{ref: {queue entry: copies}} over the mailbox's INBOX and Junk folders."""
    found: dict[int, Counter[bytes]] = {}
    for copy in [*d.delivered(to), *d.delivered(to, "Junk")]:
        m = _REF.search(copy)
        if m:
            found.setdefault(int(m.group(1)), Counter())[queue_entry_of(copy)] += 1
    return found


def run_sigkill_scenario(d: Deployment, to: str, *, messages: int, clients: int, kills: int,
                         settle_seconds: float = 180.0) -> KillReport:
    """Send `messages` with `clients` threads, SIGKILL the server `kills` times (evenly over the progress)
    and restart it each time; then wait (at most `settle_seconds`) until every acknowledged message is in
    the mailbox. `d` must be started."""
    started = time.monotonic()
    report = KillReport(messages, kills)
    todo = list(range(messages))
    acked: Counter[int] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    threads = [threading.Thread(target=_sender, args=(d, to, todo, acked, lock, stop)) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        for kill in range(kills):
            target = (kill + 1) * messages // (kills + 1)  # wait for some progress, then pull the plug
            deadline = time.monotonic() + 120
            while len(acked) < target and time.monotonic() < deadline:
                time.sleep(0.05)
            d.kill()
            time.sleep(0.3)
            d.start()
        for t in threads:
            t.join(timeout=600)
        if any(t.is_alive() for t in threads):
            raise RuntimeError("senders did not finish")
        deadline = time.monotonic() + settle_seconds
        found = copies_by_ref(d, to)
        while not set(acked) <= set(found) and time.monotonic() < deadline:
            time.sleep(0.5)
            found = copies_by_ref(d, to)
    finally:
        stop.set()
    report.acknowledged = len(acked)
    report.acknowledged_twice = sum(1 for c in acked.values() if c > 1)
    report.lost = sorted(set(acked) - set(found))
    entries = [count for per_ref in found.values() for count in per_ref.values()]
    report.duplicates = sum(1 for c in entries if c > 1)
    report.duplicate_copies = sum(c - 1 for c in entries if c > 1)
    report.resent = sum(1 for per_ref in found.values() if len(per_ref) > 1)
    report.corrupt = len(list((d.root / "spool" / "corrupt").glob("*")))
    report.seconds = time.monotonic() - started
    return report
