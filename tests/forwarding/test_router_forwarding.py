"""The router's forwarding decisions (delivery/router.py + delivery/forwarding.py) with the shipped fakes:
what is committed as the outside copy, what the MDA still gets, how SRS bounces are routed back, and what an
unstorable copy does. The real path (SMTP, spool, ARC verified) is in test_forwarding_flow.py."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from mailbastion.core.outcome import Deferred, Delivered, DeliveryOutcome
from mailbastion.core.ports import DeliveryRecipient, DeliveryRequest
from mailbastion.core.replies import Reply
from mailbastion.delivery.forwarding import Forwarder
from mailbastion.delivery.router import RoutingAgent
from mailbastion.outbound.srs import Srs
from mailbastion.testing.fakes import FakeRecipients, FakeSpool

SRS = Srs(b"s" * 32)


class Agent:
    def __init__(self) -> None:
        self.requests: list[DeliveryRequest] = []

    async def deliver(self, request: DeliveryRequest) -> Mapping[str, DeliveryOutcome]:
        self.requests.append(request)
        return {a: Delivered(Reply(250, "2.0.0", "ok")) for a in request.addresses}


def world(spool: FakeSpool) -> tuple[RoutingAgent, Agent, Agent]:
    recipients = FakeRecipients({"alice@ours.test": "local", "fwd@ours.test": ["carol@far.test"],
                                 "team@ours.test": ["alice@ours.test", "dan@far.test"]})
    local, remote = Agent(), Agent()
    forwarder = Forwarder(recipients=recipients, srs=SRS, spool=spool)
    return RoutingAgent(is_local_domain=recipients.is_local_domain, local=local, remote=remote,
                        forwarder=forwarder), local, remote


def request(sender: str, *rcpts: str, queue_id: str = "A1") -> DeliveryRequest:
    return DeliveryRequest(queue_id, sender, tuple(DeliveryRecipient(r) for r in rcpts),
                           b"From: <x@y.test>\r\nSubject: s\r\n\r\nbody\r\n")


def test_outside_targets_become_one_srs_copy_and_local_ones_stay_with_the_mda() -> None:
    spool = FakeSpool()
    router, local, remote = world(spool)
    out = asyncio.run(router.deliver(request("dave@sender.test", "fwd@ours.test", "team@ours.test", "alice@ours.test")))
    assert all(isinstance(o, Delivered) for o in out.values()) and set(out) == {"fwd@ours.test", "team@ours.test",
                                                                               "alice@ours.test"}
    assert "forwarded as" in out["fwd@ours.test"].reply.text
    copies = {tuple(str(r) for r in c.envelope.recipients): c for c in spool.commits}
    assert set(copies) == {("carol@far.test",), ("dan@far.test",)}
    for c in copies.values():
        assert SRS.reverse(c.envelope.sender_text) == "dave@sender.test" and c.client == "forward"
        assert c.envelope.rcpt_dsn[0].orcpt and c.envelope.rcpt_dsn[0].orcpt.startswith("rfc822;")
    assert [r.addresses for r in local.requests] == [("team@ours.test", "alice@ours.test")]
    assert remote.requests == []  # the copies go through the spool, not straight out
    again = asyncio.run(router.deliver(request("dave@sender.test", "team@ours.test")))  # a retry of the same entry
    assert isinstance(again["team@ours.test"], Delivered) and len(spool.commits) == 2  # no second copy


def test_null_and_own_senders_are_not_rewritten() -> None:
    spool = FakeSpool()
    router, _, _ = world(spool)
    asyncio.run(router.deliver(request("", "fwd@ours.test", queue_id="B1")))
    asyncio.run(router.deliver(request("alice@ours.test", "fwd@ours.test", queue_id="B2")))
    assert [c.envelope.sender_text for c in spool.commits] == ["", "alice@ours.test"]


def test_an_srs_form_too_long_for_a_local_part_uses_postmaster() -> None:
    spool = FakeSpool()
    router, _, _ = world(spool)
    asyncio.run(router.deliver(request(f"{'a' * 60}@sender.test", "fwd@ours.test")))
    assert spool.commits[0].envelope.sender_text == "postmaster@ours.test"


def test_bounces_to_srs_addresses_go_to_the_original_once() -> None:
    router, local, remote = world(FakeSpool())
    first = SRS.forward("dave@sender.test", "ours.test")
    second = SRS.forward("dave@sender.test", "ours.test").replace("SRS0=", "srs0=")
    out = asyncio.run(router.deliver(request("", first, second)))
    assert set(out) == {first, second} and all(isinstance(o, Delivered) for o in out.values())
    assert [r.addresses for r in remote.requests] == [("dave@sender.test",)] and local.requests == []


def test_a_copy_that_cannot_be_stored_defers_the_alias() -> None:
    router, local, _ = world(FakeSpool(full=True))
    out = asyncio.run(router.deliver(request("dave@sender.test", "fwd@ours.test", "alice@ours.test")))
    assert isinstance(out["fwd@ours.test"], Deferred) and isinstance(out["alice@ours.test"], Delivered)
    assert [r.addresses for r in local.requests] == [("alice@ours.test",)]
