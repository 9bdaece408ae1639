"""Helpers for the encryption tests: test identities (a test S/MIME CA and users), and the independent tools
that must read what we write (`openssl cms`, `gpg`). Keys are made at test time; nothing is shipped."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Identity:
    address: str
    cert: x509.Certificate
    cert_path: Path
    key_path: Path
    chain_path: Path  # leaf then the CA (what a signer attaches)


@dataclass(frozen=True)
class SmimeTestCa:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path

    @staticmethod
    def create(folder: Path, name: str = "Test S/MIME Root") -> SmimeTestCa:
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - _DAY)
                .not_valid_after(now + 3650 * _DAY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        path = folder / "ca.crt"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return SmimeTestCa(cert, key, path)

    def issue(self, folder: Path, address: str, *, ec_key: bool = False) -> Identity:
        folder.mkdir(parents=True, exist_ok=True)
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
            ec.generate_private_key(ec.SECP256R1()) if ec_key else rsa.generate_private_key(65537, 2048))
        now = dt.datetime.now(dt.UTC)
        ku = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=not ec_key,
                           data_encipherment=False, key_agreement=ec_key, key_cert_sign=False, crl_sign=False,
                           encipher_only=False, decipher_only=False)
        ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - _DAY).not_valid_after(now + 365 * _DAY)
                .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(ku, critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
                .sign(self.key, hashes.SHA256()))
        cert_path, key_path, chain_path = folder / "user.crt", folder / "user.key", folder / "chain.crt"
        pem = cert.public_bytes(serialization.Encoding.PEM)
        cert_path.write_bytes(pem)
        chain_path.write_bytes(pem + self.cert_path.read_bytes())
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return Identity(address, cert, cert_path, key_path, chain_path)


def openssl_decrypt(message: bytes, cert: Path, key: Path) -> bytes:
    """`openssl cms -decrypt` of an S/MIME message (application/pkcs7-mime): the independent reader."""
    res = subprocess.run(["openssl", "cms", "-decrypt", "-inform", "SMIME", "-recip", str(cert), "-inkey", str(key),
                          "-binary"], input=message, capture_output=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout


def openssl_verify(message: bytes, ca: Path) -> bytes:
    res = subprocess.run(["openssl", "cms", "-verify", "-inform", "SMIME", "-CAfile", str(ca), "-purpose",
                          "smimesign"], input=message, capture_output=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout


def openssl_sign(message: bytes, ident: Identity) -> bytes:
    """A message S/MIME-signed by `ident` with openssl (as an outside mail client would): header fields kept."""
    head, _, body = message.partition(b"\r\n\r\n")
    content = [ln for ln in head.split(b"\r\n") if ln.lower().startswith((b"content-", b"mime-version"))]
    outer = [ln for ln in head.split(b"\r\n") if ln not in content]
    entity = b"\r\n".join(content or [b"Content-Type: text/plain; charset=utf-8"]) + b"\r\n\r\n" + body
    res = subprocess.run(["openssl", "cms", "-sign", "-signer", str(ident.cert_path), "-inkey", str(ident.key_path),
                          "-md", "sha256", "-crlfeol"],
                         input=entity, capture_output=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr.decode()
    return b"\r\n".join(outer) + b"\r\n" + res.stdout.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


_ARMOR = re.compile(rb"-----BEGIN PGP MESSAGE-----.+?-----END PGP MESSAGE-----", re.DOTALL)


def gpg_decrypt(message: bytes, secret_armored: bytes) -> bytes:
    """`gpg --decrypt` of the armored block of a PGP/MIME message, with `secret_armored` in a throwaway home."""
    m = _ARMOR.search(message)
    assert m is not None, "no PGP message in it"
    home = tempfile.mkdtemp(prefix="mbt-")
    os.chmod(home, 0o700)
    env = {**os.environ, "GNUPGHOME": home}
    try:
        imp = subprocess.run(["gpg", "--batch", "--import"], input=secret_armored, capture_output=True, env=env,
                             timeout=60, check=False)
        assert imp.returncode == 0, imp.stderr.decode()
        res = subprocess.run(["gpg", "--batch", "--quiet", "--decrypt"], input=m.group(0), capture_output=True,
                             env=env, timeout=60, check=False)
        assert res.returncode == 0, res.stderr.decode()
        return res.stdout
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, timeout=10, check=False)
        shutil.rmtree(home, ignore_errors=True)


def message(subject: str = "Quarterly plan", body: str = "The secret plan is in here.\r\n", *,
            to: str = "bob@partner.example", sender: str = "alice@example.org", extra: str = "") -> bytes:
    return (f"From: Alice <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\n"
            f"Message-ID: <m1@example.org>\r\n{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"\r\n{body}").encode()
