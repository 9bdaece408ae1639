"""S/MIME (RFC 8551): encrypt to certificates, sign, verify inbound signatures and take the signer's certificate.

Library: `cryptography`'s PKCS#7/CMS builders, in process. `PKCS7EnvelopeBuilder` (cryptography >= 43)
writes EnvelopedData with RSA key transport (PKCS #1 v1.5, a MUST of RFC 8551 §2.3) and AES-128/256-CBC
(§2.7: CBC is what every deployed client reads; AuthEnvelopedData with GCM is not yet read by Outlook);
`PKCS7SignatureBuilder` signs with RSA or ECDSA and SHA-256. What cryptography cannot do goes to the
`openssl cms` command of the same OpenSSL: encryption to a certificate with an EC key (ECDH, RFC 8551
§2.3 MUST) and signature verification with chain building to the system's CA bundle plus configured CAs
(`openssl cms -verify -purpose smimesign`), which cryptography has no API for.

    der = encrypt_der(inner, [cert, ...], cipher="aes256-cbc")           # CMS EnvelopedData, DER
    signed = sign_message(raw, cert, key, chain=[ca])                     # multipart/signed (RFC 8551 §3.5.3)
    signer = verify_signed(raw, trust)                                    # SignerCertificate | None
    plain = decrypt_der(der, cert, key)                                   # tests, and a user's own tools
"""

from __future__ import annotations

import logging
import os
import ssl
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailbastion.crypto.mime_wrap import canonical, inner_entity, outer_fields, smime_message

__all__ = ["OPENSSL", "SignerCertificate", "SmimeError", "TrustBundle", "cert_addresses", "decrypt_der",
           "encrypt_der", "encrypt_message", "fingerprint", "is_usable_for_encryption", "sign_message",
           "verify_signed"]

log = logging.getLogger("mailbastion.crypto")

OPENSSL = os.environ.get("MAILBASTION_OPENSSL", "openssl")
_CIPHERS: dict[str, tuple[type[algorithms.AES128] | type[algorithms.AES256], str]] = {
    "aes256-cbc": (algorithms.AES256, "-aes256"), "aes128-cbc": (algorithms.AES128, "-aes128")}
_OPENSSL_TIMEOUT = 30.0


class SmimeError(Exception):
    """An S/MIME operation failed (a certificate we cannot use, openssl missing or refusing)."""


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def cert_addresses(cert: x509.Certificate) -> list[str]:
    """The e-mail addresses a certificate names: SAN rfc822Name, else the subject's emailAddress (lower case)."""
    out: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        out = [a.lower() for a in san.get_values_for_type(x509.RFC822Name)]
    except x509.ExtensionNotFound:
        pass
    if not out:
        out = [str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)]
    return out


def is_usable_for_encryption(cert: x509.Certificate) -> str:
    """"" when we can encrypt to `cert`, else why not (key type, key usage, EKU)."""
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return f"unsupported key type {type(key).__name__}"
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if isinstance(key, rsa.RSAPublicKey) and not ku.key_encipherment:
            return "key usage does not allow key encipherment"
        if isinstance(key, ec.EllipticCurvePublicKey) and not ku.key_agreement:
            return "key usage does not allow key agreement"
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.EMAIL_PROTECTION not in eku and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku:
            return "extended key usage does not include e-mail protection"
    except x509.ExtensionNotFound:
        pass
    return ""


def _run_openssl(args: list[str], data: bytes) -> bytes:
    try:
        res = subprocess.run([OPENSSL, *args], input=data, capture_output=True, timeout=_OPENSSL_TIMEOUT, check=False)
    except FileNotFoundError:
        raise SmimeError(f"{OPENSSL} not found (Debian package openssl)") from None
    except subprocess.TimeoutExpired:
        raise SmimeError(f"openssl {args[0]} {args[1]} took over {_OPENSSL_TIMEOUT:.0f} s") from None
    if res.returncode != 0:
        raise SmimeError(res.stderr.decode("utf-8", "replace").strip().splitlines()[-1:][0] if res.stderr
                         else f"openssl exited {res.returncode}")
    return res.stdout


def encrypt_der(data: bytes, certs: Sequence[x509.Certificate], *, cipher: str = "aes256-cbc") -> bytes:
    """CMS EnvelopedData of `data` (already canonical) for every certificate in `certs`, DER."""
    if not certs:
        raise SmimeError("no recipient certificate")
    algorithm, flag = _CIPHERS[cipher]
    if all(isinstance(c.public_key(), rsa.RSAPublicKey) for c in certs):
        builder = pkcs7.PKCS7EnvelopeBuilder().set_data(data).set_content_encryption_algorithm(algorithm)
        for cert in certs:
            builder = builder.add_recipient(cert)
        return builder.encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    # An EC certificate (ECDH key agreement, RFC 5753): cryptography cannot, openssl cms can.
    with tempfile.TemporaryDirectory(prefix="mb-smime-") as tmp:
        paths = []
        for i, cert in enumerate(certs):
            p = Path(tmp) / f"r{i}.pem"
            p.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            paths.append(str(p))
        return _run_openssl(["cms", "-encrypt", "-binary", flag, "-outform", "DER", *paths], data)


def encrypt_message(raw: bytes, certs: Sequence[x509.Certificate], *, cipher: str = "aes256-cbc",
                    hide_subject: bool = False) -> bytes:
    """The whole message `raw` encrypted for `certs`, as an S/MIME message (application/pkcs7-mime)."""
    return smime_message(raw, encrypt_der(inner_entity(raw), certs, cipher=cipher), hide_subject=hide_subject)


def decrypt_der(der: bytes, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> bytes:
    """The content of an EnvelopedData for `cert`/`key` (RSA only; tests and tools use openssl for EC)."""
    return pkcs7.pkcs7_decrypt_der(der, cert, key, [pkcs7.PKCS7Options.Binary])


def sign_message(raw: bytes, cert: x509.Certificate, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
                 chain: Sequence[x509.Certificate] = ()) -> bytes:
    """`raw` signed (multipart/signed, detached, SHA-256; RFC 8551 §3.5.3): the whole message is the signed
    entity (so From/To/Subject are covered, RFC 9788), the outer header keeps the routing fields."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(inner_entity(raw)).add_signer(cert, key, hashes.SHA256())
    for extra in chain:
        builder = builder.add_certificate(extra)
    signed = builder.sign(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.DetachedSignature,
                                                         pkcs7.PKCS7Options.Binary])
    # cryptography writes "MIME-Version" and the multipart/signed header itself: put our outer fields before them.
    return outer_fields(raw) + canonical(signed)


@dataclass(frozen=True)
class TrustBundle:
    """Trust anchors for inbound S/MIME signatures: the system bundle (optional) and the site's extra CAs."""

    extra_files: tuple[Path, ...] = ()
    system: bool = True

    def bundle_bytes(self) -> bytes:
        parts: list[bytes] = []
        if self.system:
            paths = ssl.get_default_verify_paths()
            for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
                if candidate and Path(candidate).is_file():
                    parts.append(Path(candidate).read_bytes())
                    break
        for f in self.extra_files:
            parts.append(f.read_bytes())
        return b"\n".join(parts)


@dataclass(frozen=True)
class SignerCertificate:
    cert: x509.Certificate
    addresses: tuple[str, ...]


def verify_signed(raw: bytes, trust: TrustBundle) -> SignerCertificate | None:
    """Verify the S/MIME signature of `raw` (multipart/signed or opaque signed-data) and the signer's chain
    to `trust` with the S/MIME signing purpose. Returns the signer's certificate, or None when the message
    is not signed, the signature does not verify or the chain does not build. Never raises."""
    with tempfile.TemporaryDirectory(prefix="mb-smime-") as tmp:
        bundle = Path(tmp) / "trust.pem"
        bundle.write_bytes(trust.bundle_bytes() or b"")
        signer = Path(tmp) / "signer.pem"
        try:
            _run_openssl(["cms", "-verify", "-inform", "SMIME", "-CAfile", str(bundle), "-no-CApath", "-no-CAstore",
                          "-purpose", "smimesign", "-signer", str(signer), "-out", os.devnull], canonical(raw))
        except SmimeError as exc:
            log.info("s/mime signature not accepted: %s", exc)
            return None
        try:
            cert = x509.load_pem_x509_certificates(signer.read_bytes())[0]
        except (OSError, ValueError, IndexError):
            return None
    return SignerCertificate(cert, tuple(cert_addresses(cert)))
