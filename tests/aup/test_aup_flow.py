"""The acceptable use policy enforced by a running deployment (`mailbastion serve`, all-in-one, as a child
process): its submission listener (real SMTP over STARTTLS), its lifecycle scheduler (the notices), its
portal (real HTTPS), with "now" moved for all of them through `[lifecycle] testing_clock_offset_file`.

Inside the grace period a user sends; past it the submission listener refuses her with 550 5.7.1 naming
the portal's policy page, and one notice lands in her Maildir; she signs in to the portal, is sent to the
policy first, accepts it (recorded with version, hash, time and client address, audited), and sends again.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import subprocess
from collections.abc import Iterator
from email.utils import formatdate, make_msgid
from pathlib import Path

import httpx
import pytest

from mailbastion.aup.store import AupStore, text_hash
from mailbastion.config import load_settings
from mailbastion.directory.store import Directory
from mailbastion.lifecycle.status import read as scheduler_status
from mailbastion.testing.deployment import MB, Deployment
from mailbastion.testing.dns_server import DnsTestServer
from mailbastion.testing.waiting import until

pytestmark = pytest.mark.slow

PASSWORD = "Correct-Horse-Battery-9"
ALICE, BOB = "alice@example.test", "bob@example.test"
DAY = 86400.0
POLICY = "# Acceptable use\n\nUse mail for work. <script>alert('x')</script>\n"


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root: Path = tmp_path_factory.mktemp("aup-flow")
    with DnsTestServer() as dns:
        dep = Deployment(root, dns=dns, settings={
            ("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"',
            ("lifecycle", "check_interval_seconds"): "1",
            ("lifecycle", "testing_clock_offset_file"): '"clock-offset"',
            ("portal", "digest_time"): '""'})
        dep.init()
        dep.set("portal", "public_url", f'"https://127.0.0.1:{dep.portal_port}"')
        for who in (ALICE, BOB):
            dep.mb("account", "add", who, "--password-stdin", input=f"{PASSWORD}\n")
        policy = root / "aup.md"
        policy.write_text(POLICY, encoding="utf-8")
        dep.mb("aup", "publish", str(policy), "--version", "2026.1")
        dep.start()
        try:
            yield dep
        finally:
            dep.stop()


def tls(d: Deployment) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(d.root / "tls" / "ca.crt"))
    ctx.check_hostname = False  # the certificate names mail.example.test; the test reaches 127.0.0.1
    return ctx


def submit(d: Deployment, subject: str) -> None:
    """Alice sends to Bob through the submission listener (STARTTLS, AUTH); raises smtplib errors."""
    msg = (f"From: Alice <{ALICE}>\r\nTo: <{BOB}>\r\nSubject: {subject}\r\nDate: {formatdate()}\r\n"
           f"Message-ID: {make_msgid(domain='example.test')}\r\n\r\nSee you at ten.\r\n").encode()
    with smtplib.SMTP("127.0.0.1", d.submission_port, timeout=60) as s:
        s.starttls(context=tls(d))
        s.login(ALICE, PASSWORD)
        assert s.sendmail(ALICE, [BOB], msg) == {}


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:2000]
    return m.group(1)


def shift(d: Deployment, seconds: float) -> None:
    f = d.root / "clock-offset"
    f.write_text(str((float(f.read_text()) if f.exists() else 0.0) + seconds))


def checks_after(d: Deployment, n: int) -> None:
    """Wait until the lifecycle scheduler has finished `n` more checks (its status file's time moves)."""
    settings = load_settings(d.config)
    for _ in range(n):
        before = scheduler_status(settings).checked_at
        until(lambda before=before: scheduler_status(settings).checked_at != before, "a scheduler check", 60)


def test_past_the_grace_period_sending_is_refused_until_accepted(d: Deployment) -> None:
    submit(d, "inside the grace period")
    assert any(b"inside the grace period" in m for m in d.wait_delivered(BOB, 1, timeout=90))
    assert not any(b"acceptable use policy" in m for m in d.delivered(ALICE))

    shift(d, 15 * DAY)  # past the 14 days, nothing else changes
    notices = until(lambda: [m for m in d.delivered(ALICE) if b"accept the acceptable use policy" in m],
                    "the notice in Alice's Maildir")
    notice = notices[0]
    assert f"https://127.0.0.1:{d.portal_port}/aup".encode() in notice and b"version 2026.1" in notice
    assert b"Auto-Submitted: auto-generated" in notice
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        submit(d, "past the grace period")
    assert refused.value.smtp_code == 550
    text = refused.value.smtp_error.decode()
    assert text.startswith("5.7.1") and f"https://127.0.0.1:{d.portal_port}/aup" in text, text
    checks_after(d, 2)  # more scheduler checks: the notice is not sent again
    assert len([m for m in d.delivered(ALICE) if b"accept the acceptable use policy" in m]) == 1

    # Alice signs in: the portal sends her to the policy before anything else, and she accepts it
    with httpx.Client(base_url=f"https://127.0.0.1:{d.portal_port}", verify=tls(d), timeout=60) as web:
        form = web.get("/signin")
        r = web.post("/signin", data={"csrf": csrf_of(form.text), "address": ALICE, "password": PASSWORD, "next": "/"})
        assert r.status_code == 303 and r.headers["location"] == "/aup?next=%2F", r.headers
        page = web.get("/aup?next=%2F")
        assert page.status_code == 200 and "<h1>Acceptable use</h1>" in page.text
        assert "&lt;script&gt;" in page.text and "<script>" not in page.text  # the policy's HTML is inert
        sha = text_hash(POLICY)
        assert sha in page.text
        r = web.post("/aup", data={"csrf": csrf_of(page.text), "version": "2026.1", "sha256": sha, "next": "/"})
        assert r.status_code == 400 and "Tick the box" in r.text  # not without the box ticked
        r = web.post("/aup", data={"csrf": csrf_of(page.text), "version": "2026.1", "sha256": sha, "next": "/",
                                   "agree": "yes"})
        assert r.status_code == 303
        assert web.get("/").headers["location"] == "/my/quarantine"  # no longer sent to the policy

    directory = Directory.from_settings(load_settings(d.config))
    acceptance = AupStore(directory).acceptance(ALICE, "2026.1")
    assert acceptance is not None and acceptance.sha256 == sha and acceptance.client == "127.0.0.1"
    event = next(e for e in directory.audit.events(limit=20) if e.action == "aup.accepted")
    assert event.subject == ALICE and event.actor == f"portal:{ALICE}" and event.details["sha256"] == sha

    submit(d, "after accepting")  # accepted at once: no restart, no cache
    until(lambda: any(b"after accepting" in m for m in d.delivered(BOB)), "Alice's message in Bob's Maildir")
    report = subprocess.run([*MB, "aup", "report", "--csv", "-c", str(d.config)], capture_output=True, text=True,
                            timeout=120, check=True).stdout
    alice_row = next(line for line in report.splitlines() if line.startswith(ALICE))
    assert ",accepted,no," in alice_row and "127.0.0.1" in alice_row
    bob_row = next(line for line in report.splitlines() if line.startswith(BOB))
    assert ",overdue,yes," in bob_row
