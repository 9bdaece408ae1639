"""A phishing-simulation campaign end to end against a running deployment (`mailbastion serve` as a child:
scheduler, queue, MDA writing Maildir) and the real portal over HTTPS:

- created and sent from the command line: committed to our spool, delivered to each target's Maildir INBOX
  (not Junk: it never meets the inbound filter), each copy with its own link and a mark that verifies;
- the tracking link fetched over HTTPS records the click and assigns the module (re-opened when completed);
  the landing page explains the signs; an unknown token is a plain 404;
- a report of the simulation to report-phish@ through submission is recorded as "reported" (the report
  loop's simulation observer: `recognise` + `record_reported`), and nothing is swept;
- the mark forged or copied from outside is not honoured: a real mark on other content is not recognised,
  and GTUBE carrying the mark is still refused by the gateway;
- time moves (the testing clock file): a scheduled campaign goes out at its start, reminders land in the
  Maildir before the due date and once overdue, and measure 8 turns from passing to failing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import smtplib
import ssl
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import pytest
from portal_kit import PASSWORD, PortalRunner, http, portal_deployment, settings_of

from mailbastion.directory.store import Directory
from mailbastion.measures.board import MET, NOT_MET, WARN
from mailbastion.measures.training import TrainingProbe
from mailbastion.testing.deployment import Deployment
from mailbastion.testing.dns_server import DnsTestServer
from mailbastion.testing.waiting import until as wait_for
from mailbastion.training import recognise
from mailbastion.training.campaigns import record_reported
from mailbastion.training.campaigns import CampaignStore
from mailbastion.training.modules import grade, load_modules
from mailbastion.training.simulation import MARK_HEADER
from mailbastion.training.store import TrainingStore

pytestmark = pytest.mark.slow

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"
LINK = re.compile(rb"https://127\.0\.0\.1:\d+/l/([A-Za-z0-9_-]+)/([A-Za-z0-9_-]+)")
MANDATORY = {"phishing", "attachments", "passwords", "confidential", "reporting"}


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, PortalRunner]]:
    with DnsTestServer() as dns:
        d = portal_deployment(Path(tmp_path_factory.mktemp("training-flow")), dns=dns, extra={
            ("lifecycle", "check_interval_seconds"): "1", ("lifecycle", "testing_clock_offset_file"): '"clock-offset"'})
        for address in (ALICE, BOB, CAROL):
            d.mb("account", "add", address, "--password-stdin", input=PASSWORD + "\n")
        for address in (ALICE, BOB):
            d.mb("account", "alias", "add", "staff@example.test", address)
        d.start()
        runner = PortalRunner(settings_of(d)).start()
        try:
            yield d, runner
        finally:
            runner.stop()
            d.stop()


def report_by_submission(d: Deployment, user: str, copy: bytes) -> dict[str, Any]:
    """`user` forwards `copy` as an attachment to report-phish@ through STARTTLS + AUTH on submission."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = user, "report-phish@example.test", "Fwd: phishing?"
    msg.set_content("This looks like phishing to me.")
    msg.add_attachment(message_from_bytes(copy, policy=SMTP))
    ctx = ssl.create_default_context(cafile=str(d.root / "tls" / "ca.crt"))
    ctx.check_hostname = False
    with smtplib.SMTP("127.0.0.1", d.submission_port, timeout=60) as s:
        s.starttls(context=ctx)
        s.login(user, PASSWORD)
        return s.sendmail(user, ["report-phish@example.test"], msg.as_bytes(policy=SMTP))


def marked(d: Deployment, address: str, campaign: str) -> list[bytes]:
    return [m for m in d.delivered(address) if MARK_HEADER.encode() in m and f"c={campaign};".encode() in m]


def shift(d: Deployment, days: float) -> None:
    f = d.root / "clock-offset"
    before = float(f.read_text()) if f.exists() else 0.0
    f.write_text(str(before + days * 86400))


def test_campaign_sent_clicked_reported(flow: tuple[Deployment, PortalRunner]) -> None:
    d, runner = flow
    settings = runner.ctx.settings
    training = TrainingStore(runner.ctx.directory)
    wait_for(lambda: training.assignment(ALICE, "phishing"), "the scheduler to assign the mandatory modules")
    module = load_modules()["phishing"]
    done = training.record_attempt(ALICE, "phishing", grade(module, {i: q.answer for i, q in enumerate(module.questions)}))
    assert done.completed_at is not None

    out = d.mb("training", "campaign", "create", "q4-quota", "--template", "mailbox-full", "--group", "staff",
               "--start", "2099-01-01")
    assert "2 account(s)" in out and "a click assigns phishing" in out
    assert "2 message(s) committed" in d.mb("training", "campaign", "send", "q4-quota")
    alice_copy = wait_for(lambda: marked(d, ALICE, "q4-quota"), "alice's copy in her INBOX")[0]
    bob_copy = wait_for(lambda: marked(d, BOB, "q4-quota"), "bob's copy in his INBOX")[0]
    assert not any(MARK_HEADER.encode() in m for m in d.delivered(ALICE, "Junk") + d.delivered(BOB, "Junk"))
    assert marked(d, CAROL, "q4-quota") == []  # not in the group
    (campaign, alice_token), (_, bob_token) = LINK.search(alice_copy).groups(), LINK.search(bob_copy).groups()  # type: ignore[union-attr]
    assert campaign == b"q4-quota" and alice_token != bob_token
    hit = recognise(bob_copy, settings)
    assert hit is not None and hit.campaign == "q4-quota" and hit.token == bob_token.decode()

    with http(runner, d) as client:  # no session: the landing page is public
        page = client.get(f"/l/q4-quota/{alice_token.decode()}")
        assert page.status_code == 200, page.text[:500]
        assert "This was a phishing simulation" in page.text and "servicedesk@mail-quota-check.invalid" in page.text
        assert "My training" in page.text
        assert client.get(f"/l/q4-quota/{alice_token.decode()}").status_code == 200  # a second visit: same page
        assert client.get("/l/q4-quota/not-a-token").status_code == 404
        assert client.get(f"/l/other/{alice_token.decode()}").status_code == 404

    reopened = training.assignment(ALICE, "phishing")
    assert reopened is not None and reopened.completed_at is None and reopened.assigned_by == "training:simulation"
    # Bob reports his copy to report-phish@ through submission: the report loop's simulation observer
    # (apps/phish_report.report_observers) records it in the campaign; nothing is learned or swept
    assert report_by_submission(d, BOB, bob_copy) == {}
    campaigns = CampaignStore(runner.ctx.directory, settings)
    wait_for(lambda: {r.address: r.outcome for r in campaigns.results("q4-quota")}.get(BOB) == "reported",
             "Bob's report recorded in the campaign")
    assert record_reported(hit, BOB, settings) is False  # once
    results = {r.address: r.outcome for r in campaigns.results("q4-quota")}
    assert results == {ALICE: "clicked", BOB: "reported"}
    assert marked(d, ALICE, "q4-quota"), "a reported simulation is not swept from the others' mailboxes"
    shown = d.mb("training", "campaign", "show", "q4-quota")
    assert "group staff@example.test: 2 delivered, 1 clicked, 1 reported, 0 ignored" in shown
    report = d.mb("training", "report")
    assert "campaign q4-quota (mailbox-full to staff, sent" in report and "1 clicked, 1 reported, 0 ignored" in report


def outside(to: str, subject: str, body: str, mark: str) -> bytes:
    return (f"From: IT <it@outside.example>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {formatdate()}\r\n"
            f"Message-ID: {make_msgid(domain='outside.example')}\r\n{MARK_HEADER}: {mark}\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n").encode()


def test_a_forged_mark_from_outside_is_not_honoured(flow: tuple[Deployment, PortalRunner]) -> None:
    d, runner = flow
    settings = runner.ctx.settings
    bob_copy = wait_for(lambda: marked(d, BOB, "q4-quota"), "bob's copy")[0]
    real_mark = re.search(rb"X-Training-Simulation: ([^\r\n]+)", bob_copy).group(1).decode()  # type: ignore[union-attr]
    # a real phish wearing a copied mark, through the MX like any mail from the Internet
    phish = outside(CAROL, "Action required: your mailbox is 98% full",
                    "Confirm your account now: https://mail-quota-check.example/login", real_mark)
    assert d.send("it@outside.example", [CAROL], phish) == {}
    got = wait_for(lambda: [m for m in d.delivered(CAROL) + d.delivered(CAROL, "Junk")
                            if b"mail-quota-check.example/login" in m], "the outside message delivered")[0]
    assert recognise(got, settings) is None  # the report loop treats it as a real phish
    forged = outside(CAROL, "hello", "hello", "v=1; c=q4-quota; t=abc; s=" + "A" * 43)
    assert d.send("it@outside.example", [CAROL], forged) == {}
    got = wait_for(lambda: [m for m in d.delivered(CAROL) + d.delivered(CAROL, "Junk") if b"t=abc;" in m], "forged")[0]
    assert recognise(got, settings) is None
    # and the mark buys nothing at the gateway: GTUBE wearing it is refused as spam
    gtube = outside(CAROL, "test", "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X", real_mark)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        d.send("it@outside.example", [CAROL], gtube)
    assert refused.value.smtp_code in (550, 554)


def probe(d: Deployment) -> Any:
    settings = settings_of(d)
    return asyncio.run(TrainingProbe(settings, Directory.from_settings(settings))())[0]


def test_schedule_reminders_and_measure_8_as_time_moves(flow: tuple[Deployment, PortalRunner]) -> None:
    d, _runner = flow
    before = probe(d)
    assert before.state in (MET, WARN), before
    assert any("phishing simulation(s) sent; the last, q4-quota" in e for e in before.details), before.details
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    d.mb("training", "campaign", "create", "later", "--template", "shared-document", "--all", "--start", start)
    assert "starts" in d.mb("training", "campaign", "list").split("later", 1)[1].splitlines()[0]

    shift(d, 24)  # 6 days before the mandatory modules are due; the campaign's start has passed
    reminder = wait_for(lambda: [m for m in d.delivered(CAROL) if b"Reminder: 5 training module(s) due soon" in m],
                        "carol's reminder in her Maildir")[0]
    assert b"/my/training/phishing" in reminder and b"security-training@example.test" in reminder
    wait_for(lambda: marked(d, CAROL, "later"), "the scheduled campaign to reach carol")
    assert "sent" in d.mb("training", "campaign", "list").split("later", 1)[1].splitlines()[0]

    shift(d, 7)  # past the due date
    wait_for(lambda: [m for m in d.delivered(CAROL) if b"Overdue: 5 training module(s)" in m], "the overdue reminder")
    after = probe(d)
    assert after.state == NOT_MET and any(line.startswith(f"overdue: {CAROL}: ") for line in after.details), after
    assert {m.split(": ")[2].split(" ")[0] for m in after.details if m.startswith(f"overdue: {CAROL}")} == MANDATORY
