"""The deployment's own S/MIME CA, and the users' certificates it issues.

    ca = SmimeAuthority(store, name="mailbastion S/MIME CA for mail.example.org")
    record = ca.issue_user("alice@example.org", days=730, key_bits=3072)   # RSA key, sealed, in the store

The CA is apart from the TLS CA of the gateway <-> MDA link (tls/ca.crt): a certificate for mail must
not be one our LMTP listener trusts, and the reverse. Its key is sealed with the deployment key like the
users' keys. Users' certificates: RSA (cryptography's EnvelopedData builder encrypts to RSA only, and
every mail client reads RSA), key usage digitalSignature + keyEncipherment, EKU emailProtection, the
address as SAN rfc822Name (RFC 8550 §3). Outsiders do not trust this CA: mail they get from us verifies
only once they trust it (distribute smime-ca.crt), which is why outbound signing is opt-in.
"""

from __future__ import annotations

import datetime as dt
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailbastion.crypto.keystore import KeyRecord, KeyStore
from mailbastion.crypto.smime import fingerprint
from mailbastion.private_files import write_private, write_public

__all__ = ["SmimeAuthority"]

_BACKDATE = dt.timedelta(minutes=5)
CA_DAYS = 3650


def _der_key(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class SmimeAuthority:
    def __init__(self, store: KeyStore, *, name: str = "mailbastion S/MIME CA") -> None:
        self.store = store
        self.name = name
        self.cert_path = store.key_dir / "smime-ca.crt"
        self.key_path = store.key_dir / "smime-ca.key.sealed"

    def _context(self) -> bytes:
        return b"smime-ca"

    def ensure(self) -> x509.Certificate:
        """The CA certificate, made (P-384 key, ten years, pathLen 0) when there is none."""
        if self.cert_path.exists() and self.key_path.exists():
            return x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        key = ec.generate_private_key(ec.SECP384R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailbastion"),
                             x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - _BACKDATE).not_valid_after(now + dt.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                             crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(ski, critical=False)
                .sign(key, hashes.SHA384()))
        write_private(self.key_path, self.store.deployment_key.seal(_der_key(key), context=self._context()))
        write_public(self.cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return cert

    def _key(self) -> ec.EllipticCurvePrivateKey:
        der = self.store.deployment_key.open(self.key_path.read_bytes(), context=self._context())
        key = serialization.load_der_private_key(der, None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def issue(self, address: str, public_key: rsa.RSAPublicKey, *, days: int, name: str = "") -> x509.Certificate:
        ca_cert = self.ensure()
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        now = dt.datetime.now(dt.UTC)
        subject = [x509.NameAttribute(NameOID.COMMON_NAME, name or address),
                   x509.NameAttribute(NameOID.EMAIL_ADDRESS, address)]
        return (x509.CertificateBuilder().subject_name(x509.Name(subject)).issuer_name(ca_cert.subject)
                .public_key(public_key).serial_number(x509.random_serial_number())
                .not_valid_before(now - _BACKDATE).not_valid_after(now + dt.timedelta(days=days))
                .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
                .sign(self._key(), hashes.SHA256()))

    def issue_user(self, address: str, *, days: int = 730, key_bits: int = 3072, name: str = "") -> KeyRecord:
        """A new RSA key and certificate for `address`, stored with the key sealed. The record's public part
        is the certificate followed by the CA certificate (what a client imports as the chain)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=key_bits)
        cert = self.issue(address, key.public_key(), days=days, name=name)
        ca_pem = self.cert_path.read_bytes()
        record = KeyRecord(address=address, kind="smime", fingerprint=fingerprint(cert),
                           public=cert.public_bytes(serialization.Encoding.PEM) + ca_pem, source="generated",
                           created=time.time(), expires=cert.not_valid_after_utc.timestamp())
        return self.store.put(self.store.seal(record, _der_key(key)))
