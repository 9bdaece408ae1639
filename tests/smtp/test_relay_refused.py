"""Measure 4, no open relay: every classic trick is refused from outside and nothing is committed."""

from __future__ import annotations

import pytest
from gateway_testkit import MESSAGE, Gateway, GatewayFactory, send_message

TRICKS = [
    ("user@foreign.example", 550, "5.7.1"),  # plain relay attempt
    ("user%foreign.example@example.net", 550, "5.7.1"),  # percent hack
    ("foreign.example!user@example.net", 550, "5.7.1"),  # bang path
    ('"user@foreign.example"@example.net', 550, "5.7.1"),  # quoted local part holding @
    ('"user%foreign.example"@example.net', 550, "5.7.1"),  # quoted local part holding %
    ("@example.net:user@foreign.example", 501, "5.1.3"),  # source route
    ("@example.net,@other.example:user@foreign.example", 501, "5.1.3"),
    ("user@foreign.example@example.net", 501, "5.1.3"),  # a@b@c
    ("user@[192.0.2.1]", 550, "5.7.1"),  # address literal
    ("user@[127.0.0.1]", 550, "5.7.1"),
    ("user@example.net.", 501, "5.1.3"),  # trailing dot
    ("user@foreign.example.", 501, "5.1.3"),
    ("user@localhost", 550, "5.7.1"),
    ("user@192.0.2.1", 501, "5.1.3"),  # an IP address posing as a domain
    ("user@EXAMPLE.net@foreign.example", 501, "5.1.3"),
    ("user@example.net.foreign.example", 550, "5.7.1"),  # our domain as a prefix
    ("user@sub.example.net", 550, "5.7.1"),  # a subdomain is not our domain
]


@pytest.mark.parametrize(("rcpt", "code", "status"), TRICKS, ids=[t[0] for t in TRICKS])
async def test_relay_trick_refused(gateway: Gateway, rcpt: str, code: int, status: str) -> None:
    d = await gateway.connect()
    await d.cmd("EHLO mail.example.org")
    assert (await d.cmd("MAIL FROM:<sender@example.org>")).code == 250
    r = await d.cmd(f"RCPT TO:<{rcpt}>")
    assert (r.code, r.status) == (code, status), r
    assert (await d.cmd("DATA")).code == 503
    assert gateway.spool.commits == []
    await d.close()


async def test_local_sender_does_not_open_relay(gateway: Gateway) -> None:
    d = await gateway.connect()
    replies = await send_message(d, sender="alice@example.net", rcpts=("victim@foreign.example",))
    assert replies[-1].code == 550 and replies[-1].status == "5.7.1"
    assert gateway.spool.commits == []
    await d.close()


async def test_mixed_case_local_domain_is_local(gateway: Gateway) -> None:
    d = await gateway.connect()
    replies = await send_message(d, rcpts=("Alice@ExAmPlE.NeT",))
    assert [r.code for r in replies] == [250, 250, 250, 250]
    assert gateway.spool.commits[0].envelope.recipients[0].domain == "example.net"
    await d.close()


async def test_relay_network_may_relay(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(relay=["127.0.0.0/8"])
    d = await gw.connect()
    replies = await send_message(d, rcpts=("user@foreign.example",))
    assert [r.code for r in replies] == [250, 250, 250, 250]
    assert "RELAY_ALLOWED" in gw.spool.commits[0].verdict.symbol_names
    await d.close()


async def test_relay_network_still_refuses_nothing_weird_from_outside(gateway_factory: GatewayFactory) -> None:
    gw = await gateway_factory(relay=["10.0.0.0/8"])  # we connect from 127.0.0.1: not in it
    d = await gw.connect()
    replies = await send_message(d, rcpts=("user@foreign.example",))
    assert replies[-1].code == 550
    await d.close()


async def test_score_edits_cannot_open_the_relay(gateway_factory: GatewayFactory) -> None:
    from mailbastion.policy.scoring import Thresholds

    gw = await gateway_factory(thresholds=Thresholds(add_header=None, junk=None, quarantine=None, reject=None))
    d = await gw.connect()
    replies = await send_message(d, rcpts=("user@foreign.example",), content=MESSAGE)
    assert replies[-1].code == 550
    await d.close()


async def test_unknown_and_deactivated_recipients(gateway: Gateway) -> None:
    d = await gateway.connect()
    await d.cmd("EHLO mail.example.org")
    await d.cmd("MAIL FROM:<sender@example.org>")
    unknown = await d.cmd("RCPT TO:<nobody@example.net>")
    disabled = await d.cmd("RCPT TO:<bob@example.net>")
    assert (unknown.code, unknown.status) == (550, "5.1.1")
    assert (disabled.code, disabled.status, disabled.text) == (unknown.code, unknown.status, unknown.text)
    assert (await d.cmd("RCPT TO:<alice+news@example.net>")).code == 250  # plus tag
    assert (await d.cmd("RCPT TO:<team@example.net>")).code == 250  # alias
    assert (await d.message(MESSAGE)).code == 250
    assert [str(a) for a in gateway.spool.commits[0].envelope.recipients] == [
        "alice+news@example.net", "team@example.net"]
    await d.close()
