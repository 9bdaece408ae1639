"""DKIM check: every signature verified (RFC 6376; ed25519 per RFC 8463), results per signing domain."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "auth"))

import authkit
from authkit import Rig, ed_key, message, names, rsa_key

from mailbastion.auth.dkim_verify import DkimResults

dns_server, resolver, rig = authkit.dns_server, authkit.resolver, authkit.rig  # fixtures

MSG = message("Alice <alice@example.org>")


def _dkim(verdict_names: set[str]) -> set[str]:
    return {n for n in verdict_names if n.startswith("R_DKIM")}


async def test_rsa_signature_passes(rig: Rig) -> None:
    key = rig.publish(rsa_key("example.org"))
    verdict, ctx = await rig.judge(key.sign(MSG))
    assert _dkim(names(verdict)) == {"R_DKIM_ALLOW"}
    found = ctx.get(DkimResults)
    assert found is not None and found.signatures[0].domain == "example.org"
    assert found.signatures[0].key_bits == 2048


async def test_ed25519_signature_passes(rig: Rig) -> None:
    key = rig.publish(ed_key("example.org"))
    verdict, ctx = await rig.judge(key.sign(MSG))
    assert _dkim(names(verdict)) == {"R_DKIM_ALLOW"}
    assert ctx.get(DkimResults).signatures[0].algorithm == "ed25519-sha256"  # type: ignore[union-attr]


async def test_dual_signature_both_verified(rig: Rig) -> None:
    rsa = rig.publish(rsa_key("example.org", "r1"))
    ed = rig.publish(ed_key("example.org", "e1"))
    _verdict, ctx = await rig.judge(ed.sign(rsa.sign(MSG)))
    sigs = ctx.get(DkimResults).signatures  # type: ignore[union-attr]
    assert [(s.selector, s.result) for s in sigs] == [("e1", "pass"), ("r1", "pass")]


async def test_altered_body_fails(rig: Rig) -> None:
    key = rig.publish(rsa_key("example.org"))
    signed = key.sign(MSG).replace(b"Hello Bob.", b"Pay now.!!")
    verdict, ctx = await rig.judge(signed)
    assert _dkim(names(verdict)) == {"R_DKIM_REJECT"}
    assert "body hash" in ctx.get(DkimResults).signatures[0].reason  # type: ignore[union-attr]


async def test_altered_header_fails(rig: Rig) -> None:
    key = rig.publish(rsa_key("example.org"))
    signed = key.sign(MSG).replace(b"Subject: hello", b"Subject: HELLO")
    verdict, _ = await rig.judge(signed)
    assert _dkim(names(verdict)) == {"R_DKIM_REJECT"}


async def test_missing_key_is_permerror(rig: Rig) -> None:
    key = rsa_key("example.org")  # not published
    verdict, _ctx = await rig.judge(key.sign(MSG))
    assert _dkim(names(verdict)) == {"R_DKIM_PERMFAIL"}


async def test_key_lookup_failure_is_temperror(rig: Rig) -> None:
    key = rsa_key("example.org")
    rig.dns.fail("sel._domainkey.example.org")
    verdict, _ = await rig.judge(key.sign(MSG))
    assert _dkim(names(verdict)) == {"R_DKIM_TEMPFAIL"}


async def test_unsigned(rig: Rig) -> None:
    verdict, _ = await rig.judge(MSG)
    assert _dkim(names(verdict)) == {"R_DKIM_NA"}


async def test_weak_key_under_site_minimum(rig: Rig) -> None:
    rig.auth = {"min_rsa_bits": 2048}
    key = rig.publish(rsa_key("example.org", bits=1024))
    verdict, _ = await rig.judge(key.sign(MSG))
    assert _dkim(names(verdict)) == {"R_DKIM_PERMFAIL", "R_DKIM_WEAK_KEY"}


async def test_results_per_signing_domain(rig: Rig) -> None:
    ours = rig.publish(rsa_key("example.org"))
    esp = rig.publish(rsa_key("esp.test", "k1"))
    broken = rsa_key("gone.test", "k2")  # never published
    signed = broken.sign(esp.sign(ours.sign(MSG)))
    verdict, ctx = await rig.judge(signed)
    got = {(s.domain, s.result) for s in ctx.get(DkimResults).signatures}  # type: ignore[union-attr]
    assert got == {("example.org", "pass"), ("esp.test", "pass"), ("gone.test", "permerror")}
    details = {s.detail.split(":")[0] for s in verdict.symbols if s.name.startswith("R_DKIM")}
    assert details == {"example.org", "esp.test", "gone.test"}


async def test_signature_count_is_bounded(rig: Rig) -> None:
    rig.auth = {"max_dkim_signatures": 2}
    key = rig.publish(rsa_key("example.org"))
    signed = MSG
    for _ in range(4):
        signed = key.sign(signed)
    _verdict, ctx = await rig.judge(signed)
    found = ctx.get(DkimResults)
    assert found is not None and len(found.signatures) == 2 and found.unverified == 2


async def test_large_message_is_hashed_off_the_loop(rig: Rig) -> None:
    import threading

    from mailbastion.auth import dkim_verify

    key = rig.publish(rsa_key("example.org"))
    big = key.sign(message(body=("y" * 70 + "\r\n") * 6000))  # ~430 KiB, over THREAD_BYTES
    assert len(big) > dkim_verify.THREAD_BYTES
    seen: list[str] = []
    original = dkim_verify.DkimVerifier._verify_one

    def spy(self, *a, **k):  # type: ignore[no-untyped-def]
        seen.append(threading.current_thread().name)
        return original(self, *a, **k)

    dkim_verify.DkimVerifier._verify_one = spy  # type: ignore[method-assign]
    try:
        verdict, _ = await rig.judge(big)
    finally:
        dkim_verify.DkimVerifier._verify_one = original  # type: ignore[method-assign]
    assert _dkim(names(verdict)) == {"R_DKIM_ALLOW"}
    assert seen and all(n != threading.main_thread().name for n in seen)
