"""The certificates `init` makes: strict-validator extensions, role usages, lifetimes, random serials, modes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import DNSName, PolicyBuilder, Store

from mailbastion.pki import (
    check_public_pair,
    issue,
    issued_by,
    load_chain,
    load_key,
    make_deployment_pki,
    read_certificate,
    reissue,
)

ROLES = {"gateway.crt": (ExtendedKeyUsageOID.SERVER_AUTH,), "mda.crt": (ExtendedKeyUsageOID.SERVER_AUTH,),
         "gateway-client.crt": (ExtendedKeyUsageOID.CLIENT_AUTH,)}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_deployment_pki(tmp_path_factory.mktemp("d") / "tls", "mail.example.test")


def cert(path: Path) -> x509.Certificate:
    return load_chain(path)[0]


def ext(c: x509.Certificate, kind: type) -> x509.Extension:  # type: ignore[type-arg]
    return c.extensions.get_extension_for_class(kind)


def test_every_certificate_has_key_identifiers_that_link_the_chain(pki: dict[str, Path]) -> None:
    ca = cert(pki["ca.crt"])
    ca_ski = ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert ext(ca, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski
    for name in ROLES:
        leaf = cert(pki[name])
        assert ext(leaf, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
            leaf.public_key())
        assert ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski


def test_key_usages_per_role(pki: dict[str, Path]) -> None:
    ca = cert(pki["ca.crt"])
    bc, ku = ext(ca, x509.BasicConstraints), ext(ca, x509.KeyUsage)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    for name, eku in ROLES.items():
        leaf = cert(pki[name])
        bc, ku = ext(leaf, x509.BasicConstraints), ext(leaf, x509.KeyUsage)
        assert bc.critical and not bc.value.ca
        assert ku.critical and ku.value.digital_signature
        assert not (ku.value.key_cert_sign or ku.value.crl_sign or ku.value.key_encipherment)
        assert tuple(ext(leaf, x509.ExtendedKeyUsage).value) == eku


def test_lifetimes_keys_and_serials(pki: dict[str, Path], tmp_path: Path) -> None:
    for name in ROLES:
        leaf = cert(pki[name])
        assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 365  # Mozilla: under 366
        assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
        assert leaf.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    ca = cert(pki["ca.crt"])
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 3000
    # serials: positive, large, and different for the same request
    other = make_deployment_pki(tmp_path / "tls", "mail.example.test")
    serials = {cert(p).serial_number for d in (pki, other) for n, p in d.items() if n.endswith(".crt")}
    assert len(serials) == 12 and all(0 < s < 2**159 and s > 2**64 for s in serials)  # 6 certificates x 2
    with pytest.raises(ValueError, match="1 to 365 days"):
        issue(pki["ca.crt"], pki["ca.key"], tmp_path / "x.crt", tmp_path / "x.key", common_name="x", days=825)


def test_strict_rfc5280_validation_of_each_role(pki: dict[str, Path]) -> None:
    """cryptography's verifier (the one sslyze uses) refuses a leaf without AKI: main's certificates failed here."""
    store = Store(load_chain(pki["ca.crt"]))
    for name, host in (("gateway.crt", "mail.example.test"), ("gateway.crt", "localhost"), ("mda.crt", "mda")):
        chain = PolicyBuilder().store(store).build_server_verifier(DNSName(host)).verify(cert(pki[name]), [])
        assert len(chain) == 2
    client = PolicyBuilder().store(store).build_client_verifier().verify(cert(pki["gateway-client.crt"]), [])
    assert [n.value for n in client.subjects] == ["gateway"]  # type: ignore[union-attr]


def test_files_are_private_where_they_must_be(pki: dict[str, Path]) -> None:
    assert stat.S_IMODE(pki["ca.crt"].parent.stat().st_mode) == 0o700
    for name, path in pki.items():
        assert stat.S_IMODE(path.stat().st_mode) == (0o600 if name.endswith(".key") else 0o644), name


def test_reissue_keeps_names_changes_key_and_keeps_file_modes(tmp_path: Path) -> None:
    p = make_deployment_pki(tmp_path / "tls", "mail.example.test")
    before, old_key = read_certificate(p["mda.crt"]), load_key(p["mda.key"])
    p["mda.key"].chmod(0o640)  # a site that lets the service group read it
    reissue(p["ca.crt"], p["ca.key"], p["mda.crt"], p["mda.key"], server=True, client=False, days=90,
            default_name="mda", add_names=["mda.internal", "127.0.0.1"])
    after = read_certificate(p["mda.crt"])
    assert after.subject == before.subject and after.names == (*before.names[:2], "mda.internal", *before.names[2:])
    assert after.days_left() in (89, 90) and after.not_after > before.not_before
    assert load_key(p["mda.key"]).public_key() != old_key.public_key()
    assert issued_by(cert(p["mda.crt"]), cert(p["ca.crt"]))
    assert stat.S_IMODE(p["mda.key"].stat().st_mode) == 0o640
    assert not [f for f in p["mda.key"].parent.iterdir() if f.name.startswith(".")]  # no temporary left


def test_a_ca_made_before_key_identifiers_still_issues_linked_leaves(tmp_path: Path) -> None:
    """Deployments made by older versions: their CA has no SKI; renewal still sets the leaf's AKI."""
    import datetime as dt

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailbastion internal CA")])
    now = dt.datetime.now(dt.UTC)
    old_ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now)
              .not_valid_after(now + dt.timedelta(days=3650))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .sign(key, hashes.SHA256()))
    with pytest.raises(x509.ExtensionNotFound):
        ext(old_ca, x509.SubjectKeyIdentifier)
    (tmp_path / "ca.crt").write_bytes(old_ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    issue(tmp_path / "ca.crt", tmp_path / "ca.key", tmp_path / "l.crt", tmp_path / "l.key", common_name="l")
    aki = ext(cert(tmp_path / "l.crt"), x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
    assert issued_by(cert(tmp_path / "l.crt"), old_ca)


def test_check_public_pair_refuses_what_it_must(pki: dict[str, Path], tmp_path: Path) -> None:
    from mailbastion.core.errors import ConfigError

    anchors = load_chain(pki["ca.crt"])
    chain = load_chain(pki["gateway.crt"])
    served = check_public_pair(chain, load_key(pki["gateway.key"]), hostname="mail.example.test", anchors=anchors)
    assert served == chain  # the leaf; the root is not served
    cases = [
        ({"hostname": "mail.example.test", "anchors": anchors}, load_key(pki["mda.key"]), "does not belong"),
        ({"hostname": "mx.elsewhere.example", "anchors": anchors}, load_key(pki["gateway.key"]), "does not name"),
        ({"hostname": "mail.example.test",
          "anchors": load_chain(make_deployment_pki(tmp_path / "o", "o")["ca.crt"])},
         load_key(pki["gateway.key"]), "no trusted chain"),
    ]
    for kwargs, key, message in cases:
        with pytest.raises(ConfigError, match=message):
            check_public_pair(chain, key, **kwargs)  # type: ignore[arg-type]
