"""The look-alike check through the real auth checks and the loopback DNS server (issue 8, item 3).

The attacker owns a homograph of a well-known domain and publishes valid SPF, DKIM and DMARC for it:
authentication passes, so only the look-alike check can flag it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import idna
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "auth"))

import authkit
from authkit import Rig, message, names, rsa_key

from mailbastion.core.verdict import Action

dns_server, resolver, rig = authkit.dns_server, authkit.resolver, authkit.rig  # fixtures

ATTACKER = "198.51.100.66"
HOMOGRAPH = "xn--pypal-4ve.com"  # pаypal.com with a Cyrillic а
HOMOGRAPH_UTF8 = "pаypal.com"
LOOKALIKE = {"LOOKALIKE_OWN_DOMAIN", "LOOKALIKE_PARTNER_DOMAIN", "LOOKALIKE_BRAND_DOMAIN",
             "LOOKALIKE_MIXED_SCRIPT", "LOOKALIKE_WHOLE_SCRIPT"}


def _own_auth(rig: Rig, domain: str) -> authkit.SigningKey:
    """The attacker's domain with everything a careful sender publishes: SPF -all, DKIM, DMARC p=reject."""
    rig.dns.add(domain, "TXT", f"v=spf1 ip4:{ATTACKER} -all")
    rig.dns.add(f"_dmarc.{domain}", "TXT", "v=DMARC1; p=reject")
    return rig.publish(rsa_key(domain, "k1"))


def _assert_authenticated(verdict_names: set[str]) -> None:
    assert {"R_SPF_ALLOW", "R_DKIM_ALLOW", "DMARC_POLICY_ALLOW"} <= verdict_names


@pytest.mark.parametrize("from_domain", [HOMOGRAPH, HOMOGRAPH_UTF8], ids=["a-label", "utf8-smtputf8"])
async def test_homograph_of_a_brand_with_valid_authentication_goes_to_junk(rig: Rig, from_domain: str) -> None:
    key = _own_auth(rig, HOMOGRAPH)
    raw = key.sign(message(f"PayPal <service@{from_domain}>", subject="Your account is limited"))
    verdict, _ = await rig.judge(raw, ip=ATTACKER, sender=f"bounce@{HOMOGRAPH}", helo=f"mail.{HOMOGRAPH}")
    _assert_authenticated(names(verdict))
    assert {"LOOKALIKE_BRAND_DOMAIN", "LOOKALIKE_MIXED_SCRIPT"} <= names(verdict)
    brand = next(s for s in verdict.symbols if s.name == "LOOKALIKE_BRAND_DOMAIN")
    assert brand.detail == f"{HOMOGRAPH}~paypal.com (from)"
    assert verdict.action is Action.JUNK and verdict.forced is not None and verdict.forced.by == "lookalike"


async def test_whole_script_homograph_in_a_link(rig: Rig) -> None:
    key = _own_auth(rig, "sender.test")
    body = "Sign in at https://xn--80ak6aa92e.com/account to keep your ID.\r\n"  # аррӏе.com, all Cyrillic
    verdict, _ = await rig.judge(key.sign(message("Support <help@sender.test>", body=body)), ip=ATTACKER,
                                 sender="bounce@sender.test")
    _assert_authenticated(names(verdict))
    assert {"LOOKALIKE_BRAND_DOMAIN", "LOOKALIKE_WHOLE_SCRIPT"} <= names(verdict)
    assert "(link)" in next(s.detail for s in verdict.symbols if s.name == "LOOKALIKE_BRAND_DOMAIN")
    assert verdict.action is Action.JUNK


async def test_envelope_sender_homograph(rig: Rig) -> None:
    domain = idna.encode("dհl.com").decode()  # Armenian հ
    rig.dns.add(domain, "TXT", f"v=spf1 ip4:{ATTACKER} -all")
    verdict, _ = await rig.judge(message("Parcel <parcel@sender.test>"), ip=ATTACKER, sender=f"n@{domain}")
    assert "R_SPF_ALLOW" in names(verdict)
    found = {s.name: s.detail for s in verdict.symbols if s.name in LOOKALIKE}
    assert found.get("LOOKALIKE_BRAND_DOMAIN", "").endswith("~dhl.com (mailfrom)")
    assert verdict.action is Action.JUNK


async def test_partner_and_own_domains_are_protected(rig: Rig) -> None:
    rig.auth = {"lookalike": {"partner_domains": ["supplier.example"]}}
    rig.settings = {"spam": {"rules": {"extra_domains": ["ours.example"]}}}
    ours_homograph = idna.encode("оurs.example").decode()  # Cyrillic о
    verdict, _ = await rig.judge(message("Accounts <ap@supp1ier.example>", body=f"See https://{ours_homograph}/x\r\n"))
    found = {s.name: s.detail for s in verdict.symbols if s.name in LOOKALIKE}
    assert found["LOOKALIKE_PARTNER_DOMAIN"] == "supp1ier.example~supplier.example (from)"
    assert found["LOOKALIKE_OWN_DOMAIN"] == f"{ours_homograph}~ours.example (link)"
    assert verdict.action is Action.JUNK


async def test_a_site_extends_the_shipped_list(rig: Rig) -> None:
    raw = message("Bank <info@rnybank.example>")
    verdict, _ = await rig.judge(raw)
    assert not names(verdict) & LOOKALIKE
    rig.auth = {"lookalike": {"impersonated_domains": ["mybank.example"]}}
    verdict, _ = await rig.judge(raw)
    assert "LOOKALIKE_BRAND_DOMAIN" in names(verdict)


async def test_action_score_leaves_only_the_weights(rig: Rig) -> None:
    rig.auth = {"lookalike": {"action": "score"}}
    verdict, _ = await rig.judge(message(f"PayPal <service@{HOMOGRAPH}>"), sender=f"b@{HOMOGRAPH}")
    assert "LOOKALIKE_BRAND_DOMAIN" in names(verdict) and verdict.forced is None
    assert verdict.action >= Action.JUNK  # 6.0 + 4.0, capped at 8.0 by the group


@pytest.mark.parametrize("from_", [
    "PayPal <service@paypal.com>",           # the real one
    "PayPal <service@mail.paypal.com>",      # a subdomain of it
    "Shop <orders@paypal-shop.net>",         # another name that merely contains it: not a homograph
    "Jörg <joerg@bücher.example>",           # an ordinary IDN: one script
    "Taro <taro@例え.jp>",                    # Han and Hiragana: highly restrictive, fine
    "Ivan <ivan@яндекс.рф>",                 # Cyrillic under a Cyrillic TLD
    "Amazon <ship@amazon.fr>",               # the same name under another suffix
])
async def test_ordinary_domains_are_not_flagged(rig: Rig, from_: str) -> None:
    verdict, _ = await rig.judge(message(from_, body="See https://www.python.org/ and https://例え.jp/\r\n"),
                                 sender="x@sender.test")
    assert not names(verdict) & LOOKALIKE, verdict.describe()


async def test_disabled(rig: Rig) -> None:
    rig.auth = {"lookalike": {"enabled": False}}
    verdict, _ = await rig.judge(message(f"PayPal <service@{HOMOGRAPH}>"))
    assert not names(verdict) & LOOKALIKE
