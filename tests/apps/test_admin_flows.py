"""What an administrator does, against a running deployment and the real command line: the report
addresses that `dns records` publishes receive mail at once, and a quarantine release never sends a
message back to its outside sender."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Iterator
from email.utils import formatdate, make_msgid
from pathlib import Path

import pytest

from mailbastion.core import replies
from mailbastion.core.address import Address
from mailbastion.core.envelope import Envelope
from mailbastion.core.verdict import Action, Forced, ScoredSymbol, Verdict
from mailbastion.quarantine import QuarantineStore
from mailbastion.testing.deployment import MB, Deployment
from mailbastion.testing.dns_server import DnsTestServer

PHISHER = Address("billing", "paypa1-secure.example")
PHISH = Verdict(Action.QUARANTINE, 11.0, (ScoredSymbol("PHISH_LINK_MISMATCH", "", 11.0, "spam"),),
                Forced(Action.QUARANTINE, replies.OK, "spam"))


def message(sender: str, to: str, subject: str) -> bytes:
    return (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {formatdate()}\r\n"
            f"Message-ID: {make_msgid(domain='partner.example')}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "The aggregate report for the period is attached as agreed.\r\n").encode()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root: Path = tmp_path_factory.mktemp("admin")
    with DnsTestServer() as dns:
        d = Deployment(root, dns=dns, settings={("antivirus.clamav", "enabled"): "false",
                                                    ("antivirus", "stale_policy"): '"alarm_only"'})
        d.init()
        for user in ("alice", "bob"):
            d.mb("account", "add", f"{user}@example.test", "--password-stdin", input="Correct-Horse-Battery-9\n")
        d.start()
        yield d
        d.stop()


def cli(d: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MB, *args, "-c", str(d.config)], capture_output=True, text=True, timeout=120)


def send_when_accepted(d: Deployment, rcpt: str, raw: bytes, timeout: float = 30.0) -> None:
    """The gateway re-reads the recipient map at most once a second: a domain just added may need that."""
    deadline = time.monotonic() + timeout
    while True:
        with d.smtp() as s:
            s.mail("noreply@reports.partner.example")
            code, text = s.rcpt(rcpt)
            if code == 250:
                assert s.data(raw)[0] == 250
                return
        assert code == 550 and time.monotonic() < deadline, (code, text)
        time.sleep(0.2)


def test_report_addresses_of_dns_records_receive_mail(deployment: Deployment) -> None:
    d = deployment
    for rcpt in ("dmarc-reports@example.test", "tls-reports@example.test"):
        send_when_accepted(d, rcpt, message("noreply@reports.partner.example", rcpt, f"Report for {rcpt}"))
    got = d.wait_delivered("reports@example.test", 2)
    assert {re.search(rb"Subject: Report for (\S+)", m).group(1) for m in got} == {  # type: ignore[union-attr]
        b"dmarc-reports@example.test", b"tls-reports@example.test"}
    # a domain added later gets the same at once, and its records are complete
    out = cli(d, "domain", "add", "example.net")
    assert out.returncode == 0 and "DKIM keys for example.net made" in out.stdout, out.stderr
    send_when_accepted(d, "tls-reports@example.net",
                       message("noreply@reports.partner.example", "tls-reports@example.net", "TLS report"))
    d.wait_delivered("reports@example.net", 1)
    records = cli(d, "dns", "records", "example.net")
    assert records.returncode == 0
    assert re.search(r'mb\d{8}r\._domainkey\.example\.net\.\t3600\tIN\tTXT\t"v=DKIM1; k=rsa; p=', records.stdout)
    assert re.search(r'mb\d{8}e\._domainkey\.example\.net\.\t3600\tIN\tTXT\t"v=DKIM1; k=ed25519; p=',
                     records.stdout)
    assert "no DKIM key yet" not in records.stdout
    assert "rua=mailto:dmarc-reports@example.net" in records.stdout


def _hold(d: Deployment, rcpt: str, subject: str) -> str:
    store = QuarantineStore(d.root / "quarantine")
    raw = message(str(PHISHER), rcpt, subject)
    return asyncio.run(store.put(Envelope(PHISHER, (Address(*rcpt.split("@")),)), raw, PHISH, client="192.0.2.66"))


def test_release_to_an_inactive_account_is_refused_and_goes_to_the_postmaster_instead(
        deployment: Deployment) -> None:
    d = deployment
    qid = _hold(d, "bob@example.test", "Your invoice (bob)")
    assert cli(d, "account", "deactivate", "bob@example.test", "--reason", "leaver").returncode == 0
    spooled = len(d.spool_files())
    refused = cli(d, "quarantine", "release", qid)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert "bob@example.test" in refused.stderr and "--to postmaster@example.test" in refused.stderr
    assert len(d.spool_files()) == spooled and cli(d, "quarantine", "show", qid).returncode == 0  # still held
    before = len(d.delivered("postmaster@example.test"))
    done = cli(d, "quarantine", "release", qid, "--to", "postmaster@example.test", "--reason", "leaver's mail")
    assert done.returncode == 0, done.stderr
    got = d.wait_delivered("postmaster@example.test", before + 1)
    copy = next(m for m in got if b"Your invoice (bob)" in m)
    assert copy.startswith(b"Return-Path: <postmaster@example.test>")  # failure notices stay inside


def test_a_release_that_fails_later_notifies_the_postmaster_not_the_sender(deployment: Deployment) -> None:
    d = deployment
    qid = _hold(d, "alice@example.test", "Your invoice (alice)")
    d.stop()  # the release waits in the spool while alice leaves
    try:
        assert cli(d, "quarantine", "release", qid).returncode == 0
        assert cli(d, "account", "deactivate", "alice@example.test", "--reason", "leaver").returncode == 0
    finally:
        d.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        bounces = [m for m in d.delivered("postmaster@example.test") if b"multipart/report" in m
                   and b"alice@example.test" in m]
        if bounces:
            break
        time.sleep(0.2)
    assert bounces, d.log()[-3000:]
    assert b"Your invoice (alice)" in bounces[0] and b"Delivered-To: postmaster@example.test" in bounces[0]
    assert f"to=<{PHISHER}>" not in d.log()  # the queue never tried to send anything to the phisher
