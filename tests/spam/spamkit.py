"""Helpers for the spam-filter tests: message builders and a DATA-stage pipeline over the real Scorer.

    raw = business_mail()                                  # a clean business message
    raw = mail(subject="Hi", html="<a href=...>", text=None)
    verdict, ctx = await judge([GtubeCheck(), ...], raw)   # Pipeline(checks, Scorer(load_score_table()))
    found = await rule_names(raw)                          # the symbols SpamRules gives, for OURS
    raw = linked("www.paypal.com", "https://...", "S <s@mailer.example>")  # one link whose text shows a site
    action = shipped_action("BAYES_SPAM", "MIME_HTML_ONLY")  # what the shipped scores make of these symbols
"""

from __future__ import annotations

import email.utils
import itertools
import time
from collections.abc import Sequence

from mailbastion.core.address import parse_address
from mailbastion.core.envelope import Envelope
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action, Symbol, Verdict
from mailbastion.policy.check import Check, CheckContext
from mailbastion.policy.checks.spam_rules import SpamRulesCheck
from mailbastion.policy.pipeline import Pipeline
from mailbastion.policy.scoring import Scorer, load_score_table
from mailbastion.spam.lookalike import OwnIdentity
from mailbastion.spam.rules import SpamRules

OUTSIDE_IP = "198.51.100.7"
_IDS = itertools.count(1000)

BUSINESS_TEXT = """Hello Bob,

please find below the agenda for Thursday's project review. We will go through the open items of the
migration plan, the budget for the second quarter and the test schedule agreed with the operations team.

1. Status of the database migration (Carol)
2. Budget review for Q2 (Dave)
3. Test schedule and sign-off

The meeting room is booked from 10:00 to 11:30. Let me know if you cannot attend.

Kind regards,
Alice
"""


def mail(*, subject: str | None = "Agenda for Thursday's project review", text: str | None = BUSINESS_TEXT,
         html: str | None = None, from_: str = "Alice Example <alice@partner.example>",
         date: float | None = None, extra: Sequence[tuple[str, str]] = (), message_id: bool = True,
         attachment: tuple[str, str] | None = None) -> bytes:
    """A message as bytes. text/html both given: multipart/alternative. attachment=(content-type, filename)."""
    lines = [f"From: {from_}", "To: Bob <bob@example.com>"]
    if subject is not None:
        lines.append(f"Subject: {subject}")
    lines.append(f"Date: {email.utils.formatdate(date if date is not None else time.time())}")
    if message_id:
        domain = email.utils.parseaddr(from_)[1].rpartition("@")[2] or "example.invalid"
        lines.append(f"Message-ID: <{next(_IDS)}.{int(time.time())}@{domain}>")
    lines += [f"{k}: {v}" for k, v in extra]
    lines.append("MIME-Version: 1.0")
    parts: list[tuple[str, str]] = []
    if text is not None:
        parts.append(("text/plain; charset=utf-8", text))
    if html is not None:
        parts.append(("text/html; charset=utf-8", html))
    if len(parts) == 1 and attachment is None:
        lines.append(f"Content-Type: {parts[0][0]}")
        body = parts[0][1]
    else:
        kind = "alternative" if attachment is None else "mixed"
        lines.append(f'Content-Type: multipart/{kind}; boundary="BOUNDARY"')
        chunks = [f"--BOUNDARY\nContent-Type: {ct}\n\n{b}" for ct, b in parts]
        if attachment is not None:
            ct, name = attachment
            chunks.append(f'--BOUNDARY\nContent-Type: {ct}; name="{name}"\nContent-Disposition: attachment; '
                          f'filename="{name}"\nContent-Transfer-Encoding: base64\n\nAAAA')
        body = "\n".join(chunks) + "\n--BOUNDARY--"
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n") + "\r\n").encode("utf-8")


def business_mail() -> bytes:
    return mail()


SPAM_TEXT = """Dear friend,

CONGRATULATIONS!!! You have been selected to receive a FREE $1000 gift card. Click here now to claim your
prize, limited time offer, act now! Lose weight fast, cheap viagra, no prescription needed, 100% guaranteed.
Make money fast working from home, earn $5000 per week. Unsubscribe here. Order now, best price online!!!
"""


def spam_mail() -> bytes:
    return mail(subject="FREE $1000 GIFT CARD - CLAIM YOUR PRIZE NOW!!!", text=SPAM_TEXT,
                from_="Best Offers <offers@cheap-deals.example>")


def context(raw: bytes, *, ip: str = OUTSIDE_IP, authenticated_as: str | None = None, relay: bool = False,
            sender: str | None = "alice@partner.example", rcpts: Sequence[str] = ("bob@example.com",),
            stage: Stage = Stage.DATA) -> CheckContext:
    peer = PeerInfo(ip=ip, authenticated_as=authenticated_as, is_relay_network=relay)
    env = Envelope(sender=parse_address(sender) if sender else None,
                   recipients=tuple(parse_address(r) for r in rcpts))
    return CheckContext(stage, peer, env, message=SpooledMessage(raw) if stage is Stage.DATA else None)


async def judge(checks: Sequence[Check], raw: bytes, **kw: object) -> tuple[Verdict, CheckContext]:
    pipeline = Pipeline(checks, Scorer(load_score_table()))
    ctx = context(raw, **kw)  # type: ignore[arg-type]
    out = await pipeline.run_stage(ctx)
    return pipeline.decide(out.symbols, out.forced, out.edits), ctx


def names(verdict: Verdict) -> set[str]:
    return set(verdict.symbol_names)


OURS = OwnIdentity.of(["example.com"], ["alice.smith@example.com"])  # our domain and one of our users


async def rule_names(raw: bytes, **kw: object) -> set[str]:
    """The symbols the spam rules (for OURS) give `raw`; `kw` as for `context`."""
    verdict, _ = await judge([SpamRulesCheck(SpamRules(OURS))], raw, **kw)
    return names(verdict)


def linked(shown: str, href: str, from_: str) -> bytes:
    """An HTML-only message from `from_` with one link to `href` whose text is `shown`."""
    return mail(text=None, from_=from_,
                html=f'<html><body><p>This week\'s programme.</p><a href="{href}">{shown}</a></body></html>')


def shipped_action(*symbols: str) -> Action:
    """The action the shipped scores and thresholds give these symbols (each once, no detail)."""
    return Scorer(load_score_table()).decide([Symbol(s) for s in symbols], None).action
