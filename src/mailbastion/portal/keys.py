"""The portal's keys and tokens: one key file apart from the databases, random tokens, their hashes.

    keys = PortalKeys.load_or_create(settings.path("portal/keys"))   # 0600; made once, kept across restarts
    token = new_token()                     # goes to the browser (cookie, link) and nowhere else
    token_hash(token)                       # what the directory keeps
    keys.seal(b"JBSWY3DPEHPK3PXP", address)  # a TOTP secret encrypted for the directory (AES-256-GCM)

The key file holds 64 random bytes: the first 32 key HMACs (the sign-in form's CSRF token, bound to a
pre-session cookie), the last 32 encrypt TOTP secrets. Kept apart from the directory database so that a
copy of the database (a backup, a dump) does not give anyone's second factor.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mailbastion.private_files import write_private

__all__ = ["PortalKeys", "new_token", "token_hash"]

_KEY_BYTES = 64


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True, slots=True)
class PortalKeys:
    hmac_key: bytes
    seal_key: bytes

    @staticmethod
    def load_or_create(path: Path) -> PortalKeys:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = os.urandom(_KEY_BYTES)
            write_private(path, data)
            data = path.read_bytes()  # two processes racing: both use whichever file won the rename
        if len(data) != _KEY_BYTES:
            raise ValueError(f"{path} is not a portal key file ({len(data)} bytes, expected {_KEY_BYTES})")
        return PortalKeys(data[:32], data[32:])

    def mac(self, *parts: str) -> str:
        msg = "\x00".join(parts).encode("utf-8", "replace")
        return hmac.new(self.hmac_key, msg, hashlib.sha256).hexdigest()

    def seal(self, secret: bytes, address: str) -> bytes:
        """Encrypt `secret` bound to `address` (a sealed secret moved to another account does not open)."""
        nonce = os.urandom(12)
        return nonce + AESGCM(self.seal_key).encrypt(nonce, secret, address.encode())

    def open(self, sealed: bytes, address: str) -> bytes:
        """Raises cryptography's InvalidTag when `sealed` was not made by `seal` for `address`."""
        return AESGCM(self.seal_key).decrypt(sealed[:12], sealed[12:], address.encode())
