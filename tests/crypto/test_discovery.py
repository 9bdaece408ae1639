"""Outsiders' OpenPGP keys through WKD (a loopback HTTPS server with a test CA) and LDAP (a loopback slapd)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from crypto_testkit import gpg_decrypt, message

from mailbastion.core.address import parse_address
from mailbastion.crypto import openpgp
from mailbastion.crypto.classify import Classifier
from mailbastion.crypto.discovery import KeyDiscovery, LdapSource, WkdClient, wkd_urls
from mailbastion.crypto.keystore import KeyStore
from mailbastion.crypto.mime_wrap import canonical
from mailbastion.crypto.outbound import OutboundPolicy, Protection, StoreKeys, protect_outbound
from mailbastion.testing.certificates import CertAuthority
from mailbastion.testing.https_server import HttpsTestServer


@dataclass
class Records:
    records: tuple[str, ...]


class LoopbackNames:
    """Names to loopback addresses (the only network a test may use); everything else has no address."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    async def lookup(self, name: str, rdtype: str) -> Records:
        ip = self.names.get(name.lower())
        return Records((ip,) if ip and rdtype == "A" else ())


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[bytes, bytes]]:
    return {a: openpgp.generate_key(a, days=30) for a in ("erin@partner.example", "frank@direct.example",
                                                          "gail@ldap.example")}


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpsTestServer, Path]]:
    tmp = tmp_path_factory.mktemp("wkd")
    ca = CertAuthority.create(tmp / "ca", "WKD Test CA")
    leaf = ca.issue(tmp / "leaf", ["openpgpkey.partner.example", "direct.example", "openpgpkey.big.example"])
    with HttpsTestServer(leaf.chain_path, leaf.key_path) as server:
        yield server, ca.cert_path


def client(web: tuple[HttpsTestServer, Path], **kw: object) -> WkdClient:
    server, ca = web
    names = LoopbackNames({"openpgpkey.partner.example": "127.0.0.1", "direct.example": "127.0.0.1",
                           "openpgpkey.big.example": "127.0.0.1"})
    return WkdClient(names, ssl_context=ssl.create_default_context(cafile=str(ca)), https_port=server.port,
                     **kw)  # type: ignore[arg-type]


async def test_wkd_advanced_method_finds_the_key_and_the_reply_is_encrypted_to_it(
        web: tuple[HttpsTestServer, Path], keys: dict[str, tuple[bytes, bytes]], tmp_path: Path) -> None:
    server, _ = web
    public, secret = keys["erin@partner.example"]
    (host, path), _ = wkd_urls("erin@partner.example")
    server.serve(host, path, openpgp.load_cert(public).__bytes__(), content_type="application/octet-stream")
    store = KeyStore(tmp_path / "keys", tmp_path / "keys" / "d.key")
    discovery = KeyDiscovery(store, [("wkd", client(web).lookup)])
    record = await discovery.find("erin@partner.example")
    assert record is not None and record.source == "wkd" and record.kind == "openpgp"
    assert ("GET", "openpgpkey.partner.example", path) in server.requests
    raw = message(subject="[confidential] terms", to="erin@partner.example")
    d = protect_outbound(raw, [parse_address("erin@partner.example")], StoreKeys(store),
                         OutboundPolicy(Classifier(), lambda dom: dom == "example.org"))
    assert d.outgoing[0].protection is Protection.OPENPGP
    assert gpg_decrypt(d.outgoing[0].message, secret) == canonical(raw)


async def test_wkd_direct_method_when_there_is_no_openpgpkey_host(
        web: tuple[HttpsTestServer, Path], keys: dict[str, tuple[bytes, bytes]]) -> None:
    server, _ = web
    public, _ = keys["frank@direct.example"]
    _, (host, path) = wkd_urls("frank@direct.example")
    server.serve(host, path, public, content_type="application/octet-stream")
    found = await client(web).lookup("frank@direct.example")
    assert found is not None and openpgp.key_info(found).addresses == ("frank@direct.example",)


async def test_wkd_refuses_a_key_for_another_address_an_oversize_answer_and_an_untrusted_server(
        web: tuple[HttpsTestServer, Path], keys: dict[str, tuple[bytes, bytes]], tmp_path: Path) -> None:
    server, _ = web
    (host, path), _ = wkd_urls("mallory@partner.example")
    server.serve(host, path, keys["erin@partner.example"][0])  # erin's key served for mallory
    assert await client(web).lookup("mallory@partner.example") is None
    (host, path), _ = wkd_urls("erin@big.example")
    server.serve(host, path, b"\x99" * 5000)
    assert await client(web, max_bytes=4096).lookup("erin@big.example") is None
    (host, path), _ = wkd_urls("erin@partner.example")
    server.serve(host, path, keys["erin@partner.example"][0])
    other = CertAuthority.create(tmp_path / "other", "Other CA")
    untrusting = WkdClient(LoopbackNames({"openpgpkey.partner.example": "127.0.0.1"}),
                           ssl_context=ssl.create_default_context(cafile=str(other.cert_path)), https_port=server.port)
    assert await untrusting.lookup("erin@partner.example") is None
    assert await client(web).lookup("erin@partner.example") is not None


async def test_a_miss_is_remembered(web: tuple[HttpsTestServer, Path], tmp_path: Path) -> None:
    server, _ = web
    now = [1000.0]
    discovery = KeyDiscovery(KeyStore(tmp_path / "k", tmp_path / "k" / "d.key"), [("wkd", client(web).lookup)],
                             miss_ttl=3600, clock=lambda: now[0])
    before = len(server.requests)
    assert await discovery.find("nobody@partner.example") is None
    assert len(server.requests) == before + 1
    assert await discovery.find("nobody@partner.example") is None
    assert len(server.requests) == before + 1  # not asked again within the hour
    now[0] += 3601
    assert await discovery.find("nobody@partner.example") is None
    assert len(server.requests) == before + 2


# -- LDAP: a loopback slapd (Debian's slapd), skipped when it is not installed ----------------------------------

SLAPD = shutil.which("slapd") or ("/usr/sbin/slapd" if Path("/usr/sbin/slapd").exists() else None)
SCHEMA = Path("/etc/ldap/schema")


def _free_port() -> int:
    from mailbastion.testing.deployment import free_port as shared

    return shared()  # never a port another helper of this run just handed out


@pytest.fixture
def slapd(tmp_path: Path, keys: dict[str, tuple[bytes, bytes]]) -> Iterator[str]:
    if SLAPD is None or not (SCHEMA / "inetorgperson.schema").exists() or shutil.which("slapadd") is None:
        pytest.skip("Debian's slapd is not installed (make deb-test-deps)")
    db = tmp_path / "db"
    db.mkdir()
    conf = tmp_path / "slapd.conf"
    conf.write_text(f"""include {SCHEMA}/core.schema
include {SCHEMA}/cosine.schema
include {SCHEMA}/inetorgperson.schema
attributetype ( 1.3.6.1.4.1.3401.8.2.11 NAME 'pgpKey' DESC 'OpenPGP key' EQUALITY octetStringMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )
objectclass ( 1.3.6.1.4.1.3401.8.2.24 NAME 'pgpKeyInfo' SUP top AUXILIARY MAY ( pgpKey ) )
pidfile {tmp_path}/slapd.pid
moduleload back_mdb
database mdb
suffix "dc=ldap,dc=example"
rootdn "cn=admin,dc=ldap,dc=example"
directory {db}
access to * by * read
""")
    armored = keys["gail@ldap.example"][0].decode().strip().replace("\n", "\n ")
    ldif = (f"dn: dc=ldap,dc=example\nobjectClass: dcObject\nobjectClass: organization\no: test\ndc: ldap\n\n"
            f"dn: cn=Gail,dc=ldap,dc=example\nobjectClass: inetOrgPerson\nobjectClass: pgpKeyInfo\ncn: Gail\n"
            f"sn: G\nmail: gail@ldap.example\npgpKey: {armored}\n")
    res = subprocess.run(["slapadd", "-f", str(conf)], input=ldif.encode(), capture_output=True, timeout=60,
                         check=False)
    if res.returncode != 0 and b"back_mdb" in res.stderr:  # built in: no module to load
        conf.write_text(conf.read_text().replace("moduleload back_mdb\n", ""))
        res = subprocess.run(["slapadd", "-f", str(conf)], input=ldif.encode(), capture_output=True, timeout=60,
                             check=False)
    assert res.returncode == 0, res.stderr.decode()
    port = _free_port()
    proc = subprocess.Popen([SLAPD, "-f", str(conf), "-h", f"ldap://127.0.0.1:{port}/", "-d", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "slapd exited"
                assert time.monotonic() < deadline, "slapd did not listen"
                time.sleep(0.1)
        yield f"ldap://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_ldap_attribute_gives_the_key(slapd: str, keys: dict[str, tuple[bytes, bytes]], tmp_path: Path) -> None:
    source = LdapSource(slapd, "dc=ldap,dc=example", attribute="pgpKey")
    found = await source.lookup("gail@ldap.example")
    assert found is not None
    assert openpgp.key_info(found).fingerprint == openpgp.key_info(keys["gail@ldap.example"][0]).fingerprint
    assert await source.lookup("nobody@ldap.example") is None
    assert await source.lookup("gail@ldap.example)(mail=*") is None  # escaped filter: no injection
    store = KeyStore(tmp_path / "k", tmp_path / "k" / "d.key")
    record = await KeyDiscovery(store, [("ldap", source.lookup)]).find("gail@ldap.example")
    assert record is not None and record.source == "ldap"
    assert await LdapSource("ldap://127.0.0.1:1", "dc=x", timeout=2).lookup("gail@ldap.example") is None


async def test_submission_looks_up_an_outsiders_key_for_a_confidential_message_only(
        web: tuple[HttpsTestServer, Path], keys: dict[str, tuple[bytes, bytes]], tmp_path: Path) -> None:
    """The submission path (submission/protection.py with a KeyDiscovery): a confidential message to an
    outsider without a stored key is encrypted to the key the recipient's domain publishes in WKD; an
    ordinary message asks nothing."""
    from mailbastion.core.envelope import Envelope
    from mailbastion.submission.protection import Protection as SubmissionProtection

    server, _ = web
    address = "hana@partner.example"
    public, secret = openpgp.generate_key(address, days=30)
    (host, path), _ = wkd_urls(address)
    server.serve(host, path, openpgp.load_cert(public).__bytes__(), content_type="application/octet-stream")
    store = KeyStore(tmp_path / "keys", tmp_path / "keys" / "d.key")
    protection = SubmissionProtection(OutboundPolicy(Classifier(), lambda dom: dom == "example.org"),
                                      StoreKeys(store), discovery=KeyDiscovery(store, [("wkd", client(web).lookup)]))
    envelope = Envelope(sender=parse_address("alice@example.org"), recipients=(parse_address(address),))

    before = len(server.requests)
    plain = await protection.plan(message(subject="lunch?", to=address), envelope)
    assert len(server.requests) == before and store.active(address) == []  # nothing asked for ordinary mail
    assert plain.sends and plain.refusal is None

    raw = message(subject="[confidential] the contract", to=address)
    plan = await protection.plan(raw, envelope)
    assert ("GET", host, path) in server.requests[before:]
    assert plan.refusal is None and len(plan.sends) == 1
    (sent_to, sent), = plan.sends
    assert [str(r) for r in sent_to.recipients] == [address]
    assert gpg_decrypt(sent, secret) == canonical(raw)  # encrypted to the key WKD served
    assert store.active(address)[0].source == "wkd"
