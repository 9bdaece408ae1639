"""DKIM on awkward but genuine header shapes, and the `l=` body length (issue 8, items 3 and 4).

Through the real checks (SPF, DKIM, DMARC, Authentication-Results) with the loopback DNS server.
"""

from __future__ import annotations

import dkim
from authkit import AUTHSERV_ID, Rig, SigningKey, message, names, rsa_key

from mailbastion.auth.dkim_verify import DkimResults, verifiable_message
from mailbastion.core.verdict import Action
from mailbastion.policy.check import CheckContext
from mailbastion.policy.checks.auth_results import build_header

BANK_MX = "192.0.2.25"
ATTACKER = "198.51.100.66"


def _bank(rig: Rig, policy: str = "reject") -> SigningKey:
    rig.dns.add("bank.test", "TXT", f"v=spf1 ip4:{BANK_MX} -all")
    rig.dns.add("_dmarc.bank.test", "TXT", f"v=DMARC1; p={policy}")
    return rig.publish(rsa_key("bank.test", "s1"))


def _sign_with_length(key: SigningKey, raw: bytes) -> bytes:
    """A signature carrying l= (the signed body length), as some list software still makes."""
    return dkim.sign(raw, key.selector.encode(), key.domain.encode(), key.private, length=True,
                     canonicalize=(b"relaxed", b"relaxed")) + raw


def _auth_results(ctx: CheckContext) -> str:
    """The Authentication-Results value we would add (a refused message stops before that check runs)."""
    return build_header(AUTHSERV_ID, ctx)


# -- item 4: a header section that starts with a folded line -------------------------------------------

async def test_signature_verifies_under_a_folded_first_line(rig: Rig) -> None:
    key = _bank(rig)
    signed = key.sign(message("Bank <news@bank.test>"))
    shaped = b" orphan continuation line\r\n" + signed
    try:
        dkim.DKIM(shaped)  # dkimpy's own splitter: the crash the issue reports
    except IndexError:
        pass
    verdict, ctx = await rig.judge(shaped, ip=ATTACKER, sender="bounce@elsewhere.test", helo="mx.elsewhere.test")
    found = ctx.get(DkimResults)
    assert found is not None and [s.result for s in found.signatures] == ["pass"]
    assert {"R_DKIM_ALLOW", "DMARC_POLICY_ALLOW"} <= names(verdict)
    assert not any(n.endswith("_CHECK_ERROR") for n in names(verdict))
    assert verdict.action is Action.ACCEPT


async def test_signature_verifies_with_a_line_that_is_no_field(rig: Rig) -> None:
    key = _bank(rig)
    signed = key.sign(message("Bank <news@bank.test>"))
    head, _, body = signed.partition(b"\r\n\r\n")
    shaped = head + b"\r\nthis line has no colon\r\n\r\n" + body
    verdict, _ = await rig.judge(shaped, ip=ATTACKER, sender="bounce@elsewhere.test")
    assert {"R_DKIM_ALLOW", "DMARC_POLICY_ALLOW"} <= names(verdict)


async def test_a_tampered_message_of_that_shape_still_fails(rig: Rig) -> None:
    key = _bank(rig)
    signed = b" orphan\r\n" + key.sign(message("Bank <news@bank.test>")).replace(b"Hello Bob.", b"Pay now.!!")
    verdict, _ = await rig.judge(signed, ip=ATTACKER, sender="x@bank.test")
    assert "R_DKIM_REJECT" in names(verdict)
    assert verdict.action is Action.REJECT and "DMARC_POLICY_REJECT" in names(verdict)


def test_verifiable_message_keeps_well_formed_mail_as_is() -> None:
    raw = message()
    assert verifiable_message(raw) is raw
    shaped = b" orphan\r\nSubject : obsolete\r\n" + raw
    assert verifiable_message(shaped) == b"Subject: obsolete\r\n" + raw


# -- item 3: content after the signed length (l=) -------------------------------------------------------

async def test_appended_text_after_l_does_not_pass_dmarc_and_is_flagged(rig: Rig) -> None:
    key = _bank(rig)
    genuine = _sign_with_length(key, message("Bank <news@bank.test>", body="Your statement is ready.\r\n"))
    assert b"l=" in genuine
    tampered = genuine + b"URGENT: confirm your account at http://evil.test/login\r\n"
    # Replayed from the attacker's host with an SPF-passing MAIL FROM of its own: only DKIM could align.
    rig.dns.add("evil.test", "TXT", f"v=spf1 ip4:{ATTACKER} -all")
    verdict, ctx = await rig.judge(tampered, ip=ATTACKER, sender="bounce@evil.test", helo="mx.evil.test")
    sig = ctx.get(DkimResults).signatures[0]  # type: ignore[union-attr]
    assert sig.result == "policy" and sig.unsigned_tail > 0 and not sig.is_pass
    assert "R_DKIM_UNSIGNED_TAIL" in names(verdict) and "R_DKIM_ALLOW" not in names(verdict)
    assert "DMARC_POLICY_ALLOW" not in names(verdict) and "DMARC_POLICY_REJECT" in names(verdict)
    assert verdict.action is Action.REJECT
    assert "dkim=policy" in _auth_results(ctx) and "dmarc=fail" in _auth_results(ctx)


async def test_appended_text_on_a_domain_without_enforcement_goes_to_junk(rig: Rig) -> None:
    key = _bank(rig, policy="none")
    genuine = _sign_with_length(key, message("Bank <news@bank.test>", body="Your statement is ready.\r\n"))
    tampered = genuine + b"Call +1 555 0100 now.\r\n"
    verdict, ctx = await rig.judge(tampered, ip=BANK_MX, sender="news@bank.test", helo="mx.bank.test")
    # SPF passes (the bank's own host relayed it): DMARC may pass on SPF, but never on the partial signature.
    assert "R_DKIM_UNSIGNED_TAIL" in names(verdict)
    assert verdict.action >= Action.JUNK, verdict.describe()
    added = next(e.value for e in verdict.edits if e.kind == "prepend" and e.name == "Authentication-Results")
    assert "dkim=policy" in added and "after l=" in added  # visible to the reader's mail program too


async def test_l_covering_the_whole_body_is_an_ordinary_pass(rig: Rig) -> None:
    key = _bank(rig)
    genuine = _sign_with_length(key, message("Bank <news@bank.test>"))
    # Trailing empty lines vanish in canonicalization (RFC 6376 §3.4.3/§3.4.4): nothing unsigned follows.
    verdict, _ = await rig.judge(genuine + b"\r\n\r\n", ip=ATTACKER, sender="b@elsewhere.test")
    assert {"R_DKIM_ALLOW", "DMARC_POLICY_ALLOW"} <= names(verdict)
    assert "R_DKIM_UNSIGNED_TAIL" not in names(verdict)
