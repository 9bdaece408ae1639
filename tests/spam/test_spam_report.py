"""The report address: unwrapping (attachment, bounce, inline), who may teach the model, and that a report
really changes what the classifier says."""

from __future__ import annotations

import json
import sys
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from spamkit import business_mail, judge, mail, names

from mailbastion.core.verdict import Action, Symbol
from mailbastion.policy.checks.spam_report import SpamReportCheck
from mailbastion.spam.features import extract_bytes
from mailbastion.spam.report import ReportLearner, unwrap
from mailbastion.spam.store import ModelStore
from mailbastion.spam.tokens import tokens

OURS = {"example.com"}
PITCH = mail(subject="Exclusive partner webinar on supply chain analytics",
             text="Dear Bob, join our exclusive partner webinar on supply chain analytics and warehouse "
                  "forecasting next Wednesday. Reserve your seat with our analytics consultants today.",
             from_="Analytics Events <events@analytics-events.example>")


def forward_as_attachment(inner: bytes, *, sender: str = "bob@example.com") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Bob <{sender}>"
    msg["To"] = "report-spam@example.com"
    msg["Subject"] = "Fwd: spam"
    msg.set_content("This got through.")
    msg.add_attachment(inner, maintype="message", subtype="rfc822")
    return msg.as_bytes()


def bounce(inner: bytes) -> bytes:
    return b"Resent-From: bob@example.com\r\nResent-To: report-spam@example.com\r\nResent-Date: Mon, 1 Jan 2026 " \
           b"10:00:00 +0000\r\n" + inner


def inline_forward(inner_subject: str, body: str) -> bytes:
    return mail(subject=f"Fwd: {inner_subject}", from_="Bob <bob@example.com>",
                text="FYI, spam.\n\n---------- Forwarded message ---------\nFrom: Promo <promo@deals.example>\n"
                     f"Date: Mon, 1 Jan 2026 10:00:00 +0000\nSubject: {inner_subject}\nTo: bob@example.com\n\n{body}\n")


def test_unwrap_attachment_bounce_and_inline() -> None:
    msgs, how = unwrap(forward_as_attachment(PITCH))
    assert how == "attachment" and extract_bytes(msgs[0]).subject == extract_bytes(PITCH).subject
    msgs, how = unwrap(bounce(PITCH))
    assert how == "bounce" and b"Resent-From" not in msgs[0]
    assert extract_bytes(msgs[0]).from_address == "events@analytics-events.example"
    msgs, how = unwrap(inline_forward("Cheap watches", "Replica watches at low prices"))
    assert how == "inline"
    inner = extract_bytes(msgs[0])
    assert inner.subject == "Cheap watches" and inner.from_address == "promo@deals.example"
    assert "Replica watches" in inner.text
    assert unwrap(business_mail()) == ([], "none")


def learner(tmp_path: Path) -> ReportLearner:
    return ReportLearner(ModelStore(tmp_path / "model.joblib"), is_local_domain=lambda d: d in OURS)


async def test_report_address_learns_what_it_receives(tmp_path: Path) -> None:
    rl = learner(tmp_path)
    tok = tokens(extract_bytes(PITCH))
    before = rl.store.model().probability(tok)
    check = SpamReportCheck(rl)
    verdict, _ = await judge([check], forward_as_attachment(PITCH), sender="bob@example.com",
                             rcpts=("report-spam@example.com",), authenticated_as="bob@example.com")
    assert "SPAM_REPORT_LEARNED" in names(verdict)
    assert verdict.action is Action.ACCEPT  # the report itself is delivered, not junked
    after = rl.store.model().probability(tok)
    assert after > before and after >= 0.9
    log = [json.loads(line) for line in (tmp_path / "learned.log").read_text().splitlines()]
    assert log[-1]["label"] == "spam" and log[-1]["source"] == "report" and "bob@example.com" in log[-1]["note"]


async def test_ham_report_address(tmp_path: Path) -> None:
    rl = learner(tmp_path)
    spammy = mail(subject="FREE GIFT CARD WINNER", text="Congratulations, claim your free prize now, act now!!!")
    verdict, _ = await judge([SpamReportCheck(rl)], bounce(spammy), rcpts=("report-ham@example.com",),
                             relay=True)
    assert "SPAM_REPORT_LEARNED" in names(verdict)
    assert rl.store.model().probability(tokens(extract_bytes(spammy))) < 0.5


async def test_outsiders_cannot_poison_the_model(tmp_path: Path) -> None:
    rl = learner(tmp_path)
    verdict, _ = await judge([SpamReportCheck(rl)], forward_as_attachment(business_mail(), sender="x@evil.example"),
                             sender="x@evil.example", rcpts=("report-spam@example.com",))
    assert "SPAM_REPORT_REFUSED" in names(verdict)
    assert not (tmp_path / "model.joblib").exists()


async def test_own_domain_needs_dmarc_pass(tmp_path: Path) -> None:
    rl = learner(tmp_path)
    raw = forward_as_attachment(PITCH)
    from spamkit import context

    ctx = context(raw, sender="bob@example.com", rcpts=("report-spam@example.com",))
    refused = await SpamReportCheck(rl)(ctx)
    assert refused.symbols[0].name == "SPAM_REPORT_REFUSED" and "DMARC" in refused.symbols[0].detail
    ctx = context(raw, sender="bob@example.com", rcpts=("report-spam@example.com",))
    ctx.symbols.append(Symbol("DMARC_POLICY_ALLOW"))
    learned = await SpamReportCheck(rl)(ctx)
    assert learned.symbols[0].name == "SPAM_REPORT_LEARNED"


async def test_ordinary_mail_is_not_a_report(tmp_path: Path) -> None:
    verdict, _ = await judge([SpamReportCheck(learner(tmp_path))], business_mail(), authenticated_as="bob@example.com")
    assert names(verdict) == set()


async def test_report_without_a_message_inside_is_not_learned(tmp_path: Path) -> None:
    verdict, _ = await judge([SpamReportCheck(learner(tmp_path))], business_mail(),
                             rcpts=("report-spam@example.com",), authenticated_as="bob@example.com")
    assert "SPAM_REPORT_REFUSED" in names(verdict)
