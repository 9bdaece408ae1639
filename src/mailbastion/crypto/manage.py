"""What `mailbastion keys` does, as functions over the key store: generate, import, export, revoke.

    generate(store, ca, "alice@example.org", kinds=("smime", "openpgp"), days=730)  -> [KeyRecord]
    import_key(store, "alice@example.org", data, private=None)                        -> KeyRecord
    export_key(store, record, private=False)                                          -> bytes (PEM / armored)

Every refusal is a KeyError-free `KeyProblem` with one line a user can act on. Auditing is the caller's
(the CLI records every change and every private export in the audit log).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mailbastion.crypto import openpgp
from mailbastion.crypto.keystore import KeyRecord, KeyStore
from mailbastion.crypto.smime import cert_addresses, fingerprint, is_usable_for_encryption
from mailbastion.crypto.smime_ca import SmimeAuthority

__all__ = ["KeyProblem", "export_key", "generate", "import_key"]


class KeyProblem(ValueError):
    """A key that cannot be generated, imported or exported, with the reason in one line."""


def generate(store: KeyStore, ca: SmimeAuthority, address: str, *, kinds: Sequence[str] = ("smime", "openpgp"),
             days: int = 730, pgp_days: int = 730, key_bits: int = 3072, name: str = "") -> list[KeyRecord]:
    out = []
    if "smime" in kinds:
        out.append(ca.issue_user(address, days=days, key_bits=key_bits, name=name))
    if "openpgp" in kinds:
        try:
            public, secret = openpgp.generate_key(address, name=name, days=pgp_days)
        except openpgp.OpenPgpError as exc:
            raise KeyProblem(str(exc)) from None
        info = openpgp.key_info(public)
        record = KeyRecord(address=address, kind="openpgp", fingerprint=info.fingerprint, public=public,
                           source="generated", created=time.time(),
                           expires=info.expires.timestamp() if info.expires else None)
        out.append(store.put(store.seal(record, secret)))
    return out


def _pem_certs(data: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        return []


_KEY_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----", re.DOTALL)


def _pem_key(data: bytes) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None:
    m = _KEY_BLOCK.search(data)
    if m is None:
        return None
    try:
        key = serialization.load_pem_private_key(m.group(0), None)
    except (ValueError, TypeError) as exc:
        raise KeyProblem(f"the private key does not load (decrypt an encrypted PEM key first): {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyProblem(f"unsupported private key type {type(key).__name__}")
    return key


def import_key(store: KeyStore, address: str, data: bytes, *, private: bytes | None = None,
               source: str = "imported") -> KeyRecord:
    """Import a PEM certificate (optionally with its private key, in `data` or `private`) or an armored
    OpenPGP key (public, or secret: then it is sealed). The key must name `address`."""
    address = address.lower()
    certs = _pem_certs(data)
    if certs:
        leaf = certs[0]
        names = cert_addresses(leaf)
        if address not in names:
            raise KeyProblem(f"the certificate names {', '.join(names) or 'no address'}, not {address}")
        why = is_usable_for_encryption(leaf)
        if why:
            raise KeyProblem(f"the certificate cannot be used for encryption: {why}")
        key = _pem_key(private if private is not None else data)
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if key is not None and key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
            raise KeyProblem("the private key does not belong to the certificate")
        record = KeyRecord(address=address, kind="smime", fingerprint=fingerprint(leaf),
                           public=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs), source=source,
                           created=time.time(), expires=leaf.not_valid_after_utc.timestamp())
        if key is not None:
            record = store.seal(record, key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
        return store.put(record)
    material = private if private is not None else data
    try:
        info = openpgp.key_info(material)
    except openpgp.OpenPgpError:
        raise KeyProblem("neither a PEM certificate nor an OpenPGP key") from None
    if address not in info.addresses:
        raise KeyProblem(f"the OpenPGP key names {', '.join(info.addresses) or 'no address'}, not {address}")
    if info.revoked:
        raise KeyProblem(f"the OpenPGP key {info.fingerprint} is revoked")
    public = openpgp.public_bytes(material)
    record = KeyRecord(address=address, kind="openpgp", fingerprint=info.fingerprint, public=public, source=source,
                       created=time.time(), expires=info.expires.timestamp() if info.expires else None)
    if info.has_secret:
        record = store.seal(record, material)
    return store.put(record)


def export_key(store: KeyStore, record: KeyRecord, *, private: bool = False) -> bytes:
    """The public material (PEM chain / armored certificate), or with `private` the private key too
    (PEM: certificate chain then PKCS #8 key; OpenPGP: the armored secret key)."""
    if not private:
        return record.public
    secret = store.private_key(record)
    if record.kind == "openpgp":
        return secret
    key = serialization.load_der_private_key(secret, None)
    return record.public + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
