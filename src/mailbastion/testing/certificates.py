"""Certificates for outbound TLS tests: a test CA and the good and bad server certificates a remote MX or
an MTA-STS policy host may present. Everything is made at test time; nothing is shipped.

    ca = CertAuthority.create(tmp_path / "ca", "Test Root CA")
    good = ca.issue(tmp_path / "mx", ["mx.sts.test"])                 # .cert_path, .key_path, .cert
    expired = ca.issue(tmp_path / "old", ["mx.sts.test"], expired=True)
    other = CertAuthority.create(tmp_path / "rogue", "Rogue CA").issue(tmp_path / "r", ["mx.sts.test"])
    inter = ca.intermediate(tmp_path / "int", "Test Issuing CA")      # a DANE-TA chain: leaf + intermediate
    leaf = inter.issue(tmp_path / "leaf", ["mx.dane.test"])          # leaf.chain_path: leaf then intermediate
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = dt.timedelta(days=1)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    cert_path: Path  # the leaf alone
    chain_path: Path  # the leaf, then every intermediate up to (not including) the root
    key_path: Path


@dataclass(frozen=True)
class CertAuthority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path
    parents: tuple[x509.Certificate, ...] = ()  # intermediates above this one (for the chain file)

    @staticmethod
    def create(folder: Path, name: str) -> CertAuthority:
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - _DAY)
                .not_valid_after(now + 3650 * _DAY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=True, crl_sign=True, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(ski, critical=False)
                .sign(key, hashes.SHA256()))
        path = folder / "ca.crt"
        path.write_bytes(_pem(cert))
        return CertAuthority(cert, key, path)

    def _builder(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey, *, not_before: dt.datetime,
                 not_after: dt.datetime) -> x509.CertificateBuilder:
        ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
                .public_key(public_key).serial_number(x509.random_serial_number())
                .not_valid_before(not_before).not_valid_after(not_after)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False))

    def intermediate(self, folder: Path, name: str) -> CertAuthority:
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key.public_key(),
                              not_before=now - _DAY, not_after=now + 1825 * _DAY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=True, crl_sign=True, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(self.key, hashes.SHA256()))
        path = folder / "ca.crt"
        path.write_bytes(_pem(cert))
        return CertAuthority(cert, key, path, (cert, *self.parents))

    def issue(self, folder: Path, names: list[str], *, expired: bool = False, days: int = 90) -> Issued:
        """A server certificate for `names` (SAN dNSNames, CN = the first), signed by this CA."""
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        start, end = (now - 60 * _DAY, now - 30 * _DAY) if expired else (now - _DAY, now + days * _DAY)
        cert = (self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]), key.public_key(),
                              not_before=start, not_after=end)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=False, crl_sign=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(self.key, hashes.SHA256()))
        cert_path, chain_path, key_path = folder / "server.crt", folder / "chain.crt", folder / "server.key"
        cert_path.write_bytes(_pem(cert))
        chain_path.write_bytes(_pem(cert) + b"".join(_pem(c) for c in self.parents))
        key_path.write_bytes(_key_pem(key))
        key_path.chmod(0o600)
        return Issued(cert, cert_path, chain_path, key_path)


__all__ = ["CertAuthority", "Issued"]
