"""Unit tests of the gateway edge checks: relay, recipient, HELO, headers (no sockets)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbastion.core import replies
from mailbastion.core.address import AddressError, parse_path
from mailbastion.core.envelope import Envelope
from mailbastion.core.message import SpooledMessage
from mailbastion.core.peer import PeerInfo
from mailbastion.core.stages import Stage
from mailbastion.core.verdict import Action
from mailbastion.policy.check import CheckContext, known_checks
from mailbastion.policy.checks.headers import header_counts, headers
from mailbastion.policy.checks.helo import HeloCheck, classify_helo
from mailbastion.policy.checks.recipient import RecipientCheck
from mailbastion.policy.checks.relay import RelayCheck, routing_trick
from mailbastion.policy.scoring import load_score_table
from mailbastion.testing.fakes import FakeRecipients

REC = FakeRecipients({"alice@example.net": "local", "bob@example.net": "disabled",
                      "team@example.net": ["alice@example.net"]})
OUTSIDE = PeerInfo(ip="198.51.100.7")
TRUSTED = PeerInfo(ip="10.1.2.3", is_relay_network=True)
AUTHED = PeerInfo(ip="198.51.100.7", authenticated_as="alice")


def rcpt_ctx(rcpt: str, peer: PeerInfo = OUTSIDE, sender: str = "x@example.org") -> CheckContext:
    return CheckContext(Stage.RCPT, peer, Envelope(parse_path(sender)), rcpt=parse_path(rcpt))


@pytest.mark.parametrize("rcpt", ["u@foreign.example", "u%foreign.example@example.net", "h!u@example.net",
                                  '"u@foreign.example"@example.net', '"u%f.example"@example.net',
                                  "u@[192.0.2.1]", "u@localhost", "u@sub.example.net"])
async def test_relay_denied_from_outside(rcpt: str) -> None:
    result = await RelayCheck(REC)(rcpt_ctx(rcpt))
    assert result.forced is not None
    assert (result.forced.action, result.forced.reply, result.forced.by) == (Action.REJECT, replies.RELAY_DENIED, "relay")
    assert [s.name for s in result.symbols] == ["RELAY_DENIED"]


@pytest.mark.parametrize("rcpt", ["alice@example.net", "Alice@EXAMPLE.NET", "nobody@example.net",
                                  '"john doe"@example.net'])
async def test_local_domains_pass_relay(rcpt: str) -> None:
    result = await RelayCheck(REC)(rcpt_ctx(rcpt, sender="alice@example.net"))
    assert result.forced is None and result.symbols == ()


@pytest.mark.parametrize("peer", [TRUSTED, AUTHED])
async def test_may_relay(peer: PeerInfo) -> None:
    result = await RelayCheck(REC)(rcpt_ctx("u@foreign.example", peer))
    assert result.forced is None
    assert [s.name for s in result.symbols] == ["RELAY_ALLOWED"]


@pytest.mark.parametrize("text", ["@a.example:u@foreign.example", "@a.example,@b.example:u@c.example",
                                  "u@foreign.example@example.net", "u@example.net.", "u@", "@example.net",
                                  "u@-bad.example", "u@exa_mple.net", "<u@example.net", "u@exam ple.net",
                                  "u@192.0.2.1", "u@[192.0.2.1", "jö rg@example.net", "ö<x>@example.net"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(AddressError):
        parse_path(text, allow_utf8=True)


def test_routing_trick_names() -> None:
    assert routing_trick(parse_path("u%x.example@example.net")) == "percent hack"  # type: ignore[arg-type]
    assert routing_trick(parse_path("x.example!u@example.net")) == "bang path"  # type: ignore[arg-type]
    assert routing_trick(parse_path('"a@b"@example.net')) == "quoted routing"  # type: ignore[arg-type]
    assert routing_trick(parse_path("u@[192.0.2.1]")) == "address literal"  # type: ignore[arg-type]
    assert routing_trick(parse_path("first.last+tag@example.net")) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(("rcpt", "refused"), [("alice@example.net", False), ("bob@example.net", True),
                                              ("nobody@example.net", True), ("alice+x@example.net", False),
                                              ("team@example.net", False), ("u@foreign.example", False)])
async def test_recipient_check(rcpt: str, refused: bool) -> None:
    result = await RecipientCheck(REC)(rcpt_ctx(rcpt))
    if refused:
        assert result.forced is not None and result.forced.reply == replies.UNKNOWN_USER
        assert result.forced.reply.code == 550 and result.forced.reply.status == "5.1.1"
    else:
        assert result.forced is None


@pytest.mark.parametrize(("name", "symbols"), [
    ("mail.example.org", []), ("[192.0.2.1]", []), ("[IPv6:2001:db8::1]", []), ("mail.example.org.", []),
    ("192.0.2.1", ["HELO_BARE_IP"]), ("2001:db8::1", ["HELO_BARE_IP"]), ("localhost", ["HELO_NOT_FQDN"]),
    ("DESKTOP-AB12", ["HELO_NOT_FQDN"]), ("host.123", ["HELO_NOT_FQDN"]), ("bad name!", ["HELO_BAD_SYNTAX"]),
    ("[not-an-ip]", ["HELO_BAD_SYNTAX"]), ("-x.example.org", ["HELO_BAD_SYNTAX"]),
])
def test_classify_helo(name: str, symbols: list[str]) -> None:
    assert classify_helo(name) == symbols


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(alphabet="0123456789.:abcdef%x-", max_size=24), st.ip_addresses().map(str), st.text(max_size=12)))
def test_helo_bare_ip_is_exactly_what_ipaddress_parses(name: str) -> None:
    """The cheap pre-test before ipaddress (only digits and dots, or a colon) never changes the verdict."""
    import ipaddress

    try:
        ipaddress.ip_address(name)
        is_ip = not (name.startswith("[") and name.endswith("]"))
    except ValueError:
        is_ip = False
    assert ("HELO_BARE_IP" in classify_helo(name)) == is_ip


async def test_helo_forged_ours_and_literal_mismatch() -> None:
    check = HeloCheck("mx.example.net", REC)

    async def names(helo: str, peer: PeerInfo = OUTSIDE) -> list[str]:
        ctx = CheckContext(Stage.HELO, peer.evolve(helo=helo), Envelope(None, helo=helo))
        return [s.name for s in (await check(ctx)).symbols]

    assert await names("MX.example.net") == ["HELO_FORGED_OURS"]
    assert await names("example.net") == ["HELO_FORGED_OURS"]
    assert await names("example.net", TRUSTED) == []
    assert await names("[192.0.2.1]") == ["HELO_LITERAL_MISMATCH"]
    assert await names("[198.51.100.7]") == []


async def run_headers(raw: bytes, *, eightbit: bool = False) -> list[str]:
    ctx = CheckContext(Stage.DATA, OUTSIDE, Envelope(None, body_8bitmime=eightbit), message=SpooledMessage(raw))
    return sorted(s.name for s in (await headers(ctx)).symbols)


async def test_headers_check() -> None:
    good = b"From: a@x.example\r\nDate: Sat, 28 Nov 2026 03:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\nhi\r\n"
    assert await run_headers(good) == []
    assert await run_headers(b"Subject: x\r\n\r\nFrom: in the body\r\n") == ["MISSING_DATE", "MISSING_FROM",
                                                                            "MISSING_MID"]
    two = b"From: a@x.example\r\nfrom: b@y.example\r\n" + good
    assert "MULTIPLE_FROM" in await run_headers(two)
    utf8 = good.replace(b"hi", "h\u00e9".encode())
    assert await run_headers(utf8) == ["EIGHTBIT_UNDECLARED"]
    assert await run_headers(utf8, eightbit=True) == []


def test_header_counts_skip_continuations() -> None:
    assert header_counts(b"From: a\r\n from: folded\r\nDATE: x") == {"from": 1, "date": 1}


def test_every_gateway_symbol_is_scored() -> None:
    import mailbastion.apps.pipeline  # noqa: F401  (registers every check, as serve does)

    table = load_score_table()
    table.validate_known()
    for name in ("relay", "recipient", "helo", "headers"):
        for symbol in known_checks()[name]:
            if not symbol.endswith("_CHECK_ERROR"):
                assert symbol in table.symbols, symbol
