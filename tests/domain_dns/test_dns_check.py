"""DomainChecker details: SPF lookup counting, DMARC p=none for too long, small DKIM keys."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from authkit import rsa_key
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailbastion.auth.keys import KeyInfo, KeyStore
from mailbastion.dns.resolver import DnsResolver
from mailbastion.domain_dns.check import DomainChecker, key_bits
from mailbastion.testing.dns_server import DnsTestServer


async def test_spf_over_ten_lookups_is_wrong(dns_server: DnsTestServer, resolver: DnsResolver) -> None:
    incs = " ".join(f"include:i{i}.example.org" for i in range(6))
    dns_server.add("example.org", "TXT", f"v=spf1 {incs} -all")
    for i in range(6):
        dns_server.add(f"i{i}.example.org", "TXT", "v=spf1 a mx -all")
    checker = DomainChecker(resolver)
    assert await checker.spf_lookups("example.org") == 18
    findings = await checker.check("example.org", mx_host="mx.example.org")
    assert any(f.level == "wrong" and "18 DNS lookups" in f.message for f in findings)


async def test_dmarc_none_for_too_long(dns_server: DnsTestServer, resolver: DnsResolver, tmp_path: Path) -> None:
    dns_server.add("_dmarc.example.org", "TXT", "v=DMARC1; p=none; rua=mailto:d@example.org")
    checker = DomainChecker(resolver, state_file=tmp_path / "state.json", dmarc_none_max_days=30)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    first = await checker.check("example.org", mx_host="mx.example.org", now=start)
    assert any(f.purpose == "dmarc" and f.level == "info" for f in first)
    later = await checker.check("example.org", mx_host="mx.example.org", now=start + timedelta(days=45))
    assert any(f.purpose == "dmarc" and f.level == "weak" and "45 days" in f.message for f in later)
    dns_server.remove("_dmarc.example.org")
    resolver.clear()
    dns_server.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject; rua=mailto:d@example.org")
    await checker.check("example.org", mx_host="mx.example.org", now=start + timedelta(days=46))
    assert json.loads((tmp_path / "state.json").read_text())["dmarc_none_since"] == {}


async def test_small_dkim_key_is_weak(dns_server: DnsTestServer, resolver: DnsResolver, tmp_path: Path) -> None:
    # A 1024-bit key imported from an older system (we never make one).
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pub = base64.b64encode(key.public_key().public_bytes(serialization.Encoding.DER,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    store = KeyStore(tmp_path / "dkim")
    legacy = KeyInfo("example.org", "old", "rsa-sha256", 1024, "active", "2020-01-01T00:00:00+00:00", pub)
    store._save("example.org", [legacy])
    dns_server.add(legacy.record_name, "TXT", legacy.record)
    findings = await DomainChecker(resolver, store).check("example.org", mx_host="mx.example.org")
    assert any(f.level == "weak" and "1024-bit" in f.message for f in findings), [asdict(f) for f in findings]


def test_key_bits() -> None:
    assert key_bits(rsa_key("x.test").record) == 2048
    assert key_bits("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=") == 0


async def test_retired_record_past_its_date_is_named(dns_server: DnsTestServer, resolver: DnsResolver,
                                                     tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "dkim")
    old = store.generate("example.org", "ed25519-sha256", now=datetime(2026, 1, 1, tzinfo=UTC))
    store.activate("example.org", old.selector, now=datetime(2026, 1, 1, tzinfo=UTC))
    new = store.generate("example.org", "ed25519-sha256", now=datetime(2026, 2, 1, tzinfo=UTC))
    store.activate("example.org", new.selector, retire_after_days=7, now=datetime(2026, 2, 1, tzinfo=UTC))
    for k in (old, new):
        dns_server.add(k.record_name, "TXT", k.record)
    findings = await DomainChecker(resolver, store).check("example.org", mx_host="mx.example.org")
    assert any(f.level == "info" and old.record_name in f.message and "remove its record now" in f.message
               for f in findings)
