"""(Registered as fixtures by conftest.py; a uniquely named module so tests can import World.)

The outbound world on loopback: a test CA and the remote MXes' certificates, a DNSSEC-signed zone served
by our authoritative test server behind a real unbound, an unsigned zone on the loopback DNS server (which
sets the AD bit on every answer, as a lying or misconfigured resolver would), and an HTTPS server for
MTA-STS policies and TLS-RPT POSTs.

Sinks (the remote MXes) are started per test, on 127.0.0.N with one shared port."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dnslib import DNSRecord

from mailbastion.outbound.dane import tlsa_of
from mailbastion.outbound.requirement import DANE_TA
from mailbastion.testing.certificates import CertAuthority, Issued
from mailbastion.testing.deployment import free_port
from mailbastion.testing.dns_server import DnsTestServer
from mailbastion.testing.https_server import HttpsTestServer
from mailbastion.testing.signed_zone import SignedZone, SignedZoneServer, ldns_available
from mailbastion.testing.unbound import Unbound, unbound_available


class AdSettingDnsServer(DnsTestServer):
    """The loopback DNS server, but every answer claims AD=1: what a resolver that does not validate (or an
    attacker on the path) can send. Only a validating resolver's own AD bit may be believed."""

    def __init__(self) -> None:
        super().__init__()
        for server in self._servers:
            inner = server.server.resolver

            class _Ad:
                def resolve(self, request: DNSRecord, handler: Any, _inner: Any = inner) -> DNSRecord:
                    reply = _inner.resolve(request, handler)
                    reply.header.ad = 1
                    return reply

            server.server.resolver = _Ad()


@dataclass
class World:
    tmp: Path
    ca: CertAuthority
    rogue: CertAuthority
    certs: dict[str, Issued]
    zone: SignedZone
    auth: SignedZoneServer
    plain: AdSettingDnsServer
    unbound: Unbound
    web: HttpsTestServer
    mx_port: int
    ips: dict[str, str] = field(default_factory=dict)


def _require_tools() -> None:
    if unbound_available() and ldns_available():
        return
    message = "needs Debian's unbound and ldnsutils (`make deb-test-deps`)"
    if os.environ.get("CI") or os.environ.get("MAILBASTION_TOOLS_VENV"):
        pytest.fail(message)
    pytest.skip(message)


STS_POLICY = "version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    _require_tools()
    tmp = tmp_path_factory.mktemp("outbound")
    ca = CertAuthority.create(tmp / "ca", "Outbound Test Root CA")
    rogue = CertAuthority.create(tmp / "rogue", "Rogue CA")
    issuing = ca.intermediate(tmp / "issuing", "Outbound Test Issuing CA")
    certs = {
        "mx.dane.test": ca.issue(tmp / "c1", ["mx.dane.test"]),
        "mx.wrong.dane.test": ca.issue(tmp / "c2", ["mx.wrong.dane.test"]),
        "mx.ta.dane.test": issuing.issue(tmp / "c3", ["mx.ta.dane.test"]),
        "mx.bogus.dane.test": ca.issue(tmp / "c4", ["mx.bogus.dane.test"]),
        "mx.notlsa.dane.test": rogue.issue(tmp / "c5", ["mx.notlsa.dane.test"]),
        "mx.unusable.dane.test": rogue.issue(tmp / "c6", ["mx.unusable.dane.test"]),
        "mx.sts.test": rogue.issue(tmp / "c7", ["mx.sts.test"]),  # enforce + an untrusted CA
        "mx.stsgood.test": ca.issue(tmp / "c8", ["mx.stsgood.test"]),
        "mx.ststesting.test": ca.issue(tmp / "c9", ["somewhere.else.test"]),  # testing + a name mismatch
        "mx.plain.test": rogue.issue(tmp / "c10", ["mx.plain.test"]),
        "mx.liar.test": rogue.issue(tmp / "c11", ["mx.liar.test"]),
        "mx.stsexpired.test": ca.issue(tmp / "c12", ["mx.stsexpired.test"], expired=True),
        "web": ca.issue(tmp / "web", ["mta-sts.sts.test", "mta-sts.stsgood.test", "mta-sts.ststesting.test",
                                      "mta-sts.stsexpired.test", "mta-sts.dane.test", "tlsrpt.stsgood.test",
                                      *(f"mta-sts.f{i}.test" for i in range(1, 8))]),
    }
    ips = {name: f"127.0.0.{i}" for i, name in enumerate(
        ["mx.dane.test", "mx.wrong.dane.test", "mx.ta.dane.test", "mx.bogus.dane.test", "mx.notlsa.dane.test",
         "mx.unusable.dane.test", "mx.sts.test", "mx.stsgood.test", "mx.ststesting.test", "mx.plain.test",
         "mx.liar.test", "mx.stsexpired.test"], start=2)}
    good = tlsa_of(certs["mx.dane.test"].cert)
    ta = tlsa_of(issuing.cert, usage=DANE_TA)
    records = [
        "@ MX 10 mx", f"mx A {ips['mx.dane.test']}", f"_25._tcp.mx TLSA {good}",
        "wrong MX 10 mx.wrong", f"mx.wrong A {ips['mx.wrong.dane.test']}",
        f"_25._tcp.mx.wrong TLSA 3 1 1 {secrets.token_hex(32)}",
        "ta MX 10 mx.ta", f"mx.ta A {ips['mx.ta.dane.test']}", f"_25._tcp.mx.ta TLSA {ta}",
        "bogus MX 10 mx.bogus", f"mx.bogus A {ips['mx.bogus.dane.test']}",
        f"_25._tcp.mx.bogus TLSA {tlsa_of(certs['mx.bogus.dane.test'].cert)}",
        "notlsa MX 10 mx.notlsa", f"mx.notlsa A {ips['mx.notlsa.dane.test']}",
        "unusable MX 10 mx.unusable", f"mx.unusable A {ips['mx.unusable.dane.test']}",
        f"_25._tcp.mx.unusable TLSA 1 1 1 {secrets.token_hex(32)}",  # PKIX-EE: unusable for SMTP
        "mta-sts A 127.0.0.1",
    ]
    zone = SignedZone.sign("dane.test", records, tmp / "zone")
    # New data under the old signature: a validating resolver must call it bogus (SERVFAIL).
    zone.tamper("_25._tcp.mx.bogus.dane.test", "TLSA", f"3 1 1 {secrets.token_hex(32)}")
    web = HttpsTestServer(certs["web"].chain_path, certs["web"].key_path).start()
    plain = AdSettingDnsServer().start()
    for domain in ("sts.test", "stsgood.test", "ststesting.test", "plain.test", "liar.test", "stsexpired.test"):
        plain.add(domain, "MX", f"10 mx.{domain}")
        plain.add(f"mx.{domain}", "A", ips[f"mx.{domain}"])
    for domain, mode in (("sts.test", "enforce"), ("stsgood.test", "enforce"), ("ststesting.test", "testing"),
                         ("stsexpired.test", "enforce")):
        plain.add(f"_mta-sts.{domain}", "TXT", "v=STSv1; id=20260101T1")
        plain.add(f"mta-sts.{domain}", "A", "127.0.0.1")
        web.serve(f"mta-sts.{domain}", "/.well-known/mta-sts.txt", STS_POLICY.format(mode=mode, mx=f"mx.{domain}"))
    plain.add("_smtp._tls.stsgood.test", "TXT",
              "v=TLSRPTv1; rua=mailto:tlsrpt@stsgood.test,https://tlsrpt.stsgood.test/v1/report")
    plain.add("_smtp._tls.sts.test", "TXT", "v=TLSRPTv1; rua=mailto:tlsrpt@sts.test")
    plain.add("tlsrpt.stsgood.test", "A", "127.0.0.1")
    plain.add("_25._tcp.mx.liar.test", "TLSA", f"3 1 1 {secrets.token_hex(32)}")  # would never match
    auth = SignedZoneServer([zone]).start()
    unbound = Unbound(tmp / "unbound", trust_anchors=[zone.trust_anchor],
                      stubs={"dane.test": (auth.host, auth.port)}, forward=(plain.host, plain.port)).start()
    try:
        yield World(tmp, ca, rogue, certs, zone, auth, plain, unbound, web, free_port(), ips)
    finally:
        unbound.stop()
        auth.stop()
        plain.stop()
        web.stop()
