"""The records our domains publish: what `records_for` lists, and zone-file lines a name server accepts."""

from __future__ import annotations

from pathlib import Path

from mailbastion.auth.keys import KeyStore
from mailbastion.domain_dns.records import mta_sts_id, mta_sts_policy, records_for, render


def test_every_record_in_the_order_an_administrator_adds_them(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "dkim")
    key = store.generate("example.org", "rsa-sha256", bits=2048)
    recs = records_for("Example.org.", mx_host="MX.example.org", keys=store.published("example.org"))
    assert [(r.purpose, r.name) for r in recs] == [
        ("mx", "example.org"), ("spf", "example.org"), ("dkim", f"{key.selector}._domainkey.example.org"),
        ("dmarc", "_dmarc.example.org"), ("mta-sts", "_mta-sts.example.org"), ("tls-rpt", "_smtp._tls.example.org"),
    ]
    assert recs[0].value == "10 mx.example.org." and recs[1].value == "v=spf1 mx -all"
    assert recs[3].value.startswith("v=DMARC1; p=none; rua=mailto:dmarc-reports@example.org")
    assert "publish, then `mailbastion dns check`" in recs[2].note  # a pending key says what comes next


def test_long_txt_values_are_split_into_255_octet_strings(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "dkim")
    store.generate("example.org", "rsa-sha256", bits=4096)
    (dkim,) = [r for r in records_for("example.org", mx_host="mx.example.org", keys=store.published("example.org"))
               if r.purpose == "dkim"]
    line = dkim.zone_line()
    strings = line.split("\tTXT\t", 1)[1].split('" "')
    assert len(strings) > 2 and all(len(s.strip('"')) <= 255 for s in strings)  # RFC 1035 §3.3.14
    assert "".join(s.strip('"') for s in strings) == dkim.value


def test_mta_sts_id_follows_the_policy() -> None:
    testing, enforce = mta_sts_policy(["mx.example.org"]), mta_sts_policy(["mx.example.org"], mode="enforce")
    assert testing.endswith("\r\n") and "mode: testing" in testing
    assert mta_sts_id(testing) != mta_sts_id(enforce) and mta_sts_id(testing) == mta_sts_id(testing)
    text = render(records_for("example.org", mx_host="mx.example.org"), domain="example.org", mx_host="mx.example.org")
    assert "; mx: mx.example.org" in text and "p=reject" in text


def test_tlsa_for_our_mx_is_the_sha256_of_its_public_key(tmp_path: Path) -> None:
    from dnslib import RR

    from mailbastion.domain_dns.records import load_mx_certificate
    from mailbastion.outbound.dane import matches
    from mailbastion.outbound.requirement import Tlsa
    from mailbastion.pki import make_deployment_pki

    pki = make_deployment_pki(tmp_path / "tls", "mx.example.org")
    certs = load_mx_certificate(pki["gateway.crt"])
    recs = records_for("example.org", mx_host="mx.example.org", mx_certificates=[*certs, *certs])
    [tlsa] = [r for r in recs if r.purpose == "dane"]  # the same key twice: one record
    assert (tlsa.name, tlsa.rtype) == ("_25._tcp.mx.example.org", "TLSA") and tlsa.value.startswith("3 1 1 ")
    assert matches(certs[0], Tlsa.parse(tlsa.value))  # what a DANE client checks (RFC 7672 §3.1.1)
    assert RR.fromZone(tlsa.zone_line())[0].rtype == 52  # a zone-file line a name server loads
    text = render(recs, domain="example.org", mx_host="mx.example.org")
    assert "_25._tcp.mx.example.org.\t3600\tIN\tTLSA\t3 1 1 " in text and "DNSSEC-signed" in text
    assert "key rollover" in text and "public CA" in text
    # A new key (renewal): a second record, so both can be published across the rollover.
    make_deployment_pki(tmp_path / "tls2", "mx.example.org")
    both = records_for("example.org", mx_host="mx.example.org",
                       mx_certificates=[*certs, *load_mx_certificate(tmp_path / "tls2" / "gateway.crt")])
    assert len([r for r in both if r.purpose == "dane"]) == 2
    # No certificate: no TLSA, and the text says why.
    assert load_mx_certificate(tmp_path / "missing.crt") == []
    assert "no TLSA record for our MX" in render(records_for("example.org", mx_host="mx.example.org"),
                                                 domain="example.org", mx_host="mx.example.org")
