"""The loop in a real all-in-one `mailbastion serve`: the phish arrives through the MX into several
Maildirs; a user reports it through a real submission session (STARTTLS, AUTH) to report-phish@; the
message is learned, the reporter acknowledged through our own mail path, and the other users' copies are
in the quarantine with their index entries and audit records. An outsider's report through the MX sweeps
nothing; a message with the same subject from another sender stays."""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest

from mailbastion.audit import AuditLog
from mailbastion.quarantine.index import QuarantineIndex
from mailbastion.quarantine.store import QuarantineStore
from mailbastion.testing.deployment import Deployment
from mailbastion.testing.dns_server import DnsTestServer
from mailbastion.testing.waiting import until as wait

DOMAIN = "example.test"
ALICE, BOB, CAROL, DAVE = (f"{n}@{DOMAIN}" for n in ("alice", "bob", "carol", "dave"))
PASSWORD = "Correct-Horse-Battery-9"
PHISHER = "service@parcel-redelivery.example"


def phish(subject: str, msgid: str, *, sender: str = PHISHER, path: str = "track") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Parcel service <{sender}>"
    msg["To"] = f"staff@{DOMAIN}"
    msg["Subject"] = subject
    msg["Date"] = "Wed, 02 Dec 2026 08:00:00 +0000"
    msg["Message-ID"] = msgid
    msg.set_content(f"Hello,\n\nwe could not deliver your parcel today. Choose a new delivery date:\n"
                    f"https://parcel-redelivery.example/{path}/88213\n\nKind regards\n")
    return msg.as_bytes(policy=SMTP)


def report_of(inner: bytes, reporter: str = ALICE) -> bytes:
    msg = EmailMessage()
    msg["From"] = reporter
    msg["To"] = f"report-phish@{DOMAIN}"
    msg["Subject"] = "Fwd: suspicious parcel message"
    msg.set_content("This looks like phishing to me.")
    msg.add_attachment(message_from_bytes(inner, policy=SMTP))  # forwarded as an attachment, as clients do
    return msg.as_bytes(policy=SMTP)


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with DnsTestServer() as dns:
        dep = Deployment(tmp_path_factory.mktemp("phish-flow") / "d", dns=dns, settings={
            ("antivirus.clamav", "enabled"): "false", ("antivirus", "stale_policy"): '"alarm_only"',
            ("spam.dnsbl", "enabled"): "false",
        })
        dep.init()
        for who in (ALICE, BOB, CAROL, DAVE):
            dep.mb("account", "add", who, "--password-stdin", input=f"{PASSWORD}\n")
        dep.start()
        try:
            yield dep
        finally:
            dep.stop()


def submit(d: Deployment, raw: bytes, rcpts: list[str], user: str = ALICE) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=str(d.root / "tls" / "ca.crt"))
    ctx.check_hostname = False
    with smtplib.SMTP("127.0.0.1", d.submission_port, timeout=60) as s:
        s.starttls(context=ctx)
        s.login(user, PASSWORD)
        return s.sendmail(user, rcpts, raw)


def files_with(d: Deployment, who: str, needle: bytes) -> list[Path]:
    out = []
    for folder in ("", "Junk"):
        md = d.maildir(who, folder)
        for sub in ("new", "cur"):
            out += [p for p in (md / sub).glob("*") if needle in p.read_bytes()]
    return out


def audit_events(d: Deployment, action: str) -> list[Any]:
    return [e for e in AuditLog(f"sqlite:///{d.root / 'audit.db'}").events(limit=None) if e.action == action]


def test_a_reported_phish_is_learned_acknowledged_and_swept_from_other_mailboxes(d: Deployment) -> None:
    subject = "Your parcel could not be delivered"
    msgid = "<run-42@parcel-redelivery.example>"
    d.send(PHISHER, [ALICE, BOB, CAROL], phish(subject, msgid))
    # the same words from someone else: not a copy
    d.send("dispatch@real-courier.example", [DAVE], phish(subject, "<genuine-1@real-courier.example>",
                                                          sender="dispatch@real-courier.example", path="genuine"))
    for who in (ALICE, BOB, CAROL):
        wait(lambda who=who: files_with(d, who, b"run-42@parcel"), f"the phish in {who}'s Maildir")
    wait(lambda: files_with(d, DAVE, b"genuine-1@real-courier"), "the other message in Dave's Maildir")
    reported = next(iter(files_with(d, ALICE, b"run-42@parcel"))).read_bytes()

    assert submit(d, report_of(reported), [f"report-phish@{DOMAIN}"]) == {}

    wait(lambda: not files_with(d, BOB, b"run-42@parcel") and not files_with(d, CAROL, b"run-42@parcel"),
         "Bob's and Carol's copies gone from their Maildirs")
    assert files_with(d, ALICE, b"run-42@parcel"), "the reporter's own copy stays"
    assert files_with(d, DAVE, b"genuine-1@real-courier"), "same subject, another sender: not swept"
    # in the quarantine, with its index entry
    store = QuarantineStore(d.root / "quarantine")
    held = [e for e in store.list() if "PHISH_REPORTED" in " ".join(e.reasons)]
    assert sorted(r for e in held for r in e.recipients) == [BOB, CAROL]
    index = QuarantineIndex(store)
    index.sync()
    for who in (BOB, CAROL):
        assert [e.subject for e in index.search(recipient=who).entries] == [subject]
    # an audit record per copy and one for the report
    copies = wait(lambda: audit_events(d, "phish.copy_quarantined"), "the audit records of the copies")
    assert sorted(e.subject for e in copies) == [f"mailbox:{BOB}", f"mailbox:{CAROL}"]
    [rep] = wait(lambda: audit_events(d, "phish.report"), "the audit record of the report")
    assert rep.actor == ALICE and rep.details["learned"] == 1 and len(rep.details["moved"]) == 2
    # learned as spam
    learned = [json.loads(line) for line in (d.root / "spam" / "learned.log").read_text().splitlines()]
    assert any(e["source"] == "phish-report" and e["label"] == "spam" and e["subject"] == subject for e in learned)
    # the reporter is acknowledged, the others told, through our own mail path
    wait(lambda: files_with(d, ALICE, b"Your phishing report was received"), "the acknowledgement in Alice's INBOX")
    wait(lambda: files_with(d, BOB, b"removed from your mailbox"), "the notice in Bob's INBOX")
    # the report itself reached the report address's mailbox (postmaster, through the alias made by init)
    wait(lambda: files_with(d, f"postmaster@{DOMAIN}", b"Fwd: suspicious parcel message"), "the report at postmaster")
    # the CLI lists it
    assert "alice@example.test" in d.mb("phish", "reports", "--days", "1")


def test_an_outsiders_report_sweeps_nothing(d: Deployment) -> None:
    msgid = "<run-43@parcel-redelivery.example>"
    d.send(PHISHER, [BOB], phish("Second delivery attempt failed", msgid, path="again"))
    wait(lambda: files_with(d, BOB, b"run-43@parcel"), "the phish in Bob's Maildir")
    before = len(audit_events(d, "phish.report"))
    outsider = report_of(phish("Second delivery attempt failed", msgid, path="again"),
                         reporter="mallory@outside.example")
    d.send("mallory@outside.example", [f"report-phish@{DOMAIN}"], outsider)
    # the outsider's mail reaches the report mailbox as ordinary mail, and nothing else happens
    wait(lambda: files_with(d, f"postmaster@{DOMAIN}", b"mallory@outside.example"), "the outsider's mail at postmaster")
    # (reports are taken only from logged-in users at submission: the MX path has no report hook to wait for)
    assert files_with(d, BOB, b"run-43@parcel")
    assert len(audit_events(d, "phish.report")) == before


def test_the_administrator_sweeps_by_hand(d: Deployment, tmp_path: Path) -> None:
    msgid = "<run-44@parcel-redelivery.example>"
    raw = phish("Customs fee outstanding for your parcel", msgid, path="customs")
    d.send(PHISHER, [CAROL, DAVE], raw)
    for who in (CAROL, DAVE):
        wait(lambda who=who: files_with(d, who, b"run-44@parcel"), f"the phish in {who}'s Maildir")
    eml = tmp_path / "phish.eml"
    eml.write_bytes(raw)
    listed = d.mb("phish", "sweep", "--message", str(eml), "--dry-run")
    assert CAROL in listed and DAVE in listed and "2 copy/copies match" in listed
    assert files_with(d, CAROL, b"run-44@parcel") and files_with(d, DAVE, b"run-44@parcel")  # nothing moved
    out = d.mb("phish", "sweep", "--message", str(eml), "--reason", "ticket 77")
    assert "2 copy/copies moved" in out
    assert not files_with(d, CAROL, b"run-44@parcel") and not files_with(d, DAVE, b"run-44@parcel")
    [sweep] = audit_events(d, "phish.sweep")
    assert sweep.reason == "ticket 77" and sweep.actor.startswith("cli:") and len(sweep.details["moved"]) == 2
    assert "phish.sweep" in d.mb("phish", "reports")


def test_a_report_the_outbound_filter_refuses_still_counts(d: Deployment) -> None:
    gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
    msgid = "<run-45@parcel-redelivery.example>"
    raw = phish("Parcel held at customs", msgid, path=f"held?{gtube[:8]}")
    d.send(PHISHER, [BOB], raw)
    wait(lambda: files_with(d, BOB, b"run-45@parcel"), "the phish in Bob's Maildir")
    inner = raw.replace(b"Kind regards", gtube.encode())  # what the outbound filter refuses for certain
    # the same report to a colleague too: refused as a whole, as any other message
    with pytest.raises(smtplib.SMTPDataError) as refused:
        submit(d, report_of(inner), [f"report-phish@{DOMAIN}", DAVE])
    assert refused.value.smtp_code == 554
    before = len(audit_events(d, "phish.report"))
    # to the report address alone: the report counts
    ctx = ssl.create_default_context(cafile=str(d.root / "tls" / "ca.crt"))
    ctx.check_hostname = False
    with smtplib.SMTP("127.0.0.1", d.submission_port, timeout=60) as s:
        s.starttls(context=ctx)
        s.login(ALICE, PASSWORD)
        s.mail(ALICE)
        s.rcpt(f"report-phish@{DOMAIN}")
        code, text = s.data(report_of(inner))
    assert code == 250 and b"phishing report" in text, (code, text)
    wait(lambda: not files_with(d, BOB, b"run-45@parcel"), "Bob's copy gone")
    wait(lambda: len(audit_events(d, "phish.report")) == before + 1, "the report's audit record")
