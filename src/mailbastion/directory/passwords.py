"""Account passwords: argon2id hashes (argon2-cffi), generated passwords, and a minimum for chosen ones.

A plain password is never stored or logged; only `hash_password` output reaches the database. Verifying an
unknown account still spends one argon2 verification, so timing does not reveal which accounts exist.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from mailbastion.directory.errors import PasswordTooWeak

MIN_LENGTH = 12
GENERATED_BYTES = 18  # 24 URL-safe characters, 144 bits

_hasher = PasswordHasher()  # argon2id with the library's current RFC 9106 low-memory profile
_DUMMY = _hasher.hash(secrets.token_urlsafe(GENERATED_BYTES))


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
    try:
        return _hasher.verify(stored_hash or _DUMMY, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


__all__ = ["MIN_LENGTH", "check_strength", "generate_password", "hash_password", "needs_rehash", "verify"]
