"""DMARC check (RFC 7489): record discovery with the organizational-domain fallback, relaxed and strict
alignment for SPF and DKIM, p / sp / pct, and what each policy does to the verdict."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "auth"))

import authkit
from authkit import Rig, message, names, rsa_key

from mailbastion.auth.dmarc import DmarcOutcome, organizational_domain, parse_record
from mailbastion.core import replies
from mailbastion.core.verdict import Action

dns_server, resolver, rig = authkit.dns_server, authkit.resolver, authkit.rig  # fixtures

CLIENT = "192.0.2.10"
STRANGER = "198.51.100.66"


def _setup(rig: Rig, record: str, *, domain: str = "example.org") -> None:
    rig.dns.add(f"_dmarc.{domain}", "TXT", record)
    rig.dns.add(domain, "TXT", f"v=spf1 ip4:{CLIENT} -all")


async def test_reject_policy_refuses_unaligned_mail(rig: Rig) -> None:
    _setup(rig, "v=DMARC1; p=reject")
    verdict, ctx = await rig.judge(message(), ip=STRANGER)
    assert verdict.action is Action.REJECT
    assert verdict.forced is not None and verdict.forced.by == "dmarc"
    assert verdict.reply == replies.DMARC_REJECT and str(verdict.reply).startswith("550 5.7.1")
    assert "DMARC_POLICY_REJECT" in names(verdict)
    assert ctx.get(DmarcOutcome).result == "fail"  # type: ignore[union-attr]


async def test_spf_pass_aligned_relaxed(rig: Rig) -> None:
    _setup(rig, "v=DMARC1; p=reject")
    rig.dns.add("bounce.example.org", "TXT", f"v=spf1 ip4:{CLIENT} -all")
    verdict, ctx = await rig.judge(message(), sender="b@bounce.example.org")
    assert "DMARC_POLICY_ALLOW" in names(verdict) and verdict.forced is None
    assert ctx.get(DmarcOutcome).spf_aligned  # type: ignore[union-attr]


async def test_spf_strict_alignment_needs_exact_domain(rig: Rig) -> None:
    _setup(rig, "v=DMARC1; p=reject; aspf=s")
    rig.dns.add("bounce.example.org", "TXT", f"v=spf1 ip4:{CLIENT} -all")
    verdict, _ = await rig.judge(message(), sender="b@bounce.example.org")
    assert verdict.action is Action.REJECT


async def test_dkim_relaxed_and_strict(rig: Rig) -> None:
    _setup(rig, "v=DMARC1; p=reject")
    key = rig.publish(rsa_key("mail.example.org"))
    signed = key.sign(message())
    verdict, ctx = await rig.judge(signed, ip=STRANGER)
    assert "DMARC_POLICY_ALLOW" in names(verdict)
    assert ctx.get(DmarcOutcome).dkim_domain == "mail.example.org"  # type: ignore[union-attr]
    rig.dns.remove("_dmarc.example.org")
    rig.resolver.clear()
    rig.dns.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject; adkim=s")
    verdict, _ = await rig.judge(signed, ip=STRANGER)
    assert verdict.action is Action.REJECT


@pytest.mark.parametrize(("setting", "action"), [("junk", Action.JUNK), ("quarantine", Action.QUARANTINE)])
async def test_quarantine_policy(rig: Rig, setting: str, action: Action) -> None:
    rig.auth = {"dmarc_quarantine": setting}
    _setup(rig, "v=DMARC1; p=quarantine")
    verdict, _ = await rig.judge(message(), ip=STRANGER)
    assert verdict.action is action and verdict.forced is not None and verdict.forced.by == "dmarc"
    assert "DMARC_POLICY_QUARANTINE" in names(verdict)


async def test_none_policy_accepts_with_symbols(rig: Rig) -> None:
    _setup(rig, "v=DMARC1; p=none; rua=mailto:d@example.org")
    verdict, _ = await rig.judge(message(), ip=STRANGER)
    assert verdict.forced is None
    assert "DMARC_POLICY_SOFTFAIL" in names(verdict)


@pytest.mark.parametrize(("pct", "draw", "expected"), [
    (50, 0.2, Action.REJECT),  # sampled: the policy applies
    (50, 0.7, Action.JUNK),  # not sampled: one step less strict (§6.6.4)
    (0, 0.0, Action.JUNK),
])
async def test_pct(rig: Rig, pct: int, draw: float, expected: Action) -> None:
    rig.sample = lambda: draw
    _setup(rig, f"v=DMARC1; p=reject; pct={pct}")
    verdict, _ = await rig.judge(message(), ip=STRANGER)
    assert verdict.action is expected


async def test_subdomain_policy_from_organizational_record(rig: Rig) -> None:
    _setup(rig, "v=DMARC1; p=none; sp=reject")
    verdict, ctx = await rig.judge(message("x@news.example.org"), ip=STRANGER, sender="x@news.example.org")
    assert verdict.action is Action.REJECT
    outcome = ctx.get(DmarcOutcome)
    assert outcome is not None and outcome.record is not None and outcome.record.domain == "example.org"


async def test_organizational_domain_uses_public_suffix_list(rig: Rig) -> None:
    assert organizational_domain("a.b.example.co.uk") == "example.co.uk"
    assert organizational_domain("mail.example.org") == "example.org"
    _setup(rig, "v=DMARC1; p=reject", domain="example.co.uk")
    verdict, _ctx = await rig.judge(message("x@a.b.example.co.uk"), ip=STRANGER, sender="x@a.b.example.co.uk")
    assert verdict.action is Action.REJECT
    asked = [q for q, t in rig.dns.queries if q.startswith("_dmarc.")]
    assert asked == ["_dmarc.a.b.example.co.uk", "_dmarc.example.co.uk"]  # never _dmarc.co.uk


async def test_no_record(rig: Rig) -> None:
    rig.dns.add("example.org", "TXT", f"v=spf1 ip4:{CLIENT} -all")
    verdict, _ = await rig.judge(message(), ip=STRANGER)
    assert "DMARC_NA" in names(verdict) and verdict.forced is None


async def test_two_records_mean_none(rig: Rig) -> None:
    _setup(rig, "v=DMARC1; p=reject")
    rig.dns.add("_dmarc.example.org", "TXT", "v=DMARC1; p=none")
    verdict, _ = await rig.judge(message(), ip=STRANGER)
    assert "DMARC_NA" in names(verdict)


async def test_invalid_policy_with_rua_is_none(rig: Rig) -> None:
    _setup(rig, "v=DMARC1; p=bogus; rua=mailto:d@example.org")
    verdict, _ = await rig.judge(message(), ip=STRANGER)
    assert {"DMARC_BAD_POLICY", "DMARC_POLICY_SOFTFAIL"} <= names(verdict) and verdict.forced is None


async def test_dns_temperror_on_reject_domain_is_451(rig: Rig) -> None:
    _setup(rig, "v=DMARC1; p=reject")
    rig.dns.fail("bounce.example.org")  # SPF of the MAIL FROM domain cannot be checked
    verdict, _ = await rig.judge(message(), sender="b@bounce.example.org")
    assert verdict.action is Action.SOFT_REJECT
    assert verdict.reply == replies.DMARC_TEMPFAIL and verdict.reply.code == 451
    assert "DMARC_DNSFAIL" in names(verdict)


async def test_dns_temperror_on_none_domain_accepts(rig: Rig) -> None:
    _setup(rig, "v=DMARC1; p=none")
    rig.dns.fail("bounce.example.org")
    verdict, _ = await rig.judge(message(), sender="b@bounce.example.org")
    assert verdict.forced is None and "DMARC_DNSFAIL" in names(verdict)


async def test_record_lookup_failure_is_a_symbol(rig: Rig) -> None:
    rig.dns.fail("_dmarc.example.org")
    rig.dns.add("example.org", "TXT", f"v=spf1 ip4:{CLIENT} -all")
    verdict, _ = await rig.judge(message(), ip=STRANGER)
    assert "DMARC_DNSFAIL" in names(verdict) and verdict.forced is None


async def test_enforcement_off_keeps_symbols_only(rig: Rig) -> None:
    rig.auth = {"dmarc_enforce": False}
    _setup(rig, "v=DMARC1; p=reject")
    verdict, _ = await rig.judge(message(), ip=STRANGER)
    assert verdict.forced is None and "DMARC_POLICY_REJECT" in names(verdict)


def test_parse_record() -> None:
    rec = parse_record("example.org", "v=DMARC1; p=quarantine; sp=reject; pct=30; adkim=s; aspf=r")
    assert rec is not None and (rec.p, rec.sp, rec.pct, rec.adkim, rec.aspf) == ("quarantine", "reject", 30, "s", "r")
    assert parse_record("example.org", "v=spf1 -all") is None
    assert parse_record("example.org", "v=DMARC1; p=bogus") is None  # no rua: ignored (§6.6.3)
    assert parse_record("example.org", "v=DMARC1; p=reject").sp == "reject"  # type: ignore[union-attr]


def test_forced_quarantine_never_weakens_a_score_reject() -> None:
    from mailbastion.core.verdict import Forced, Symbol
    from mailbastion.policy.scoring import Scorer, ScoreTable, SymbolScore, load_score_table

    scorer = Scorer(ScoreTable({"SPAMMY": SymbolScore(20.0, "spam", "")}, {}, load_score_table().thresholds))
    verdict = scorer.decide([Symbol("SPAMMY")], Forced(Action.JUNK, replies.OK, by="dmarc"))
    assert verdict.action is Action.REJECT


async def test_dns_trouble_of_an_unaligned_domain_changes_nothing(rig: Rig) -> None:
    # The attacker's MAIL FROM domain times out: it could never align with example.org, so 550, not 451.
    _setup(rig, "v=DMARC1; p=reject")
    rig.dns.fail("attacker.test")
    verdict, _ = await rig.judge(message(), ip=STRANGER, sender="x@attacker.test")
    assert "R_SPF_DNSFAIL" in names(verdict)
    assert verdict.action is Action.REJECT and verdict.reply == replies.DMARC_REJECT
