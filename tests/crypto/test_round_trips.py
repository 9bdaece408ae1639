"""What we write, read back by independent tools: `openssl cms` for S/MIME, `gpg` for OpenPGP."""

from __future__ import annotations

from pathlib import Path

import pytest
from crypto_testkit import Identity, SmimeTestCa, gpg_decrypt, message, openssl_decrypt, openssl_sign, openssl_verify
from cryptography.hazmat.primitives import serialization

from mailbastion.core.header_block import HeaderBlock
from mailbastion.crypto import openpgp, smime
from mailbastion.crypto.mime_wrap import OBSCURED_SUBJECT, canonical


@pytest.mark.parametrize("cipher", ["aes256-cbc", "aes128-cbc"])
def test_smime_message_decrypts_with_openssl_to_the_original_bytes(bob: Identity, cipher: str) -> None:
    raw = message(body="Pay 4111 1111 1111 1111 by Friday.\r\n")
    out = smime.encrypt_message(raw, [bob.cert], cipher=cipher)
    assert b"Pay 4111" not in out and b"Friday" not in out
    header = HeaderBlock.parse(out)
    assert header.first("subject") == "Quarterly plan"  # kept outside unless hide_subject
    assert "application/pkcs7-mime" in (header.first("content-type") or "")
    assert "enveloped-data" in (header.first("content-type") or "")
    assert header.count("content-type") == 1  # the original's Content-Type went inside
    assert openssl_decrypt(out, bob.cert_path, bob.key_path) == canonical(raw)


def test_smime_to_an_ec_certificate_goes_through_openssl_and_decrypts(carol_ec: Identity, bob: Identity) -> None:
    raw = message(to="carol@partner.example, bob@partner.example")
    out = smime.encrypt_message(raw, [carol_ec.cert, bob.cert])
    assert openssl_decrypt(out, carol_ec.cert_path, carol_ec.key_path) == canonical(raw)
    assert openssl_decrypt(out, bob.cert_path, bob.key_path) == canonical(raw)


def test_hidden_subject_is_obscured_outside_and_kept_inside(bob: Identity) -> None:
    raw = message(subject="Merger with Initech")
    out = smime.encrypt_message(raw, [bob.cert], hide_subject=True)
    assert b"Initech" not in out
    assert HeaderBlock.parse(out).first("subject") == OBSCURED_SUBJECT
    assert b"Subject: Merger with Initech" in openssl_decrypt(out, bob.cert_path, bob.key_path)


def test_signed_message_verifies_with_openssl(bob: Identity, smime_ca: SmimeTestCa) -> None:
    key = serialization.load_pem_private_key(bob.key_path.read_bytes(), None)
    raw = message(sender="bob@partner.example", to="alice@example.org")
    signed = smime.sign_message(raw, bob.cert, key, [smime_ca.cert])  # type: ignore[arg-type]
    assert HeaderBlock.parse(signed).first("from") == "Alice <bob@partner.example>"
    assert canonical(openssl_verify(signed, smime_ca.cert_path)) == canonical(raw)
    signer = smime.verify_signed(signed, smime.TrustBundle((smime_ca.cert_path,), system=False))
    assert signer is not None and signer.addresses == ("bob@partner.example",)
    tampered = signed.replace(b"secret plan", b"secret plot")
    assert smime.verify_signed(tampered, smime.TrustBundle((smime_ca.cert_path,), system=False)) is None


def test_signature_from_an_untrusted_ca_is_not_accepted(tmp_path: Path) -> None:
    rogue = SmimeTestCa.create(tmp_path / "rogue", "Rogue")
    mallory = rogue.issue(tmp_path / "m", "bob@partner.example")
    signed = openssl_sign(message(sender="bob@partner.example"), mallory)
    trusted = SmimeTestCa.create(tmp_path / "real", "Real")
    assert smime.verify_signed(signed, smime.TrustBundle((trusted.cert_path,), system=False)) is None
    assert smime.verify_signed(signed, smime.TrustBundle((rogue.cert_path,), system=False)) is not None


@pytest.fixture(scope="module")
def pgp_key() -> tuple[bytes, bytes]:
    return openpgp.generate_key("dave@partner.example", name="Dave", days=30)


def test_openpgp_message_decrypts_with_gpg_to_the_original_bytes(pgp_key: tuple[bytes, bytes]) -> None:
    public, secret = pgp_key
    raw = message(to="dave@partner.example", body="Ünïcode and the secret plan.\r\n")
    out = openpgp.encrypt_message(raw, [openpgp.load_cert(public)])
    assert b"secret plan" not in out
    ctype = HeaderBlock.parse(out).first("content-type") or ""
    assert ctype.startswith("multipart/encrypted") and 'protocol="application/pgp-encrypted"' in ctype
    assert gpg_decrypt(out, secret) == canonical(raw)
    assert openpgp.decrypt(out[out.index(b"-----BEGIN PGP MESSAGE"):], secret) == canonical(raw)


def test_generated_openpgp_key_is_readable_by_gpg_clients(pgp_key: tuple[bytes, bytes]) -> None:
    public, secret = pgp_key
    info = openpgp.key_info(public)
    assert info.addresses == ("dave@partner.example",) and not info.has_secret and not info.revoked
    assert openpgp.key_info(secret).has_secret
    assert openpgp.key_info(openpgp.revoked_public(public, secret)).revoked


def test_not_a_key_is_a_clear_error() -> None:
    with pytest.raises(openpgp.OpenPgpError, match="not an OpenPGP certificate"):
        openpgp.load_cert(b"hello")
    with pytest.raises(smime.SmimeError, match="no recipient"):
        smime.encrypt_der(b"x", [])


def test_a_secret_key_is_told_from_its_certificate_without_deprecated_calls(tmp_path: Path) -> None:
    """`has_secret` is read from the certificate's packets, not from pysequoia's deprecated
    `Cert.has_secret_keys`: binary or armored, secret or public, and never with a deprecation warning."""
    import warnings

    import pysequoia

    mine = pysequoia.Tsk.generate("erin@example.net")
    secret, public = str(mine).encode(), str(mine.extract_certificate()).encode()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert openpgp.key_info(secret).has_secret
        assert not openpgp.key_info(public).has_secret
        assert openpgp.key_info(_dearmor(secret)).has_secret
        assert not openpgp.key_info(_dearmor(public)).has_secret


def _dearmor(armored: bytes) -> bytes:
    """The binary packets of an ASCII-armored block (RFC 4880 §6: base64 between the header's blank line and
    the checksum line)."""
    import base64

    lines = armored.decode().splitlines()
    body = lines[lines.index("") + 1:]
    return base64.b64decode("".join(line for line in body if not line.startswith(("=", "-----"))))
