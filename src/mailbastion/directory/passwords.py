"""Account passwords: argon2id hashes (argon2-cffi), generated passwords, and a minimum for chosen ones.

A plain password is never stored or logged; only `hash_password` output reaches the database. Verifying an
unknown account still spends one argon2 verification, so timing does not reveal which accounts exist.

Verification goes through libsodium (PyNaCl, already ours for ed25519 DKIM) when it can: the same argon2id
strings, verified in about half the time of argon2-cffi's portable build (bench/imap_bench.py measured
208 ms against 423 ms for the default 64 MiB, t=3, p=4 profile), which halves the CPU an attacker can make
us spend per guess. argon2-cffi still hashes, and verifies anything libsodium cannot read.
"""

from __future__ import annotations

import base64
import secrets

from argon2 import PasswordHasher
from argon2 import low_level as argon2_low_level
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

try:
    from nacl import exceptions as _nacl_errors
    from nacl.pwhash import argon2id as _sodium
except ImportError:  # pragma: no cover - PyNaCl is a dependency; argon2-cffi verifies alone without it
    _sodium = None  # type: ignore[assignment]

from mailbastion.directory.errors import PasswordTooWeak

MIN_LENGTH = 12
GENERATED_BYTES = 18  # 24 URL-safe characters, 144 bits

_hasher = PasswordHasher()  # argon2id with the library's current RFC 9106 low-memory profile


def _dummy_hash() -> str:
    """What an unknown account's password is checked against: an argon2id string with the hasher's own
    parameters (so checking it costs what checking a real hash costs), a random salt and a random digest
    that no password yields. Written out, not hashed: importing this module (every `mailbastion` command,
    every server start) does not spend an argon2 hash (0.3-0.6 s of CPU) on a value that needs none."""
    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii").rstrip("=")

    return (f"$argon2id$v={argon2_low_level.ARGON2_VERSION}$m={_hasher.memory_cost},t={_hasher.time_cost},"
            f"p={_hasher.parallelism}${b64(secrets.token_bytes(_hasher.salt_len))}"
            f"${b64(secrets.token_bytes(_hasher.hash_len))}")


_DUMMY = _dummy_hash()


def generate_password() -> str:
    return secrets.token_urlsafe(GENERATED_BYTES)


def check_strength(password: str) -> None:
    """Raises PasswordTooWeak for a password an administrator or user chose that is too short or blank."""
    if len(password) < MIN_LENGTH or not password.strip():
        raise PasswordTooWeak(f"password must be at least {MIN_LENGTH} characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches. A missing hash (no password set) never matches."""
    digest = stored_hash or _DUMMY
    if _sodium is not None and digest.startswith("$argon2id$"):
        try:
            return _sodium.verify(digest.encode("ascii"), password.encode("utf-8")) and stored_hash is not None
        except _nacl_errors.InvalidkeyError:  # a wrong password (libsodium says the same of a malformed hash)
            return False
        except (_nacl_errors.CryptoError, ValueError, TypeError, UnicodeError):
            pass  # parameters libsodium does not take: argon2-cffi decides
    try:
        return _hasher.verify(digest, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


__all__ = ["MIN_LENGTH", "check_strength", "generate_password", "hash_password", "needs_rehash", "verify"]
