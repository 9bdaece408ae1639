"""Issue 8 item 11, eighth pass (docs/spam-quality.md, "Eighth session"): four signs of how a message was sent. Each
fires on a small message of the shape it names and stays quiet on its ordinary look-alike; the three read from the
relays' trace fields are for mail from outside only."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from spamkit import OURS, mail, rule_names

from mailbastion.policy.scoring import load_score_table
from mailbastion.spam.rules import RULE_SYMBOLS

NEW = ("MUA_OUTLOOK_FORGED", "RCVD_NUMERIC_HELO", "RCVD_HELO_DOMAIN_NO_RDNS", "MSGID_ADDED_BY_RELAY")
WHEN = "Tue, 21 May 2002 12:10:24 +0100"
PUBLIC = "81.2.69.160"  # a public address, as text in a header only: nothing connects to it



def received(value: str) -> tuple[str, str]:
    return ("Received", value)


def relay_made_id(*, hop: str, queue_id: str = "g4LBANe03301") -> bytes:
    """A message that left its sender without a Message-ID: the relay `hop` describes wrote one from its queue id."""
    return mail(message_id=False, extra=[
        ("Message-ID", f"<200205211110.{queue_id}@relay.example.net>"),
        received(f"{hop} by relay.example.net (8.11.6/8.11.6) with SMTP id {queue_id} for <bob@example.com>; {WHEN}"),
    ])


FIRES = [
    (mail(extra=[("X-Mailer", "Microsoft Outlook Express 6.00.2600.0000")]), "MUA_OUTLOOK_FORGED"),
    (mail(extra=[("X-Mailer", "Microsoft Outlook Express 5.00.2615.200")]), "MUA_OUTLOOK_FORGED"),
    (mail(extra=[("X-Mailer", "Microsoft Outlook, Build 10.0.2627")]), "MUA_OUTLOOK_FORGED"),
    (mail(extra=[("X-Mailer", "Microsoft Office Outlook 12.0")]), "MUA_OUTLOOK_FORGED"),
    (mail(extra=[received(f"from {PUBLIC} ([{PUBLIC}]) by mx.relay.example (8.11.6/8.11.6) with SMTP id g4LBANe03301 "
                          f"for <bob@example.com>; {WHEN}")]), "RCVD_NUMERIC_HELO"),
    (mail(extra=[received(f"from shop-offers.com (unknown [{PUBLIC}]) by mx.relay.example (Postfix) with SMTP id "
                          f"7A551DE087 for <bob@example.com>; {WHEN}")]), "RCVD_HELO_DOMAIN_NO_RDNS"),
    (mail(extra=[received(f"from shop-offers.com ([{PUBLIC}]) by mx.relay.example (8.11.6/8.11.6) with SMTP id "
                          f"g4LBANe03301; {WHEN}")]), "RCVD_HELO_DOMAIN_NO_RDNS"),
    # A client with no reverse DNS name, as sendmail, Postfix, Exim and qmail write it.
    (relay_made_id(hop=f"from sender.example.org ([{PUBLIC}])"), "MSGID_ADDED_BY_RELAY"),
    (relay_made_id(hop=f"from sender.example.org (unknown [{PUBLIC}])"), "MSGID_ADDED_BY_RELAY"),
    (relay_made_id(hop=f"from [{PUBLIC}] (helo=sender.example.org)"), "MSGID_ADDED_BY_RELAY"),
    (relay_made_id(hop="from unknown (HELO sender.example.org) (81.2.69.160)"), "MSGID_ADDED_BY_RELAY"),
]

QUIET = [
    # Outlook Express and Outlook 2000-2003 for Windows write X-MimeOLE, Outlook 2007 and later a Thread-Index; the
    # Macintosh editions write neither.
    (mail(extra=[("X-Mailer", "Microsoft Outlook Express 6.00.2800.1106"),
                 ("X-MimeOLE", "Produced By Microsoft MimeOLE V6.00.2800.1106")]), "MUA_OUTLOOK_FORGED"),
    (mail(extra=[("X-Mailer", "Microsoft Outlook Express Macintosh Edition - 4.5 (0410)")]), "MUA_OUTLOOK_FORGED"),
    (mail(extra=[("X-Mailer", "Microsoft Office Outlook 12.0"), ("Thread-Index", "AcJKjUYutqtDNiZHR8eiGqDeY7qIUw==")]),
     "MUA_OUTLOOK_FORGED"),
    (mail(extra=[("X-Mailer", "Microsoft Outlook, Build 10.0.2627"),
                 ("X-MimeOLE", "Produced By Microsoft MimeOLE V6.00.2800.1106")]), "MUA_OUTLOOK_FORGED"),
    (mail(extra=[("X-Mailer", "Microsoft-MacOutlook/16.78.23121017")]), "MUA_OUTLOOK_FORGED"),
    # Webmail records the browser's address, not a greeting; a private address is the sender's own network.
    (mail(extra=[received(f"from {PUBLIC} by lw11fd.law11.hotmail.msn.com with HTTP; {WHEN}")]), "RCVD_NUMERIC_HELO"),
    (mail(extra=[received(f"from 192.168.1.5 ([192.168.1.5]) by mail.partner.example with ESMTP id 4F2A9C01; {WHEN}")]),
     "RCVD_NUMERIC_HELO"),
    (mail(extra=[received(f"from [{PUBLIC}] (dsl-7.isp.example.org [{PUBLIC}]) by mx.relay.example with ESMTPSA id "
                          f"4F2A9C01; {WHEN}")]), "RCVD_NUMERIC_HELO"),  # an address literal is what RFC 5321 asks for
    # EHLO, or a reverse DNS name, or a host name rather than a bare domain: how ordinary servers greet.
    (mail(extra=[received(f"from shop-offers.com (unknown [{PUBLIC}]) by mx.relay.example (Postfix) with ESMTP id "
                          f"7A551DE087; {WHEN}")]), "RCVD_HELO_DOMAIN_NO_RDNS"),
    (mail(extra=[received(f"from shop-offers.com (mail.shop-offers.com [{PUBLIC}]) by mx.relay.example (Postfix) with "
                          f"SMTP id 7A551DE087; {WHEN}")]), "RCVD_HELO_DOMAIN_NO_RDNS"),
    (mail(extra=[received(f"from mail.shop-offers.com (unknown [{PUBLIC}]) by mx.relay.example (Postfix) with SMTP id "
                          f"7A551DE087; {WHEN}")]), "RCVD_HELO_DOMAIN_NO_RDNS"),
    # The sender's own Message-ID; a relay's Message-ID for mail submitted on that machine (a script, cron).
    (mail(extra=[received(f"from sender.example.org (dsl-7.isp.example.org [{PUBLIC}]) by relay.example.net with "
                          f"SMTP id g4LBANe03301; {WHEN}")]), "MSGID_ADDED_BY_RELAY"),
    (relay_made_id(hop="(from www@localhost)").replace(b"with SMTP ", b""), "MSGID_ADDED_BY_RELAY"),
    (relay_made_id(hop="from localhost (localhost [127.0.0.1])"), "MSGID_ADDED_BY_RELAY"),
    # A named server's mail without a Message-ID (a 2002 newsletter from its own host) is not marked.
    (relay_made_id(hop=f"from news.example.org (news.example.org [{PUBLIC}])"), "MSGID_ADDED_BY_RELAY"),
    (relay_made_id(hop=f"from news.example.org ([{PUBLIC}] helo=news.example.org)"), "MSGID_ADDED_BY_RELAY"),
    (relay_made_id(hop="from news.example.org (HELO news) (81.2.69.160)"), "MSGID_ADDED_BY_RELAY"),
]


@pytest.mark.parametrize(("raw", "symbol"), FIRES)
async def test_rule_fires(raw: bytes, symbol: str) -> None:
    assert symbol in await rule_names(raw)


@pytest.mark.parametrize(("raw", "symbol"), QUIET)
async def test_rule_stays_quiet(raw: bytes, symbol: str) -> None:
    assert symbol not in await rule_names(raw)


@pytest.mark.parametrize("kw", [{"relay": True}, {"authenticated_as": "alice@example.com"}])
async def test_trace_rules_leave_our_own_users_and_networks_alone(kw: dict[str, object]) -> None:
    """An internal relay or a user who logged in may come through hosts with odd greetings: the trace rules judge
    only mail from outside (the same message from outside carries all three)."""
    raw = relay_made_id(hop=f"from {PUBLIC} ([{PUBLIC}])") + b""
    raw = raw.replace(b"MIME-Version", f"Received: from shop-offers.com (unknown [{PUBLIC}]) by mx.relay.example "
                                       f"(Postfix) with SMTP id 7A551DE087; {WHEN}\r\nMIME-Version".encode())
    trace = {"RCVD_NUMERIC_HELO", "RCVD_HELO_DOMAIN_NO_RDNS", "MSGID_ADDED_BY_RELAY"}
    assert trace <= await rule_names(raw)
    assert not trace & await rule_names(raw, **kw)


def test_each_new_sign_is_declared_and_weighed_below_the_mark_alone() -> None:
    """Declared by the check and weighed in config/scores/spam.toml; none marks a message on its own (add_header 5)."""
    table = load_score_table()
    for name in NEW:
        assert name in RULE_SYMBOLS
        assert 0 < table.symbols[name].weight < table.thresholds.add_header, name


async def test_a_crafted_trace_field_is_read_only_as_far_as_a_real_one_goes() -> None:
    """A Received field of a megabyte ("by a by a ..." with no queue id) once made the relay lookup backtrack
    over every "by" (seconds of CPU in the event loop); the rules now read each field's first
    TRACE_FIELD_MAX_CHARS and one "by". The verdict on such a message is the ordinary one."""
    from mailbastion.spam.features import extract_bytes
    from mailbastion.spam.rules import TRACE_FIELD_MAX_CHARS, _trace_fields

    crafted = "by a " * 200_000
    raw = mail(extra=[received(crafted), received(f"from {PUBLIC} ([{PUBLIC}]) by mx.relay.example with SMTP id "
                                                  f"7A551DE087 {'x' * 5000}")])
    fields = _trace_fields(extract_bytes(raw))
    assert len(fields) == 2 and all(len(f) <= TRACE_FIELD_MAX_CHARS for f in fields)
    assert "RCVD_NUMERIC_HELO" in await rule_names(raw)  # what a real field says is still read


async def test_header_fields_are_read_up_to_a_bound_however_long_or_many() -> None:
    """A field of a megabyte folded over short lines, or two thousand Cc fields, are read up to MAX_HEADER_CHARS
    (the address parser took 3.7 s per megabyte of '@'); what fits in the bound is read as before."""
    from mailbastion.spam.features import MAX_HEADER_CHARS, extract_bytes

    huge = "\r\n ".join(["FREE " * 200] * 1000)  # ~1 MB of subject
    feats = extract_bytes(mail(subject=huge))
    assert feats.subject is not None and len(feats.subject) <= MAX_HEADER_CHARS
    assert feats.subject.startswith("FREE FREE")
    many_cc = [("Cc", "@" * 900)] * 2000 + [("Cc", "undisclosed-recipients:;")]
    raw = mail(extra=many_cc)
    assert all(len(v) <= MAX_HEADER_CHARS for _k, v in extract_bytes(raw).raw_headers)
    assert "TO_UNDISCLOSED" in await rule_names(raw)  # the rules still read every field's own words


def test_a_display_name_is_read_as_far_as_a_name_goes() -> None:
    """The address pattern tried at each of 15,000 "_" of a display name took a second; the impersonation
    check reads the first DISPLAY_NAME_MAX_CHARS, where any real name is."""
    from mailbastion.spam.lookalike import DISPLAY_NAME_MAX_CHARS

    assert OURS.imitated_in("IT Support alice.smith@example.com") == "alice.smith@example.com"
    padded = "_" * DISPLAY_NAME_MAX_CHARS + " alice.smith@example.com"
    assert OURS.imitated_in(padded) is None
