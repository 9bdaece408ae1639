"""What a careful attacker would try against the gateway, each with the DNS a real victim publishes."""

from __future__ import annotations

from authkit import Rig, message, names, rsa_key

from mailbastion.core.verdict import Action

BANK_MX = "192.0.2.25"
ATTACKER = "198.51.100.66"


def _bank(rig: Rig) -> None:
    """bank.test: SPF -all for its own MX, DKIM key, DMARC p=reject (subdomains included by default)."""
    rig.dns.add("bank.test", "TXT", f"v=spf1 ip4:{BANK_MX} -all")
    rig.dns.add("bank.test", "MX", "10 mx.bank.test")
    rig.dns.add("mx.bank.test", "A", BANK_MX)
    rig.dns.add("_dmarc.bank.test", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@bank.test")
    rig.publish(rsa_key("bank.test", "s1"))


async def test_unsigned_message_claiming_reject_domain(rig: Rig) -> None:
    _bank(rig)
    verdict, _ = await rig.judge(message("Bank <security@bank.test>"), ip=ATTACKER, sender="security@bank.test",
                                 helo="mx.attacker.test")
    assert verdict.action is Action.REJECT and verdict.forced.by == "dmarc"  # type: ignore[union-attr]
    assert {"R_SPF_FAIL", "R_DKIM_NA", "DMARC_POLICY_REJECT"} <= names(verdict)


async def test_lookalike_subdomain_without_its_own_record(rig: Rig) -> None:
    # secure.bank.test has no DMARC record of its own: the organizational record's policy (sp, else p) applies.
    _bank(rig)
    verdict, _ = await rig.judge(message("Bank <alerts@secure.bank.test>"), ip=ATTACKER,
                                 sender="alerts@secure.bank.test", helo="mx.attacker.test")
    assert verdict.action is Action.REJECT
    assert "DMARC_POLICY_REJECT" in names(verdict)


async def test_null_sender_with_forged_helo(rig: Rig) -> None:
    # A bounce (MAIL FROM:<>) claiming HELO mx.bank.test from the attacker's address: SPF judges HELO.
    _bank(rig)
    rig.dns.add("mx.bank.test", "TXT", f"v=spf1 ip4:{BANK_MX} -all")
    verdict, _ = await rig.judge(message("Bank <security@bank.test>"), ip=ATTACKER, sender=None,
                                 helo="mx.bank.test")
    assert {"R_SPF_FAIL", "R_SPF_HELO"} <= names(verdict)
    assert verdict.action is Action.REJECT


async def test_null_sender_with_helo_of_attacker_domain_is_not_aligned(rig: Rig) -> None:
    # The HELO passes SPF for the attacker's own domain, which is not aligned with From: bank.test.
    _bank(rig)
    rig.dns.add("mx.attacker.test", "TXT", f"v=spf1 ip4:{ATTACKER} -all")
    verdict, _ = await rig.judge(message("Bank <security@bank.test>"), ip=ATTACKER, sender=None,
                                 helo="mx.attacker.test")
    assert "R_SPF_ALLOW" in names(verdict)
    assert verdict.action is Action.REJECT and "DMARC_POLICY_REJECT" in names(verdict)


async def test_attacker_dkim_signature_on_victim_from(rig: Rig) -> None:
    # A valid signature by attacker.test, SPF pass for attacker.test: both pass, neither aligns with bank.test.
    _bank(rig)
    rig.dns.add("attacker.test", "TXT", f"v=spf1 ip4:{ATTACKER} -all")
    evil = rig.publish(rsa_key("attacker.test", "k"))
    raw = evil.sign(message("Bank <security@bank.test>"))
    verdict, _ = await rig.judge(raw, ip=ATTACKER, sender="bounce@attacker.test", helo="mx.attacker.test")
    assert {"R_SPF_ALLOW", "R_DKIM_ALLOW", "DMARC_POLICY_REJECT"} <= names(verdict)
    assert verdict.action is Action.REJECT


async def test_victim_signature_replayed_with_second_from(rig: Rig) -> None:
    # A genuine bank.test signature, with an extra From added above it: refused before DMARC.
    _bank(rig)
    key = rsa_key("bank.test", "s2")
    rig.publish(key)
    genuine = key.sign(message("Bank <news@bank.test>"))
    replayed = b"From: Bank <security@bank.test>\r\n" + genuine
    verdict, _ = await rig.judge(replayed, ip=ATTACKER, sender="x@attacker.test")
    assert verdict.action is Action.REJECT and verdict.forced.by == "from_header"  # type: ignore[union-attr]


async def test_display_name_spoof_on_attacker_domain(rig: Rig) -> None:
    rig.dns.add("attacker.test", "TXT", f"v=spf1 ip4:{ATTACKER} -all")
    verdict, _ = await rig.judge(message("\"security@bank.test\" <a@attacker.test>"), ip=ATTACKER,
                                 sender="a@attacker.test")
    assert "FROM_DISPLAY_SPOOF" in names(verdict)


async def test_genuine_bank_mail_passes(rig: Rig) -> None:
    _bank(rig)
    key = rig.publish(rsa_key("bank.test", "s3"))
    verdict, _ = await rig.judge(key.sign(message("Bank <news@bank.test>")), ip=BANK_MX, sender="bounce@bank.test",
                                 helo="mx.bank.test")
    assert {"R_SPF_ALLOW", "R_DKIM_ALLOW", "DMARC_POLICY_ALLOW"} <= names(verdict)
    assert verdict.forced is None and verdict.action is Action.ACCEPT
