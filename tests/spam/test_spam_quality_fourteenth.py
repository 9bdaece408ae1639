"""Issue 8 item 11, fourteenth pass (docs/spam-quality.md, "Fourteenth session"): how a message left its sender.

A home machine on a customer line that greets as a free-mail provider or as a bare domain, a relay's note that a
client's reverse DNS name is forged, a web server's account mailing for another domain, a Message-ID written by a
relay for a home machine, a To that shows only addresses, a display name that is another site's domain, two bulk
tools' fingerprints (a Message-ID form, a constant MIME boundary), a Message-ID with characters RFC 5322 does not
allow, and a harvested recipient list that repeats a name at several providers. Each case below that fires failed
to on the thirteenth pass's main; each quiet one is the ordinary mail beside it that must stay quiet."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from spamkit import mail, rule_names, shipped_action

from mailbastion.core.verdict import Action
from mailbastion.policy.scoring import load_score_table
from mailbastion.spam.phishing import PHISHING_SYMBOLS
from mailbastion.spam.rules import RULE_SYMBOLS, TraceClient, _trace_client

NEW = ("RCVD_HELO_FORGED", "RCVD_RDNS_FORGED", "WEB_SCRIPT_FOREIGN_FROM", "TO_NAME_IS_ADDRESS", "MSGID_RATWARE",
       "MIME_BOUNDARY_RATWARE", "FROM_DISPLAY_DOMAIN", "RCVD_DYNAMIC_DIRECT", "X_MAILER_BULK", "HEADER_REPEATED",
       "MIME_BASE64_TEXT")
WHEN = "Tue, 21 May 2002 12:10:24 +0100"
PUBLIC = "81.2.69.160"  # a public address, as text in a header only: nothing connects to it
LINE = "81-2-69-160.dsl.isp.example"  # a customer line's reverse DNS name: the address's numbers in it


def received(value: str) -> tuple[str, str]:
    return ("Received", value)


def hop(client: str, proto: str = "ESMTP", queue_id: str = "g577Plm16099") -> tuple[str, str]:
    return received(f"{client} by mx.relay.example (8.11.6/8.11.2) with {proto} id {queue_id} for <bob@example.com>; {WHEN}")


def relay_made_id(client: str) -> bytes:
    """Left its sender without a Message-ID: the relay wrote one from its queue id for the client `client`."""
    return mail(message_id=False, extra=[("Message-ID", "<200206070725.g577Plm16099@mx.relay.example>"), hop(client)])


def to(value: str, **kw: object) -> bytes:
    """A message whose To field is `value`."""
    return mail(**kw).replace(b"To: Bob <bob@example.com>", f"To: {value}".encode())  # type: ignore[arg-type]


def dated(value: str) -> bytes:
    """A message whose Date field is `value`."""
    raw = mail(date=0)
    return raw.replace(b"Date: Thu, 01 Jan 1970 00:00:00 -0000", f"Date: {value}".encode())


FIRES = [
    # A home machine straight to a remote relay, which wrote the Message-ID: the client's name is a customer line's.
    (relay_made_id(f"from whitesolder.example.com.br ({LINE} [{PUBLIC}])"), "MSGID_ADDED_BY_RELAY"),
    (relay_made_id(f"from mfa.vip.example (n2-190.adsl.isp.example [{PUBLIC}])"), "MSGID_ADDED_BY_RELAY"),
    # "localhost.com" from a public address is not a local hop (it was taken for one).
    (relay_made_id(f"from localhost.com ([{PUBLIC}])"), "MSGID_ADDED_BY_RELAY"),
    # HELO as a free-mail provider from a machine that is not the provider's, or with no name at all.
    (mail(extra=[hop(f"from mfa.vip.mail.tpe.yahoo.com (n2-190.adsl.isp.example [{PUBLIC}])")]), "RCVD_HELO_FORGED"),
    (mail(extra=[hop(f"from hotmail.com ([{PUBLIC}])")]), "RCVD_HELO_FORGED"),
    (mail(extra=[hop(f"from [{PUBLIC}] (helo=smtp.mail.yahoo.com)", "SMTP")]), "RCVD_HELO_FORGED"),
    # HELO as a bare domain ("mydomain.com") from a customer line of another provider.
    (mail(extra=[hop(f"from mydomain.com ({LINE} [{PUBLIC}])", "SMTP")]), "RCVD_HELO_FORGED"),
    (mail(extra=[hop(f"from shop-offers.com (pool-12.dialup.isp.example [{PUBLIC}])")]), "RCVD_HELO_FORGED"),
    # sendmail's note that the client's reverse DNS name does not lead back to its address.
    (mail(extra=[hop(f"from cosmin (ppp-lnk01.isp.example [{PUBLIC}] (may be forged))", "SMTP")]), "RCVD_RDNS_FORGED"),
    # A web server's account mailing for a domain the server is not (Exim's and qmail's fields).
    (mail(from_="rowespirit@yahoo.com", extra=[received(
        "from nobody by server759.webhosting.example with local (Exim 3.35 #1) id 17jOQT-00034Z-00 for "
        f"bob@example.com; {WHEN}")]), "WEB_SCRIPT_FOREIGN_FROM"),
    (mail(from_="info@coachinvest.example", message_id=False, extra=[
        ("Message-ID", "<20020903194855.30169.qmail@domainoo.example>"),
        received(f"(qmail 30170 invoked by uid 33); {WHEN}")]), "WEB_SCRIPT_FOREIGN_FROM"),
    # Every To mailbox named by its own address.
    (to('"atsxqk@cs.example " <atsxqk@cs.example>'), "TO_NAME_IS_ADDRESS"),
    # Two bulk tools' fingerprints.
    (mail(message_id=False, extra=[("Message-ID", "<4123-2200271290225570@waynemain>")]), "MSGID_RATWARE"),
    (mail(message_id=False, extra=[("Message-ID", "<41133-220025012135223220@c2235544-a>")]), "MSGID_RATWARE"),
    # A Message-ID with characters RFC 5322's msg-id does not allow (":" in id-left).
    (mail(message_id=False, extra=[("Message-ID", "<Mail2L:2122738:fork@example.com>")]), "MID_MALFORMED"),
    # A harvested list: one name at several providers, and a run from "jl" on to "jm".
    (to("<jlwright@bbnow.example>, <jlynch@dreamscape.example>, <jlynch@public.example>, "
                        "<jlytle@provantage.example>, <jm@cfriends.example>, <jm@excite.example>"), "RECIPS_DICTIONARY"),
    # A home machine handing its mail straight to another organisation's relay.
    (mail(extra=[hop(f"from mail1 (leg-63-169-229-86-nyc.home.isp.example [{PUBLIC}])")]), "RCVD_DYNAMIC_DIRECT"),
    # Bulk-mail software by name; a field allowed once, twice; a zone no clock keeps.
    (mail(extra=[("X-Mailer", "QuickSender 1.05")]), "X_MAILER_BULK"),
    (mail(extra=[("X-Mailer", "jpfree Group Mail Express V1.0")]), "X_MAILER_BULK"),
    (mail(extra=[("Cc", "carol@example.org"), ("Cc", "dave@example.org")]), "HEADER_REPEATED"),
    (mail(extra=[("Subject", "Second subject")]), "HEADER_REPEATED"),
    (dated("Sun, 21 Jul 2002 13:49:05 -1600"), "DATE_MALFORMED"),
    (dated("Sun, 21 Jul 2002 13:49:05 +0475"), "DATE_MALFORMED"),
    # The display name is another site's domain name.
    (mail(from_='"RankMyPix.com" <marjani@email2.qves.example>'), "FROM_DISPLAY_DOMAIN"),
    (mail(from_='"www.secure-banking-login.com" <alerts@mailer.example>'), "FROM_DISPLAY_DOMAIN"),
]

QUIET = [
    # A mail server of its own name, the relay's Message-ID notwithstanding; a real local hop.
    (relay_made_id(f"from mail.sender.example (mail.sender.example [{PUBLIC}])"), "MSGID_ADDED_BY_RELAY"),
    (relay_made_id("from localhost (localhost [127.0.0.1])"), "MSGID_ADDED_BY_RELAY"),
    # The provider's own machine; a server greeting with its owner's bare domain from a hosting provider's name.
    (mail(extra=[hop(f"from smtp.mail.yahoo.com (web123.mail.yahoo.com [{PUBLIC}])")]), "RCVD_HELO_FORGED"),
    (mail(extra=[hop(f"from shop-offers.com (vps12.hosting.example [{PUBLIC}])")]), "RCVD_HELO_FORGED"),
    (mail(extra=[hop(f"from shop-offers.com (mail.shop-offers.com [{PUBLIC}])")]), "RCVD_HELO_FORGED"),
    # A home machine greeting with its own bare name (what a mail client does through its provider's relay).
    (mail(extra=[hop(f"from alicebox ({LINE} [{PUBLIC}])")]), "RCVD_HELO_FORGED"),
    (mail(extra=[hop(f"from cosmin (ppp-lnk01.isp.example [{PUBLIC}])", "SMTP")]), "RCVD_RDNS_FORGED"),
    # A site's own form mailer; an ordinary user's mail on a qmail host.
    (mail(from_="orders@webhosting.example", extra=[received(
        "from www-data by shop.webhosting.example with local (Exim 4.63) id 1HcPBI-0002QN-TZ for "
        f"bob@example.com; {WHEN}")]), "WEB_SCRIPT_FOREIGN_FROM"),
    (mail(from_="info@coachinvest.example", message_id=False, extra=[
        ("Message-ID", "<20020903194855.30169.qmail@domainoo.example>"),
        received(f"(qmail 30170 invoked by uid 501); {WHEN}")]), "WEB_SCRIPT_FOREIGN_FROM"),
    # A To with a name, or with one mailbox of several named by its address.
    (mail(), "TO_NAME_IS_ADDRESS"),
    (to('"carol@example.com" <carol@example.com>, Dave <dave@example.org>'), "TO_NAME_IS_ADDRESS"),
    (mail(message_id=False, extra=[("Message-ID", "<20020903194855.30169.qmail@domainoo.example>")]), "MSGID_RATWARE"),
    (mail(message_id=False, extra=[("Message-ID", "<1234-5678@host.example>")]), "MSGID_RATWARE"),
    # What RFC 5322 allows: the obsolete quoted id-left, a domain literal, atext specials.
    (mail(message_id=False, extra=[("Message-ID", '<"a b"@example.com>')]), "MID_MALFORMED"),
    (mail(message_id=False, extra=[("Message-ID", "<abc.def@[192.0.2.1]>")]), "MID_MALFORMED"),
    (mail(message_id=False, extra=[("Message-ID", "<006001c1be4e$bf7f44c0$5bbcf80c@attbi.example>")]), "MID_MALFORMED"),
    (mail(message_id=False, extra=[("Message-ID", "<CAB+x=Yz_q-1~{}|/^`!#%&'*@mail.gmail.com>")]), "MID_MALFORMED"),
    # Colleagues in alphabetical order, sharing no letters; four sharing only the first.
    (to("<anna@a.example>, <bob@b.example>, <carl@c.example>"), "RECIPS_DICTIONARY"),
    (to("<jane@a.example>, <jim@b.example>, <john@c.example>, <judy@d.example>"), "RECIPS_DICTIONARY"),
    # A home machine through its own provider's relay (a mail client's ordinary path).
    (mail(extra=[received(f"from alicebox (c-24-98-25-152.hsd1.rr.com [{PUBLIC}]) by sm14.texas.rr.com (8.12) with "
                          f"ESMTP id g6T0MvVB017267; {WHEN}")]), "RCVD_DYNAMIC_DIRECT"),
    (mail(extra=[("X-Mailer", "Microsoft Outlook Express 6.00.2600.0000"),
                 ("X-MimeOLE", "Produced By Microsoft MimeOLE V6.00.2600.0000")]), "X_MAILER_BULK"),
    (mail(extra=[("Cc", "carol@example.org, dave@example.org")]), "HEADER_REPEATED"),
    (mail(extra=[("Received", f"from a (b [{PUBLIC}]) by c with SMTP id x; {WHEN}"),
                 ("Received", f"from d (e [{PUBLIC}]) by f with SMTP id y; {WHEN}")]), "HEADER_REPEATED"),
    (dated("Sat, 05 Dec 2026 10:00:00 +1400"), "DATE_MALFORMED"),
    (dated("Sat, 05 Dec 2026 10:00:00 -1130 (NUT)"), "DATE_MALFORMED"),
    # The site's own name; a brand's name (FROM_BRAND_MISMATCH's, weighed more); a name that is no domain.
    (mail(from_='"Example.com" <news@mail.example.com>'), "FROM_DISPLAY_DOMAIN"),
    (mail(from_='"PayPal.com" <service@mailer.example>'), "FROM_DISPLAY_DOMAIN"),
    (mail(from_='"J.Smith" <j.smith@example.org>'), "FROM_DISPLAY_DOMAIN"),
]

BOUNDARIES = [("----000000000000000000000000000000000000000000000000000000000000000", True),
              ("__________XXXXXXXXXXXX", True), ("----=_NextPart_000_005D_01C1BE1C.740AA160", False),
              ("BOUNDARY", False), ("--------------------", False)]


def base64_body(text: str, charset: str = "us-ascii") -> bytes:
    import base64

    raw = mail(text="PLACEHOLDER\n").replace(b"Content-Type: text/plain; charset=utf-8",
                                             f"Content-Type: text/plain; charset={charset}\r\n"
                                             "Content-Transfer-Encoding: base64".encode())
    return raw.replace(b"PLACEHOLDER", base64.encodebytes(text.encode(charset)).replace(b"\n", b"\r\n").strip())


async def test_plain_ascii_text_in_base64_is_marked_and_other_text_is_not() -> None:
    assert "MIME_BASE64_TEXT" in await rule_names(base64_body("Your computer can READ to you!\n"))
    assert "MIME_BASE64_TEXT" not in await rule_names(base64_body("Grüße aus Köln, bis Donnerstag.\n", "utf-8"))
    assert "MIME_BASE64_TEXT" not in await rule_names(mail())


@pytest.mark.parametrize(("raw", "symbol"), FIRES)
async def test_each_sign_fires_on_its_shape(raw: bytes, symbol: str) -> None:
    assert symbol in await rule_names(raw)


@pytest.mark.parametrize(("raw", "symbol"), QUIET)
async def test_the_ordinary_mail_beside_it_stays_quiet(raw: bytes, symbol: str) -> None:
    assert symbol not in await rule_names(raw)


@pytest.mark.parametrize(("boundary", "fires"), BOUNDARIES)
async def test_a_constant_mime_boundary_is_a_bulk_tools(boundary: str, fires: bool) -> None:
    raw = mail(html="<p>Hello</p>").replace(b'boundary="BOUNDARY"', f'boundary="{boundary}"'.encode())
    raw = raw.replace(b"--BOUNDARY", f"--{boundary}".encode())
    assert ("MIME_BOUNDARY_RATWARE" in await rule_names(raw)) is fires


async def test_trace_signs_are_read_only_for_mail_from_outside() -> None:
    raw = mail(extra=[hop(f"from hotmail.com ([{PUBLIC}])"), hop(f"from c (x [{PUBLIC}] (may be forged))")])
    assert {"RCVD_HELO_FORGED", "RCVD_RDNS_FORGED"} <= await rule_names(raw)
    assert not {"RCVD_HELO_FORGED", "RCVD_RDNS_FORGED"} & await rule_names(raw, ip="127.0.0.1", relay=True)


def test_the_trace_reader_gives_the_reverse_dns_name_and_whether_it_is_a_customer_line() -> None:
    sendmail = _trace_client(f"from mydomain.com ({LINE} [{PUBLIC}]) by c")
    assert sendmail == TraceClient("mydomain.com", PUBLIC, True, True, LINE) and sendmail.dynamic
    exim = _trace_client(f"from mail.shop.example ([{PUBLIC}] helo=shop.example) by c")
    assert exim == TraceClient("shop.example", PUBLIC, True, True, "mail.shop.example") and not exim.dynamic
    assert _trace_client(f"from x (unknown [{PUBLIC}]) by c") == TraceClient("x", PUBLIC, False, True, "")
    for name in ("c-24-98-25-152.atl.client2.isp.example", "pool-12.dialup.isp.example", "cable-7.isp.example",
                 "dhcp-4-7.campus.example", "n2-190.adsl.isp.example"):
        assert _trace_client(f"from h ({name} [{PUBLIC}]) by c").dynamic, name
    for name in ("mail.example.org", "mx1.freebsd.example", "smtp2.isp.example", "relay.dub-t3-1.nwc.example"):
        assert not _trace_client(f"from h ({name} [{PUBLIC}]) by c").dynamic, name


def test_each_new_sign_is_declared_and_weighed_below_the_mark_alone() -> None:
    """Declared by the check and weighed in config/scores/spam.toml; none marks a message on its own (add_header 5),
    and with the top classifier band alone (BAYES_SPAM_HIGH, which needs corroboration) each reaches Junk."""
    table = load_score_table()
    for name in NEW:
        assert name in RULE_SYMBOLS | PHISHING_SYMBOLS, name
        assert table.thresholds.add_header is not None
        assert 0 < table.symbols[name].weight < table.thresholds.add_header, name
        assert shipped_action(name) is Action.ACCEPT, name
        assert shipped_action("BAYES_SPAM_HIGH", name) is Action.JUNK, name


def test_an_address_that_is_none_is_read_without_an_error() -> None:
    """"[999.1.2.3]" has the form of an IPv4 address and is none: the rules read it and go on."""
    import time

    from mailbastion.spam.features import extract_bytes
    from mailbastion.spam.rules import SpamRules

    for client in ("from h ([999.1.2.3])", "from h (x.example [999.1.2.3])", "from hotmail.com ([300.2.3.4])"):
        feats = extract_bytes(relay_made_id(client))
        names = {s.name for s in SpamRules().evaluate(feats, now=time.time(), is_outside=True)}
        assert "RCVD_HELO_FORGED" not in names, client  # not a public address
