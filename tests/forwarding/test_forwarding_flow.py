"""Mail for our addresses that goes on outside our domains, through a real `mailbastion serve`: an alias to an
outside address reaches the remote MX with an SRS envelope sender and an ARC set that dkimpy verifies against
the loopback DNS; a bounce to that SRS address goes back to the original sender; a forged or expired SRS
address is refused at RCPT; a leaver's forward to an outside successor answers each sender once (RFC 3834),
never a null sender or a list."""

from __future__ import annotations

import time
from email.utils import formatdate, make_msgid

import dkim
import dns.message
import dns.query
import dns.rdatatype
from forwarding_world import LEAVER, SUCCESSOR
from submission_world import DOMAIN, World, wait

from mailbastion.outbound.srs import Srs, load_or_create_key
from mailbastion.testing.mx_sink import SinkMessage


def inbound(subject: str, *, sender: str = "dave@sender.test", to: str = f"fwd@{DOMAIN}", extra: str = "") -> bytes:
    return (f"From: Dave <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {formatdate()}\r\n"
            f"Message-ID: {make_msgid(domain='sender.test')}\r\nMIME-Version: 1.0\r\n{extra}"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nThe figures for the quarter.\r\n").encode()


def srs(world: World) -> Srs:
    return Srs(load_or_create_key(world.d.root / "srs.key"))


def arc_verify(world: World, raw: bytes) -> tuple[bytes, str]:
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        q = dns.message.make_query(name.decode().rstrip("."), dns.rdatatype.TXT)
        r = dns.query.udp(q, world.dns.host, port=world.dns.port, timeout=5)
        for rrset in r.answer:
            for rd in rrset:
                return b"".join(rd.strings)  # type: ignore[attr-defined,no-any-return]
        return b""

    cv, _results, reason = dkim.arc_verify(raw, dnsfunc=dnsfunc)
    return cv, reason


def at_sink(world: World, subject: str, rcpt: str) -> SinkMessage:
    return world.wait_at_sink(lambda m: f"Subject: {subject}".encode() in m.content and rcpt in m.rcpt_tos,
                              f"{subject!r} for {rcpt} at the remote MX")


def test_srs_key_made_by_init_is_private(world: World) -> None:
    key = world.d.root / "srs.key"
    assert key.stat().st_mode & 0o077 == 0
    assert len(load_or_create_key(key)) >= 16
    assert key.read_text().strip() not in world.d.config.read_text()  # the secret is never in the config


def test_alias_to_outside_arrives_with_srs_sender_and_a_verifying_arc_seal(world: World) -> None:
    world.d.send("dave@sender.test", [f"fwd@{DOMAIN}"], inbound("forwarded outside"))
    got = at_sink(world, "forwarded outside", "carol@remote.test")
    assert got.rcpt_tos == ["carol@remote.test"]
    assert got.mail_from.startswith("SRS0=") and got.mail_from.endswith(f"@{DOMAIN}"), got.mail_from
    assert srs(world).reverse(got.mail_from) == "dave@sender.test"
    head = got.content.split(b"\r\n\r\n", 1)[0]
    assert head.count(b"ARC-Seal: i=1;") == 1 and b"ARC-Message-Signature: i=1;" in head
    # the Authentication-Results our gateway wrote are what the seal carries
    assert b"ARC-Authentication-Results: i=1; mail.example.test" in head
    cv, reason = arc_verify(world, got.content)
    assert cv == b"pass", reason


def test_an_alias_with_local_and_outside_targets_reaches_both(world: World) -> None:
    world.d.send("dave@sender.test", [f"team@{DOMAIN}"], inbound("for the team", to=f"team@{DOMAIN}"))
    got = at_sink(world, "for the team", "dan@remote.test")
    assert got.rcpt_tos == ["dan@remote.test"] and got.mail_from.startswith("SRS0=")
    copies = world.d.wait_delivered(f"alice@{DOMAIN}", 1, timeout=60)
    assert any(b"Subject: for the team" in c for c in copies)


def test_a_bounce_to_our_srs_address_goes_back_to_the_original_sender(world: World) -> None:
    world.d.send("erika@sender.test", [f"fwd@{DOMAIN}"], inbound("will bounce", sender="erika@sender.test"))
    forwarded = at_sink(world, "will bounce", "carol@remote.test")
    srs_address = forwarded.mail_from
    dsn = (f"From: MAILER-DAEMON@remote.test\r\nTo: <{srs_address}>\r\nSubject: Undelivered Mail Returned\r\n"
           f"Date: {formatdate()}\r\nMessage-ID: {make_msgid(domain='remote.test')}\r\n"
           "Auto-Submitted: auto-replied\r\n\r\ncarol@remote.test: mailbox unavailable\r\n").encode()
    assert world.d.send("", [srs_address], dsn) == {}
    back = world.wait_at_sink(lambda m: m.rcpt_tos == ["erika@sender.test"] and b"Undelivered Mail Returned"
                              in m.content, "the bounce at the original sender's MX")
    assert back.mail_from in ("", "<>")


def test_forged_and_expired_srs_addresses_are_refused_as_unknown(world: World) -> None:
    real = srs(world)
    forged = f"SRS0=AbCd={real.timestamp()}=sender.test=dave@{DOMAIN}"
    old = Srs(real.key, clock=lambda: time.time() - 40 * 86400).forward("dave@sender.test", DOMAIN)
    other_key = Srs(b"x" * 32).forward("dave@sender.test", DOMAIN)
    with world.d.smtp() as s:
        s.mail("")
        for address in (forged, old, other_key):
            code, text = s.rcpt(address)
            assert (code, text[:5]) == (550, b"5.1.1"), (address, code, text)
        code, _ = s.rcpt(real.forward("dave@sender.test", DOMAIN))
        assert code == 250


def _auto_replies(world: World, to: str) -> list[SinkMessage]:
    return [m for m in list(world.sink.received) if m.rcpt_tos == [to] and b"Auto-Submitted: auto-replied" in m.content]


def test_a_forwarded_leaver_answers_each_sender_once_naming_the_successor(world: World) -> None:
    sender = "frank@sender.test"
    world.d.send(sender, [LEAVER], inbound("to the leaver 1", sender=sender, to=LEAVER))
    forwarded = at_sink(world, "to the leaver 1", SUCCESSOR)
    assert forwarded.mail_from.startswith("SRS0=")
    reply = wait(lambda: _auto_replies(world, sender), "the auto-reply at the sender's MX")[0]
    assert reply.mail_from in ("", "<>")  # RFC 3834 §3.3: the null sender
    assert f"From: {LEAVER}".encode() in reply.content and SUCCESSOR.encode() in reply.content
    assert b"Subject: Auto: to the leaver 1" in reply.content and b"In-Reply-To: <" in reply.content
    world.d.send(sender, [LEAVER], inbound("to the leaver 2", sender=sender, to=LEAVER))
    at_sink(world, "to the leaver 2", SUCCESSOR)
    wait(lambda: world.log_has(f"leaver={LEAVER} sender={sender}: answered within"), "the second reply skipped")
    assert len(_auto_replies(world, sender)) == 1


def test_no_auto_reply_to_a_null_sender_or_a_list(world: World) -> None:
    world.d.send("", [LEAVER], inbound("bounce to the leaver", sender="mailer-daemon@sender.test", to=LEAVER))
    at_sink(world, "bounce to the leaver", SUCCESSOR)
    wait(lambda: world.log_has(f"leaver={LEAVER} sender=<>: null sender"), "the null sender skipped")
    lister = "news@sender.test"
    world.d.send(lister, [LEAVER], inbound("list post", sender=lister, to=LEAVER,
                                           extra="List-Id: <news.sender.test>\r\nPrecedence: list\r\n"))
    at_sink(world, "list post", SUCCESSOR)
    wait(lambda: world.log_has(f"leaver={LEAVER} sender={lister}: "), "the list skipped")
    assert _auto_replies(world, lister) == [] and _auto_replies(world, "mailer-daemon@sender.test") == []
