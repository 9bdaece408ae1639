"""DKIM signing with our keys: signed by us, then verified by us and by dkimpy on its own, over loopback DNS."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import dkim
import dns.resolver
import pytest
from authkit import Rig, message, names

from mailbastion.auth.dkim_verify import DkimResults
from mailbastion.auth.keys import KeyStore
from mailbastion.core.errors import ConfigError
from mailbastion.submission.dkim_signer import DkimSigner


def _store(tmp_path: Path, rig: Rig | None = None) -> KeyStore:
    store = KeyStore(tmp_path / "dkim")
    for alg in ("rsa-sha256", "ed25519-sha256"):
        info = store.generate("example.org", alg)
        store.activate("example.org", info.selector)
        if rig is not None:
            rig.dns.add(info.record_name, "TXT", info.record)
    return store


def test_keys_are_private(tmp_path: Path) -> None:
    store = _store(tmp_path)
    root = tmp_path / "dkim"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "example.org").stat().st_mode) == 0o700
    for f in (root / "example.org").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert store.permission_problems() == []
    (root / "example.org").chmod(0o755)
    assert store.permission_problems() and "700" in store.permission_problems()[0]


def test_rsa_under_2048_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="2048"):
        KeyStore(tmp_path).generate("example.org", "rsa-sha256", bits=1024)


def test_rotation_keeps_two_selectors_and_dates_the_old(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "dkim")
    first = store.generate("example.org", "rsa-sha256", now=datetime(2026, 1, 1, tzinfo=UTC))
    store.activate("example.org", first.selector, now=datetime(2026, 1, 2, tzinfo=UTC))
    second = store.generate("example.org", "rsa-sha256", now=datetime(2026, 6, 1, tzinfo=UTC))
    assert first.selector != second.selector and second.state == "pending"
    assert [k.selector for k in store.active("example.org")] == [first.selector]  # still signing with the old
    retired = store.activate("example.org", second.selector, retire_after_days=7,
                             now=datetime(2026, 6, 3, tzinfo=UTC))
    assert [k.selector for k in retired] == [first.selector]
    assert retired[0].remove_after == "2026-06-10T00:00:00+00:00"
    assert [k.selector for k in store.active("example.org")] == [second.selector]


async def test_signed_by_us_verified_by_us(rig: Rig, tmp_path: Path) -> None:
    signer = DkimSigner(_store(tmp_path, rig))
    rig.dns.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    raw = message()
    signed = signer.sign(raw) + raw
    verdict, ctx = await rig.judge(signed, ip="198.51.100.1")  # SPF does not help: DKIM alone must align
    sigs = ctx.get(DkimResults).signatures  # type: ignore[union-attr]
    assert {(s.algorithm, s.result) for s in sigs} == {("rsa-sha256", "pass"), ("ed25519-sha256", "pass")}
    assert "DMARC_POLICY_ALLOW" in names(verdict)


async def test_signed_by_us_verified_by_dkimpy_alone(rig: Rig, tmp_path: Path) -> None:
    signer = DkimSigner(_store(tmp_path, rig))
    raw = message()
    signed = await signer.sign_async(raw) + raw
    plain = dns.resolver.Resolver(configure=False)
    plain.nameservers, plain.port = [rig.dns.host], rig.dns.port

    def txt(name: bytes, timeout: float = 5) -> bytes | None:
        answer = plain.resolve(name.decode().rstrip("."), "TXT")
        return b"".join(answer[0].strings)

    d = dkim.DKIM(signed)
    assert d.verify(idx=0, dnsfunc=txt) and d.verify(idx=1, dnsfunc=txt)


def test_from_header_is_oversigned(tmp_path: Path) -> None:
    signer = DkimSigner(_store(tmp_path))
    header = signer.sign(message()).decode()
    assert "h=from : from" in header.replace("\r\n", "")


def test_not_our_domain_is_not_signed(tmp_path: Path) -> None:
    signer = DkimSigner(_store(tmp_path))
    assert signer.sign(message("x@elsewhere.test")) == b""
    assert DkimSigner(KeyStore(tmp_path / "dkim"), domains=["other.test"]).sign(message()) == b""


def test_feature_hands_submission_a_signer(tmp_path: Path) -> None:
    from mailbastion.apps.feature_auth import build
    from mailbastion.apps.features import Services, make_resolver
    from mailbastion.config.loader import parse_settings

    cfg = tmp_path / "mailbastion.toml"
    settings = parse_settings({"server": {"data_dir": "."}, "dns": {"nameservers": ["127.0.0.1"], "port": 9}},
                              cfg)
    feature = build(Services(settings, make_resolver(settings)))
    assert feature.signer() is None  # no key yet
    _store(tmp_path)  # keys in <data_dir>/dkim, the default auth.dkim_keys_dir
    signer = feature.signer()
    assert signer is not None and signer.domains() == ["example.org"]
    assert feature.startup_problems() == []
    (tmp_path / "dkim" / "example.org").chmod(0o750)
    assert feature.startup_problems()  # keys others may read: the role refuses to start


async def test_signing_a_message_whose_header_starts_folded(tmp_path: Path, rig: Rig) -> None:
    # dkimpy's own splitter raised IndexError here (issue 8, item 4): submission could not sign it.
    signer = DkimSigner(_store(tmp_path, rig))
    raw = b" a folded first line\r\n" + message("Alice <alice@example.org>")
    assert signer.sign(raw).count(b"DKIM-Signature:") == 2
    signed = signer.sign_message(raw)  # prepended to the raw message, the orphan would fold into b=
    assert signed.endswith(message("Alice <alice@example.org>")) and b"a folded first line" not in signed
    verdict, ctx = await rig.judge(signed)
    assert [(s.result, s.reason) for s in ctx.get(DkimResults).signatures] == [("pass", ""), ("pass", "")]  # type: ignore[union-attr]
    assert "R_DKIM_ALLOW" in names(verdict)
