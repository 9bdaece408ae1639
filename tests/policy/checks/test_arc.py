"""ARC check (RFC 8617): mail forwarded by a mailing list that broke DKIM is judged on its ARC chain,
and a DMARC failure is overridden only when the chain is valid, sealed by a trusted forwarder, and
that forwarder saw DMARC pass."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "auth"))

import authkit
from authkit import Rig, SigningKey, message, names, rsa_key

from mailbastion.auth.dkim_verify import ArcResult
from mailbastion.core.verdict import Action
from mailbastion.policy.checks.arc import is_trusted

dns_server, resolver, rig = authkit.dns_server, authkit.resolver, authkit.rig  # fixtures

LIST_IP = "203.0.113.5"


def _forwarded(rig: Rig, *, list_saw: str = "pass", tamper_after_seal: bool = False) -> tuple[bytes, SigningKey]:
    """alice@example.org (p=reject) → lists.fwd.test (rewrites Subject, adds a footer, seals) → us."""
    rig.dns.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    rig.dns.add("example.org", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    rig.dns.add("lists.fwd.test", "TXT", f"v=spf1 ip4:{LIST_IP} -all")
    author = rig.publish(rsa_key("example.org"))
    sealer = rig.publish(rsa_key("lists.fwd.test", "arc"))
    original = author.sign(message())
    # The list verified the original, then changed it (breaking the author's DKIM signature).
    ar = (f"Authentication-Results: lists.fwd.test; dkim={list_saw} header.d=example.org; "
          f"dmarc={list_saw} header.from=example.org\r\n").encode()
    changed = ar + original.replace(b"Subject: hello", b"Subject: [list] hello") + b"-- \r\nlist footer\r\n"
    sealed = sealer.arc_seal(changed, "lists.fwd.test")
    if tamper_after_seal:
        sealed = sealed.replace(b"list footer", b"evil footer")
    return sealed, sealer


async def _judge(rig: Rig, raw: bytes):  # type: ignore[no-untyped-def]
    return await rig.judge(raw, ip=LIST_IP, sender="bounces@lists.fwd.test", helo="lists.fwd.test")


async def test_forwarded_without_trust_is_rejected(rig: Rig) -> None:
    raw, _ = _forwarded(rig)
    verdict, ctx = await _judge(rig, raw)
    arc = ctx.get(ArcResult)
    assert arc is not None and arc.cv == "pass" and arc.sealer == "lists.fwd.test"
    assert {"ARC_ALLOW", "R_DKIM_REJECT", "DMARC_POLICY_REJECT"} <= names(verdict)
    assert "ARC_TRUSTED" not in names(verdict)
    assert verdict.action is Action.REJECT


async def test_forwarded_with_trusted_chain_is_accepted(rig: Rig) -> None:
    rig.auth = {"trusted_arc_sealers": ["fwd.test"]}
    raw, _ = _forwarded(rig)
    verdict, _ = await _judge(rig, raw)
    assert {"ARC_ALLOW", "ARC_TRUSTED", "DMARC_POLICY_ARC_OVERRIDE"} <= names(verdict)
    assert verdict.forced is None and verdict.action < Action.JUNK


async def test_trusted_sealer_that_saw_dmarc_fail_does_not_override(rig: Rig) -> None:
    rig.auth = {"trusted_arc_sealers": ["lists.fwd.test"]}
    raw, _ = _forwarded(rig, list_saw="fail")
    verdict, _ = await _judge(rig, raw)
    assert "ARC_TRUSTED" in names(verdict)
    assert verdict.action is Action.REJECT


async def test_broken_chain_is_not_trusted(rig: Rig) -> None:
    rig.auth = {"trusted_arc_sealers": ["lists.fwd.test"]}
    raw, _ = _forwarded(rig, tamper_after_seal=True)
    verdict, ctx = await _judge(rig, raw)
    assert ctx.get(ArcResult).cv == "fail"  # type: ignore[union-attr]
    assert "ARC_REJECT" in names(verdict) and "ARC_TRUSTED" not in names(verdict)
    assert verdict.action is Action.REJECT


async def test_no_chain(rig: Rig) -> None:
    verdict, _ = await rig.judge(message())
    assert "ARC_NA" in names(verdict)


async def test_sealer_key_lookup_failure(rig: Rig) -> None:
    raw, _ = _forwarded(rig)
    rig.dns.fail("arc._domainkey.lists.fwd.test")
    verdict, _ = await _judge(rig, raw)
    assert "ARC_DNSFAIL" in names(verdict)


def test_trust_matching() -> None:
    assert is_trusted("lists.fwd.test", ["fwd.test"])
    assert is_trusted("FWD.test.", ["fwd.test"])
    assert not is_trusted("evilfwd.test", ["fwd.test"])
    assert not is_trusted("fwd.test.evil.test", ["fwd.test"])


async def test_too_many_arc_keys_fail_without_lookups(rig: Rig) -> None:
    seals = b"".join(
        f"ARC-Seal: i={i}; a=rsa-sha256; cv=pass; d=s{i}.test; s=k; t=1; b=AAAA\r\n".encode() for i in range(1, 31)
    )
    _verdict, ctx = await rig.judge(seals + message())
    assert ctx.get(ArcResult).cv == "fail"  # type: ignore[union-attr]
    assert not [q for q, _t in rig.dns.queries if "_domainkey" in q]
