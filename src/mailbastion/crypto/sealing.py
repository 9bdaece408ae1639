"""The deployment key: private keys (users' S/MIME and OpenPGP keys, our S/MIME CA's) are sealed with it
before they touch the disk.

    key = DeploymentKey.load_or_create(path)      # 32 random bytes in a 0600 file, made on first use
    blob = key.seal(secret, context=b"alice@example.org|smime|<fingerprint>")
    key.open(blob, context=...)                   # raises SealBroken for a wrong key, context or a bit flip

AES-256-GCM with a random 96-bit nonce; the context is the associated data, so a sealed key copied to
another address's record does not open there. Keep the deployment key apart from the key store's backups
(another disk, a secrets manager mounted at `encryption.deployment_key`): a copy of the store alone then
reveals no private key.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mailbastion.private_files import private_dir

__all__ = ["DeploymentKey", "SealBroken"]

_MAGIC = b"MBS1"
_KEY_BYTES = 32


class SealBroken(ValueError):
    """A sealed blob that does not open: another deployment key, another context, or damaged."""


class DeploymentKey:
    def __init__(self, key: bytes, path: Path | None = None) -> None:
        if len(key) != _KEY_BYTES:
            raise ValueError("a deployment key is 32 bytes")
        self._aead = AESGCM(key)
        self.path = path

    @classmethod
    def load(cls, path: Path) -> DeploymentKey:
        """Read an existing key; raises FileNotFoundError or ValueError (wrong size) with the path."""
        data = path.read_bytes()
        if len(data) != _KEY_BYTES:
            raise ValueError(f"{path}: not a deployment key ({len(data)} bytes, expected {_KEY_BYTES})")
        return cls(data, path)

    @classmethod
    def load_or_create(cls, path: Path) -> DeploymentKey:
        """The key in `path`, made (0600, folder 0700) when there is none yet."""
        if not path.exists():
            private_dir(path.parent)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return cls.load(path)  # another process made it first
            try:
                os.write(fd, secrets.token_bytes(_KEY_BYTES))
                os.fsync(fd)
            finally:
                os.close(fd)
        return cls.load(path)

    def seal(self, data: bytes, *, context: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return _MAGIC + nonce + self._aead.encrypt(nonce, data, context)

    def open(self, blob: bytes, *, context: bytes) -> bytes:
        if not blob.startswith(_MAGIC) or len(blob) < len(_MAGIC) + 12 + 16:
            raise SealBroken("not a sealed key")
        nonce, body = blob[4:16], blob[16:]
        try:
            return self._aead.decrypt(nonce, body, context)
        except InvalidTag:
            raise SealBroken("the sealed key does not open with this deployment key") from None

