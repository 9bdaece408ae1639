"""OpenPGP (RFC 4880 / RFC 9580, PGP/MIME RFC 3156): keys of users and outsiders, encryption, decryption.

Library: pysequoia (Sequoia-PGP's Rust implementation, in process: no agent, no keyring, no subprocess
per message; it chooses the packet versions each recipient's certificate announces). Users' keys are
GENERATED with Debian's gpg in a throwaway private GNUPGHOME: Sequoia announces SEIPDv2 (RFC 9580) in the
keys it makes, which GnuPG (2.2 and 2.4, the engine of most mail clients' OpenPGP) cannot read, so mail
encrypted to such a key would be unreadable to its owner. A gpg-made key (ed25519 + cv25519, features
"MDC" only) gets SEIPDv1 messages every OpenPGP client reads.

    cert = load_cert(armored_or_binary)              # raises OpenPgpError
    message = encrypt_message(raw, [cert, ...])       # multipart/encrypted (RFC 3156 §4)
    public, secret = generate_key("alice@example.org", days=730)
    plain = decrypt(armored_message, secret)          # tests and tools
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailbastion.crypto.mime_wrap import inner_entity, pgp_mime_message

__all__ = ["GPG", "OpenPgpError", "PgpKeyInfo", "decrypt", "encrypt_armored", "encrypt_message", "generate_key",
           "key_info", "load_cert", "revoked_public"]

GPG = os.environ.get("MAILBASTION_GPG", "gpg")
_ADDRESS_IN_UID = re.compile(r"<([^<>\s]+@[^<>\s]+)>\s*$")
_GPG_TIMEOUT = 60.0


def _ps() -> Any:
    import pysequoia

    return pysequoia


class OpenPgpError(Exception):
    """A key that does not parse or cannot be used; gpg missing or refusing."""


@dataclass(frozen=True, slots=True)
class PgpKeyInfo:
    fingerprint: str
    user_ids: tuple[str, ...]
    addresses: tuple[str, ...]
    expires: dt.datetime | None
    revoked: bool
    has_secret: bool


def load_cert(data: bytes) -> Any:
    """A pysequoia Cert from armored or binary data (the first certificate in it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return _ps().Cert.from_bytes(data)
    except Exception as exc:  # noqa: BLE001 - pysequoia raises plain exceptions with Sequoia's message
        raise OpenPgpError(f"not an OpenPGP certificate: {exc}") from None


def _load_secret(data: bytes) -> Any:
    try:
        return _ps().Tsk.from_bytes(data)
    except Exception as exc:  # noqa: BLE001
        raise OpenPgpError(f"not an OpenPGP secret key: {exc}") from None


def key_info(data: bytes) -> PgpKeyInfo:
    cert = load_cert(data)
    uids = tuple(str(u) for u in cert.user_ids)
    addresses = tuple(dict.fromkeys(m.group(1).lower() for u in uids if (m := _ADDRESS_IN_UID.search(u))))
    expires = cert.expiration
    return PgpKeyInfo(str(cert.fingerprint).lower(), uids, addresses, expires, bool(cert.is_revoked),
                      _has_secret(data))


def _has_secret(data: bytes) -> bool:
    """Whether the certificate in `data` (one: `load_cert` refuses a keyring) carries secret key material,
    a Secret-Key or Secret-Subkey packet. Read from the packets, because pysequoia deprecates
    `Cert.has_secret_keys` (a Cert is to be public; `Tsk.from_bytes` reads a public certificate too, so it
    cannot tell)."""
    ps = _ps()
    secret = (ps.packet.Tag.SecretKey, ps.packet.Tag.SecretSubkey)
    try:
        return any(packet.tag in secret for packet in ps.packet.PacketPile.from_bytes(data))
    except Exception as exc:  # noqa: BLE001 - as load_cert: Sequoia's message in a plain exception
        raise OpenPgpError(f"not an OpenPGP certificate: {exc}") from None


def public_bytes(data: bytes) -> bytes:
    """The public part, armored (drops any secret material)."""
    return str(load_cert(data)).encode() if not key_info(data).has_secret else \
        str(_load_secret(data).extract_certificate()).encode()


def encrypt_armored(data: bytes, certs: Sequence[Any]) -> bytes:
    if not certs:
        raise OpenPgpError("no recipient key")
    try:
        out = _ps().encrypt(data, recipients=list(certs), armor=True)
    except Exception as exc:  # noqa: BLE001 - e.g. no valid encryption-capable subkey
        raise OpenPgpError(f"cannot encrypt: {exc}") from None
    return out if isinstance(out, bytes) else str(out).encode()


def encrypt_message(raw: bytes, certs: Sequence[Any], *, hide_subject: bool = False) -> bytes:
    """The whole message `raw` encrypted for `certs` (pysequoia Certs), as PGP/MIME."""
    return pgp_mime_message(raw, encrypt_armored(inner_entity(raw), certs), hide_subject=hide_subject)


def decrypt(message: bytes, secret: bytes) -> bytes:
    try:
        return bytes(_ps().decrypt(message, decryptor=_load_secret(secret).decryptor()).bytes)
    except OpenPgpError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise OpenPgpError(f"cannot decrypt: {exc}") from None


def revoked_public(public: bytes, secret: bytes) -> bytes:
    """The certificate with a key revocation signature made by its own key (armored)."""
    ps = _ps()
    cert = load_cert(public)
    sig = cert.revoke(_load_secret(secret).certifier())
    return str(ps.Cert.from_bytes(bytes(cert) + bytes(sig))).encode()


def _gpg(home: str, *args: str, stdin: bytes = b"") -> bytes:
    env = {"GNUPGHOME": home, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    try:
        res = subprocess.run([GPG, "--batch", "--no-tty", "--quiet", *args], input=stdin, capture_output=True,
                             env=env, timeout=_GPG_TIMEOUT, check=False)
    except FileNotFoundError:
        raise OpenPgpError(f"{GPG} not found (Debian package gpg)") from None
    except subprocess.TimeoutExpired:
        raise OpenPgpError(f"gpg {args[0]} took over {_GPG_TIMEOUT:.0f} s") from None
    if res.returncode != 0:
        raise OpenPgpError(f"gpg {args[0]}: {res.stderr.decode('utf-8', 'replace').strip()}")
    return res.stdout


def generate_key(address: str, *, name: str = "", days: int = 730) -> tuple[bytes, bytes]:
    """A new ed25519/cv25519 key for `address` (user ID "name <address>"), made by gpg in a private
    GNUPGHOME that is removed afterwards. Returns (public armored, secret armored, unprotected: the
    caller seals it)."""
    uid = f"{name} <{address}>" if name else f"<{address}>"
    home = tempfile.mkdtemp(prefix="mbg-")  # short: gpg-agent's socket path must fit in sun_path
    try:
        os.chmod(home, 0o700)
        expire = f"{days}d" if days else "never"
        nopass = ("--pinentry-mode", "loopback", "--passphrase", "")
        _gpg(home, *nopass, "--quick-gen-key", uid, "future-default", "default", expire)
        public = _gpg(home, "--armor", "--export", address)
        secret = _gpg(home, *nopass, "--armor", "--export-secret-keys", address)
    finally:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": home},
                           capture_output=True, timeout=10, check=False)
        shutil.rmtree(home, ignore_errors=True)
    if not public or not secret:
        raise OpenPgpError(f"gpg made no key for {address}")
    return public, secret
