"""GatewayHandler at DATA: header hygiene, hop limit, verdict actions, store failures, the log line."""

from __future__ import annotations

import logging

import pytest
from gateway_testkit import MESSAGE, Gateway, GatewayFactory, send_message

from mailbastion.core.stages import Stage
from mailbastion.core.verdict import CheckResult, Edit, Folder
from mailbastion.policy.check import CheckContext, FunctionCheck
from mailbastion.policy.scoring import Thresholds
from mailbastion.testing.fakes import FakeSpool

BARE = b"Subject: no from, no date, no id\r\n\r\nbody\r\n"  # MISSING_FROM + MISSING_DATE + MISSING_MID = 3.5
OFF = {"add_header": None, "junk": None, "quarantine": None, "soft_reject": None, "reject": None}


def only(**kw: float) -> Thresholds:
    return Thresholds(**{**OFF, **kw})  # type: ignore[arg-type]


async def test_internal_headers_are_stripped(gateway: Gateway) -> None:
    d = await gateway.connect()
    msg = b"X-Mailbastion-Junk: no\r\nx-mailbastion-queue-id: forged\r\n\tfolded\r\n" + MESSAGE
    assert (await send_message(d, content=msg))[-1].code == 250
    stored = gateway.spool.commits[0].message
    assert b"mailbastion-junk: no" not in stored.lower()
    assert b"forged" not in stored and b"folded" not in stored
    assert stored.endswith(MESSAGE)
    await d.close()


async def test_hop_limit(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(smtp={"max_hops": 5})
    d = await gw.connect()
    looped = b"Received: from a by b; Sat, 28 Nov 2026 03:00:00 +0000\r\n" * 5 + MESSAGE
    r = (await send_message(d, content=looped))[-1]
    assert (r.code, r.status) == (554, "5.4.6")
    assert gw.spool.commits == []
    ok = b"Received: from a by b; Sat, 28 Nov 2026 03:00:00 +0000\r\n" * 4 + MESSAGE
    d2 = await gw.connect()
    assert (await send_message(d2, content=ok))[-1].code == 250
    assert gw.spool.commits[0].hops == 4
    await d.close()
    await d2.close()


async def test_add_header(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(thresholds=only(add_header=1.0))
    d = await gw.connect()
    assert (await send_message(d, content=BARE))[-1].code == 250
    stored = gw.spool.commits[0].message
    assert b"X-Spam-Score: 3.50\r\n" in stored
    assert b"X-Spam-Status: Yes, score=3.50 required=1.00 tests=" in stored
    assert b"MISSING_FROM" in stored
    assert stored.startswith(b"Received: ")  # the trace header stays on top (RFC 5321 §4.4)
    assert gw.spool.commits[0].folder is Folder.INBOX
    await d.close()


async def test_accept_has_no_spam_headers(gateway: Gateway) -> None:
    d = await gateway.connect()
    await send_message(d)
    assert b"X-Spam-" not in gateway.spool.commits[0].message
    await d.close()


async def test_junk(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(thresholds=only(junk=1.0))
    d = await gw.connect()
    assert (await send_message(d, content=BARE))[-1].code == 250
    assert gw.spool.commits[0].folder is Folder.JUNK  # the verdict's folder: the LMTP link carries it
    assert b"X-Mailbastion-Junk" not in gw.spool.commits[0].message
    await d.close()


async def test_quarantine(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(thresholds=only(quarantine=1.0))
    d = await gw.connect()
    r = (await send_message(d, content=BARE))[-1]
    assert r.code == 250
    assert gw.spool.commits == []
    assert len(gw.quarantine.held) == 1 and gw.quarantine.held[0].quarantine_id in r.text
    await d.close()


async def test_quarantine_without_sink_is_temporary(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(thresholds=only(quarantine=1.0), quarantine=False)
    d = await gw.connect()
    assert (await send_message(d, content=BARE))[-1].code == 451
    assert gw.spool.commits == []
    await d.close()


@pytest.mark.parametrize(("kw", "code"), [({"reject": 1.0}, 550), ({"soft_reject": 1.0}, 451)])
async def test_reject_and_soft_reject(gateway_factory: GatewayFactory, kw: dict[str, float], code: int) -> None:
    gw = await gateway_factory(thresholds=only(**kw))
    d = await gw.connect()
    assert (await send_message(d, content=BARE))[-1].code == code
    assert gw.spool.commits == [] and gw.quarantine.held == []
    await d.close()


async def test_spool_full_is_452(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(spool=FakeSpool(full=True))
    d = await gw.connect()
    r = (await send_message(d))[-1]
    assert (r.code, r.status) == (452, "4.3.1")
    await d.close()


class _BrokenSpool(FakeSpool):
    async def commit(self, *a: object, **kw: object) -> str:
        raise RuntimeError("disk on fire")


async def test_unexpected_error_is_451_without_traceback(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(spool=_BrokenSpool())
    d = await gw.connect()
    r = (await send_message(d))[-1]
    assert (r.code, r.status) == (451, "4.3.0")
    assert "disk on fire" not in r.text and "Traceback" not in r.text
    assert (await d.cmd("NOOP")).code == 250  # the session survives
    await d.close()


async def test_edits_are_applied(gateway_factory: GatewayFactory) -> None:
    async def edit(ctx: CheckContext) -> CheckResult:
        return CheckResult(edits=(Edit.subject_tag("[SPAM]"), Edit.remove("To"), Edit.prepend("X-Test", "1")))

    gw = await gateway_factory(extra=[FunctionCheck(edit, "edit_test", Stage.DATA, frozenset())])
    d = await gw.connect()
    await send_message(d)
    stored = gw.spool.commits[0].message
    assert b"Subject: [SPAM] hello\r\n" in stored
    assert b"\r\nTo: " not in stored
    assert b"X-Test: 1\r\n" in stored
    await d.close()


async def test_log_line_per_message(gateway_factory: GatewayFactory, smtp_log: pytest.LogCaptureFixture) -> None:
    gw = await gateway_factory()
    d = await gw.connect()
    await send_message(d, content=BARE, helo="localhost")
    lines = [r.getMessage() for r in smtp_log.records if r.name == "mailbastion.smtp" and "stage=data" in r.getMessage()]
    assert len(lines) == 1
    line = lines[0]
    qid = gw.spool.commits[0].queue_id
    for part in (f"queue_id={qid}", "client=127.0.0.1", "tls=none", "sender=sender@example.org",
                 "recipients=alice@example.net", "action=accept", "score=", "reply=\"250 2.0.0\"",
                 "MISSING_DATE", "MISSING_MID", "HELO_NOT_FQDN"):
        assert part in line, (part, line)
    assert "size=" in line
    await d.close()


async def test_refused_recipient_logged(gateway: Gateway, smtp_log: pytest.LogCaptureFixture) -> None:
    d = await gateway.connect()
    await send_message(d, rcpts=("x@foreign.example",))
    lines = [r.getMessage() for r in smtp_log.records if "stage=rcpt" in r.getMessage()]
    assert len(lines) == 1 and "forced_by=relay" in lines[0] and "RELAY_DENIED" in lines[0]
    assert logging.getLogger("mailbastion.smtp").name == "mailbastion.smtp"
    await d.close()


async def test_forced_refusal_at_connect(gateway_factory: GatewayFactory) -> None:
    from mailbastion.core import replies
    from mailbastion.core.verdict import Action, Forced

    async def blocklisted(ctx: CheckContext) -> CheckResult:
        return CheckResult(forced=Forced(Action.REJECT, replies.Reply(554, "5.7.1", "Client blocked"), by="test"))

    gw = await gateway_factory(extra=[FunctionCheck(blocklisted, "block_test", Stage.CONNECT, frozenset())])
    d = await gw.connect()
    assert d.greeting is not None and (d.greeting.code, d.greeting.status) == (554, "5.7.1")
    assert await d.is_closed()


async def test_pre_data_symbols_reach_the_verdict(gateway_factory: GatewayFactory) -> None:
    from mailbastion.core.verdict import Symbol

    async def at_mail(ctx: CheckContext) -> CheckResult:
        return CheckResult.of(Symbol("MISSING_MID", "seen at MAIL"))

    gw = await gateway_factory(extra=[FunctionCheck(at_mail, "mail_test", Stage.MAIL, frozenset({"MISSING_MID"}))])
    d = await gw.connect()
    replies = await send_message(d, helo="localhost", rcpts=("alice@example.net", "x@foreign.example"))
    assert [r.code for r in replies] == [250, 250, 250, 550, 250]
    names = {(s.name, s.detail) for s in gw.spool.commits[0].verdict.symbols}
    assert ("HELO_NOT_FQDN", "localhost") in names  # from EHLO
    assert ("MISSING_MID", "seen at MAIL") in names  # from MAIL
    assert not any(n == "RELAY_DENIED" for n, _ in names)  # the refused recipient's symbols stay out
    # a second transaction on the same connection starts clean but keeps the session's HELO symbols
    assert (await d.cmd("MAIL FROM:<a@example.org>")).code == 250
    assert (await d.cmd("RCPT TO:<alice@example.net>")).code == 250
    assert (await d.message(MESSAGE)).code == 250
    second = {s.name for s in gw.spool.commits[1].verdict.symbols}
    assert "HELO_NOT_FQDN" in second
    await d.close()
