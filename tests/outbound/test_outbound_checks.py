"""DANE matching, PKIX classification, MTA-STS parsing and the resolver's order of precedence: pure logic,
with certificates made here and in-test stand-ins for the DNS (the real parts are in the flow tests)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import dns.rdata
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mailbastion.outbound.dane import tlsa_of, verify_dane
from mailbastion.outbound.dnssec import DnssecLookupFailed, SecureAnswer
from mailbastion.outbound.mta_sts import MtaStsInvalid, MtaStsPolicy, StsLookup, parse_policy, parse_txt
from mailbastion.outbound.pkix import TrustStore, names_match, verify_pkix
from mailbastion.outbound.policy import TlsPolicyResolver
from mailbastion.outbound.requirement import DANE_TA, PolicySource, Tlsa, TlsMode
from mailbastion.testing.certificates import CertAuthority


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("pki")
    ca = CertAuthority.create(tmp / "ca", "Root")
    inter = ca.intermediate(tmp / "int", "Issuing")
    other = CertAuthority.create(tmp / "other", "Other")
    return {"ca": ca, "inter": inter, "other": other,
            "leaf": inter.issue(tmp / "leaf", ["mx.example.test"]),
            "wild": ca.issue(tmp / "wild", ["*.example.test"]),
            "expired": ca.issue(tmp / "expired", ["mx.example.test"], expired=True),
            "stranger": other.issue(tmp / "stranger", ["mx.example.test"])}


def chain(issued: object, *parents: object) -> list:
    return [issued.cert, *(p.cert for p in parents)]  # type: ignore[attr-defined]


# -- DANE ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("selector", "mtype"), [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)])
def test_dane_ee_matches_every_selector_and_matching_type(pki: dict, selector: int, mtype: int) -> None:
    leaf = pki["stranger"]  # no trusted CA, and the name is irrelevant for DANE-EE (RFC 7672 §3.1.1)
    record = tlsa_of(leaf.cert, 3, selector, mtype)
    assert verify_dane([leaf.cert], (record,), names=("other.name.test",)) is None
    wrong = Tlsa(3, selector, mtype, record.data[:-1] + bytes([record.data[-1] ^ 1]))
    assert verify_dane([leaf.cert], (wrong,), names=("mx.example.test",))[0] == "validation-failure"


def test_dane_ee_ignores_dates(pki: dict) -> None:
    leaf = pki["expired"]
    assert verify_dane([leaf.cert], (tlsa_of(leaf.cert),), names=("x.test",)) is None


def test_dane_311_is_the_sha256_of_the_public_key(pki: dict) -> None:
    cert = pki["leaf"].cert
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert tlsa_of(cert).data == hashlib.sha256(spki).digest() and str(tlsa_of(cert)).startswith("3 1 1 ")


def test_dane_ta_needs_the_anchor_in_the_chain_and_the_name(pki: dict) -> None:
    ta = tlsa_of(pki["inter"].cert, usage=DANE_TA)
    full = chain(pki["leaf"], pki["inter"])
    assert verify_dane(full, (ta,), names=("mx.example.test",)) is None
    assert verify_dane(full, (ta,), names=("mx.other.test",))[0] == "certificate-host-mismatch"
    assert verify_dane([pki["leaf"].cert], (ta,), names=("mx.example.test",))[0] == "validation-failure"
    # A leaf of another CA, sent with the anchor: the signatures do not chain.
    assert verify_dane([pki["stranger"].cert, pki["inter"].cert], (ta,), names=("mx.example.test",)) is not None
    # DANE-TA never matches the leaf itself.
    assert verify_dane(full, (tlsa_of(pki["leaf"].cert, usage=DANE_TA),), names=("mx.example.test",)) is not None


def test_unusable_tlsa_records_are_ignored(pki: dict) -> None:
    leaf = pki["leaf"].cert
    pkix_ee = Tlsa(1, 1, 1, tlsa_of(leaf).data)
    assert not pkix_ee.usable and not Tlsa(3, 1, 1, b"short").usable and not Tlsa(3, 2, 1, b"x" * 32).usable
    assert verify_dane([leaf], (pkix_ee,), names=("mx.example.test",)) is not None
    assert Tlsa.parse("3 1 1 " + "ab" * 16 + " " + "cd" * 16).data == bytes.fromhex("ab" * 16 + "cd" * 16)


# -- PKIX ---------------------------------------------------------------------------------------------------

def test_pkix_verifies_and_classifies_failures(pki: dict) -> None:
    trust = TrustStore((pki["ca"].cert,), "test")
    assert verify_pkix(chain(pki["leaf"], pki["inter"]), ("mx.example.test",), trust) is None
    assert verify_pkix(chain(pki["leaf"], pki["inter"]), ("mx.elsewhere.test",), trust)[0] == \
        "certificate-host-mismatch"
    assert verify_pkix(chain(pki["expired"]), ("mx.example.test",), trust)[0] == "certificate-expired"
    assert verify_pkix(chain(pki["stranger"]), ("mx.example.test",), trust)[0] == "certificate-not-trusted"
    no_intermediate = [pki["leaf"].cert]
    assert verify_pkix(no_intermediate, ("mx.example.test",), trust)[0] == "certificate-not-trusted"
    assert verify_pkix([], ("mx.example.test",), trust)[0] == "certificate-not-trusted"


def test_wildcards_match_one_left_most_label_only(pki: dict) -> None:
    wild = pki["wild"].cert
    assert names_match(wild, ["mx.example.test"]) and not names_match(wild, ["a.mx.example.test"])
    assert not names_match(wild, ["example.test"])
    trust = TrustStore((pki["ca"].cert,), "test")
    assert verify_pkix([wild], ("mx.example.test",), trust) is None


def test_trust_store_from_a_file_without_certificates(tmp_path: Path) -> None:
    (tmp_path / "empty.pem").write_text("nothing here\n")
    with pytest.raises(ValueError, match="no PEM certificate"):
        TrustStore.from_file(tmp_path / "empty.pem")


# -- MTA-STS parsing ----------------------------------------------------------------------------------------

def test_sts_txt_record() -> None:
    assert parse_txt(["v=STSv1; id=20160831085700Z;"]) == "20160831085700Z"
    assert parse_txt(["v=spf1 -all", "v=STSv1; id=abc"]) == "abc"
    assert parse_txt(["v=STSv1; id=a", "v=STSv1; id=b"]) is None  # RFC 8461 §3.1: more than one
    assert parse_txt(["v=STSv1; id=bad-id!"]) is None and parse_txt([]) is None


def test_sts_policy_parsing_and_mx_patterns() -> None:
    text = ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\n"
            "max_age: 604800\n")
    p = parse_policy("example.com", "1", text, 0.0)
    assert (p.mode, p.max_age, p.expires) == ("enforce", 604800, 604800.0)
    assert p.matches("mail.example.com") and p.matches("MX1.example.net.") and p.matches("backupmx.example.com")
    assert not p.matches("a.b.example.net") and not p.matches("example.net") and not p.matches("mail.example.org")
    for bad in ("version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n",
                "version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n",
                "version: STSv1\nmode: enforce\nmax_age: 1\n",
                "version: STSv1\nmode: enforce\nmx: a\nmax_age: 99999999\n",
                "version: STSv1\nmode enforce\n"):
        with pytest.raises(MtaStsInvalid):
            parse_policy("example.com", "1", bad, 0.0)
    assert parse_policy("x.test", "1", "version: STSv1\r\nmode: none\r\nmax_age: 0\r\n", 0.0).mode == "none"


# -- the resolver's order ---------------------------------------------------------------------------------

class FakeDnssec:
    """Answers from a table: (name, type) -> (records, secure) or an exception."""

    def __init__(self, table: dict[tuple[str, str], object]) -> None:
        self.table = table

    async def query(self, name: str, rdtype: str) -> SecureAnswer:
        value = self.table.get((name, rdtype), ((), True))
        if isinstance(value, Exception):
            raise value
        records, secure = value  # type: ignore[misc]
        rdata = tuple(dns.rdata.from_text("IN", rdtype, str(r)) for r in records)
        return SecureAnswer(name, rdtype, rdata, secure)


class FakeSts:
    def __init__(self, policy: MtaStsPolicy | None) -> None:
        self.found = StsLookup(policy)

    async def policy(self, domain: str) -> StsLookup:
        return self.found


def sts(mode: str, mx: str = "mx.d.test") -> FakeSts:
    return FakeSts(MtaStsPolicy("d.test", "1", mode, (mx,), 86400, 0.0, f"version: STSv1\nmode: {mode}\n"))


async def test_local_policy_never_lowers_a_published_one_but_replaces_the_default() -> None:
    r = TlsPolicyResolver(mta_sts=sts("enforce"), local={"d.test": "none"})  # type: ignore[arg-type]
    req = (await r.for_domain("d.test", ["mx.d.test"])).for_host("mx.d.test")
    assert (req.mode, req.source, req.enforced) == (TlsMode.VERIFY, PolicySource.MTA_STS, True) and req.notes
    r = TlsPolicyResolver(mta_sts=FakeSts(None), local={"d.test": "none"})  # type: ignore[arg-type]
    req = (await r.for_domain("d.test", ["mx.d.test"])).for_host("mx.d.test")
    assert (req.mode, req.source, req.wants_tls) == (TlsMode.NONE, PolicySource.LOCAL, False)
    r = TlsPolicyResolver(mta_sts=sts("testing"), local={"d.test": "verify"})  # type: ignore[arg-type]
    req = (await r.for_domain("d.test", ["mx.d.test"])).for_host("mx.d.test")
    assert (req.mode, req.source, req.enforced) == (TlsMode.VERIFY, PolicySource.LOCAL, True)


async def test_sts_enforce_refuses_an_mx_it_does_not_list_and_testing_reports_it() -> None:
    r = TlsPolicyResolver(mta_sts=sts("enforce"))  # type: ignore[arg-type]
    policy = await r.for_domain("d.test", ["evil.attacker.test", "mx.d.test"])
    assert policy.for_host("evil.attacker.test").refusal is not None
    assert policy.for_host("mx.d.test").refusal is None
    assert policy.for_host("never.asked.test").refusal is not None  # fail closed
    r = TlsPolicyResolver(mta_sts=sts("testing"))  # type: ignore[arg-type]
    req = (await r.for_domain("d.test", ["other.test"])).for_host("other.test")
    assert req.refusal is None and req.report_only and not req.enforced
    # RFC 8689: for a REQUIRETLS message a testing policy is enforced.
    req = (await r.for_domain("d.test", ["other.test"], requiretls=True)).for_host("other.test")
    assert req.refusal is not None


async def test_dnssec_failures_defer_and_insecure_answers_are_not_dane() -> None:
    tlsa = ([Tlsa(3, 1, 1, b"\x01" * 32)], True)
    base = {("d.test", "MX"): (["10 mx.d.test."], True), ("mx.d.test", "A"): (["192.0.2.1"], True)}
    r = TlsPolicyResolver(dnssec=FakeDnssec({**base, ("_25._tcp.mx.d.test", "TLSA"): tlsa}))  # type: ignore[arg-type]
    assert (await r.for_domain("d.test", ["mx.d.test"])).for_host("mx.d.test").mode is TlsMode.DANE
    bogus = TlsPolicyResolver(dnssec=FakeDnssec({**base, ("_25._tcp.mx.d.test", "TLSA"): DnssecLookupFailed("x")}))  # type: ignore[arg-type]
    req = (await bogus.for_domain("d.test", ["mx.d.test"])).for_host("mx.d.test")
    assert req.refusal is not None and req.refusal.result_type == "dnssec-invalid"
    mx_fail = TlsPolicyResolver(dnssec=FakeDnssec({("d.test", "MX"): DnssecLookupFailed("x")}))  # type: ignore[arg-type]
    assert (await mx_fail.for_domain("d.test", ["mx.d.test"])).refusal is not None
    insecure_a = TlsPolicyResolver(dnssec=FakeDnssec({**base, ("mx.d.test", "A"): (["192.0.2.1"], False),
                                                       ("_25._tcp.mx.d.test", "TLSA"): tlsa}))  # type: ignore[arg-type]
    assert (await insecure_a.for_domain("d.test", ["mx.d.test"])).for_host("mx.d.test").mode is TlsMode.MAY
    insecure_mx = TlsPolicyResolver(dnssec=FakeDnssec({**base, ("d.test", "MX"): (["10 mx.d.test."], False),
                                                        ("_25._tcp.mx.d.test", "TLSA"): tlsa}))  # type: ignore[arg-type]
    assert (await insecure_mx.for_domain("d.test", ["mx.d.test"])).for_host("mx.d.test").mode is TlsMode.MAY


async def test_requiretls_without_dnssec_or_sts_fails_permanently() -> None:
    r = TlsPolicyResolver(mta_sts=FakeSts(None))  # type: ignore[arg-type]
    policy = await r.for_domain("d.test", ["mx.d.test"], requiretls=True)
    assert policy.refusal is not None and policy.refusal.permanent and policy.refusal.status == "5.7.10"


def test_parent_entries_cover_subdomains_only() -> None:
    r = TlsPolicyResolver(local={".corp.test": "verify"})
    assert r._local("a.corp.test") is TlsMode.VERIFY and r._local("corp.test") is None


def test_dates_are_checked_with_the_clock_given(pki: dict) -> None:
    trust = TrustStore((pki["ca"].cert,), "test")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    assert verify_pkix(chain(pki["leaf"], pki["inter"]), ("mx.example.test",), trust, later)[0] == "certificate-expired"
