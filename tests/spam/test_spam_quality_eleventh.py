"""Issue 8 item 11, eleventh pass (docs/spam-quality.md, "Eleventh session"): the destination an open redirect or a
tracker carries in its query is judged like a link (a shortener or an abused top-level domain behind it), the
Reply-To domain is read for an abused top-level domain, FTX is a brand, and a link whose text names one site is no
mismatch when it goes through the sender's own domain or its query carries that site."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from spamkit import linked, mail, rule_names

from mailbastion.spam.features import MAX_REDIRECT_URLS, extract_bytes, redirect_hosts


@pytest.mark.parametrize(("url", "hosts"), [
    # percent-encoded once, as the query is parsed (VK's away page)
    ("https://vk.com/away.php?utf=1&to=https%3A%2F%2Ftinyurl.com%2Fzz5e2u5k", ("tinyurl.com",)),
    # written out, any parameter name
    ("https://track.esp.test/c?id=7&returnurl=https://e-multicom.gr/d/", ("e-multicom.gr",)),
    # encoded twice over, as nested trackers write it
    ("https://a.test/r?u=https%253A%252F%252Fbit.ly%252Fabc", ("bit.ly",)),
    # scheme-relative
    ("https://a.test/r?next=%2F%2Fevil.example%2Fx", ("evil.example",)),
    # without a scheme, as some trackers write it
    ("http://WindowsSecrets.com/links/p3472n61w1axd/9be712h/?url=www.viosoftware.com%2F", ("www.viosoftware.com",)),
    # two destinations, each once
    ("https://a.test/r?u=https://b.example/&v=http://c.example/x&w=https://b.example/y", ("b.example", "c.example")),
])
def test_the_destinations_a_link_carries_are_read(url: str, hosts: tuple[str, ...]) -> None:
    assert redirect_hosts([url]) == hosts


@pytest.mark.parametrize("url", [
    "https://shop.example/item?id=42&ref=mail",  # no address in the query
    "https://shop.example/search?q=http+tutorial",  # the word "http", not an address
    "https://shop.example/path/https://other.example/",  # in the path, not the query
    "https://shop.example/#u=https://other.example/",  # in the fragment
    "https://a.test/r?u=https%3A%2F%2F",  # an address without a host
    "https://a.test/r?%%%=%zz&u=https%3A%2F%2Fbad host%2F",  # malformed: no host with a dot, nothing raised
])
def test_queries_without_a_carried_address_give_none(url: str) -> None:
    assert redirect_hosts([url]) == ()


def test_reading_is_bounded() -> None:
    urls = [f"https://a.test/r?u=https://h{n}.example/" for n in range(MAX_REDIRECT_URLS + 5)]
    assert len(redirect_hosts(urls)) == MAX_REDIRECT_URLS


def html_mail(href: str, **kw: object) -> bytes:
    return mail(text=None, html=f'<html><body><p>Your parcel is waiting.</p><a href="{href}">Track it</a></body></html>',
                **kw)  # type: ignore[arg-type]


VK_TO_TINYURL = "https://vk.com/away.php?utf=1&amp;to=https%3A%2F%2Ftinyurl.com%2Fzz5e2u5k"


async def test_a_shortener_behind_an_open_redirect_is_a_shortener() -> None:
    raw = html_mail(VK_TO_TINYURL)
    feats = extract_bytes(raw)
    assert "tinyurl.com" not in feats.url_hosts  # the classifier's view is unchanged
    assert feats.redirect_hosts == ("tinyurl.com",)
    found = await rule_names(raw)
    assert {"URI_SHORTENER", "URI_REDIRECTOR"} <= found


async def test_a_tracker_to_an_ordinary_site_is_only_shown() -> None:
    found = await rule_names(html_mail("https://click.esp.example/c?url=https%3A%2F%2Fwww.partner.example%2Fnews"))
    assert "URI_REDIRECTOR" in found  # weight 0: shown in the log
    assert not {"URI_SHORTENER", "ABUSED_TLD"} & found


async def test_an_abused_top_level_domain_behind_a_redirect_is_read() -> None:
    found = await rule_names(html_mail("https://www.google.com/url?q=https://claim-now.shop/x"))
    assert "ABUSED_TLD" in found


async def test_a_reply_to_on_an_abused_top_level_domain_is_marked() -> None:
    raw = mail(extra=[("Reply-To", "electrum@liveagent.uno")])
    assert "ABUSED_TLD" in await rule_names(raw)
    assert "ABUSED_TLD" not in await rule_names(mail(extra=[("Reply-To", "sales@partner.example")]))


async def test_ftx_in_a_display_name_must_come_from_ftx() -> None:
    forged = mail(from_='"Claim Assist(FTX)" <claims-ivsig@iceapple.tech>')
    assert "FROM_BRAND_MISMATCH" in await rule_names(forged)
    own = mail(from_='"FTX Claims" <claims@ftx.com>')
    assert "FROM_BRAND_MISMATCH" not in await rule_names(own)


@pytest.mark.parametrize(("shown", "href", "from_"), [
    # an events mailer sending in its own name, every link through its own click counter
    ("www.infocastinc.com", "http://cmgr.netcontentinc.net/chandler/proxy.aspx?lid=4F2E9106",
     "Infocast <Infocast@calcium.netcontentinc.net>"),
    # a tracker whose query carries the very site the text shows (Constant Contact's rs6.net)
    ("http://www.genesearch.com.au", "http://rs6.net/tn.jsp?t=ipfoc9bab.0&p=http%3A%2F%2Fwww.genesearch.com.au%2F",
     "Genesearch <enews@genesearch.com.au>"),
    # the newsletter's own link counter, the destination written without a scheme
    ("VioSoftware.com", "http://WindowsSecrets.com/links/p3472n61w1axd/9be712h/?url=www.viosoftware.com%2F",
     '"Windows Secrets" <Editor@WindowsSecrets.com>'),
])
async def test_a_link_through_the_sender_or_to_the_site_it_shows_is_no_mismatch(shown: str, href: str,
                                                                                 from_: str) -> None:
    assert "HTML_LINK_MISMATCH" not in await rule_names(linked(shown, href, from_))


@pytest.mark.parametrize(("shown", "href", "from_"), [
    ("www.paypal.com", "https://secure-login.example/paypal", "Service <service@mailer.example>"),
    # a tracker carrying another site than the one shown, even on the sender's own domain
    ("www.paypal.com", "https://click.mailer.example/c?url=https%3A%2F%2Fsecure-login.example%2F",
     "Service <service@mailer.example>"),
    ("www.paypal.com", "https://click.tracker.example/c?url=https%3A%2F%2Fsecure-login.example%2F",
     "Service <service@mailer.example>"),
])
async def test_a_link_that_hides_where_it_goes_is_a_mismatch(shown: str, href: str, from_: str) -> None:
    assert "HTML_LINK_MISMATCH" in await rule_names(linked(shown, href, from_))


@pytest.mark.parametrize("from_", ["PayPal <service@paypal-help.example>", "Service <service@paypal-help.example>"])
async def test_a_frequently_impersonated_site_shown_through_the_senders_own_domain_is_a_mismatch(from_: str) -> None:
    """The own-domain exemption is for a newsletter's click counter, not for "www.paypal.com" through the
    phisher's own site (a domain carrying the brand's word passes FROM_BRAND_MISMATCH and the look-alike check)."""
    found = await rule_names(linked("www.paypal.com", "https://paypal-help.example/login", from_))
    assert "HTML_LINK_MISMATCH" in found
