"""Secure pick-up: a confidential message for an outsider without a key, kept encrypted until the recipient
opens it with the link's token and a one-time code the sender passes on by another channel.

    store = PickupStore(folder, lifetime_days=14, max_attempts=5)
    ticket = store.deposit(message, recipient="bob@partner.example", sender="alice@example.org")
    ticket.token, ticket.code, ticket.expires          # link for the recipient, code for the sender
    store.open(token, code)                            # the message bytes, once; then the entry is gone

On disk (`<pickup_dir>/<id>.json`, 0600): the message sealed with AES-256-GCM under a key derived from the
token AND the code (scrypt, RFC 7914), so neither the files alone, nor the files and a leaked link, nor
the files and the code open it. The entry's name is a hash of the token (the token itself is never
stored). A wrong code counts an attempt; after `max_attempts` the entry is destroyed. A good code opens
it once (the entry is removed as it is returned). Expired entries are refused and `purge()` removes them.

The portal page that asks for the code comes later; `mailbastion pickup show TOKEN --code CODE` proves it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from mailbastion.private_files import private_dir, write_private

__all__ = ["PickupError", "PickupExpired", "PickupNotFound", "PickupStore", "PickupTicket", "WrongCode"]

_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out over the phone
_CODE_LENGTH = 10  # 50 bits, and only `max_attempts` tries
_SCRYPT_N = 2**15


class PickupError(Exception):
    """A pick-up that cannot be opened."""


class PickupNotFound(PickupError):
    """No such token (never made, already opened, destroyed after too many wrong codes, or purged)."""


class PickupExpired(PickupError):
    pass


class WrongCode(PickupError):
    def __init__(self, remaining: int) -> None:
        super().__init__(f"wrong code ({remaining} attempt{'s' if remaining != 1 else ''} left)" if remaining
                         else "wrong code: too many attempts, the message was destroyed")
        self.remaining = remaining


@dataclass(frozen=True, slots=True)
class PickupTicket:
    token: str  # goes in the recipient's link
    code: str  # goes to the sender, who passes it on by another channel
    recipient: str
    expires: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _new_token() -> str:
    """32 random bytes, base64url; drawn again while it would start with '-', which a command line
    (`pickup show TOKEN`) reads as an option (1 draw in 16; the token keeps over 255 bits)."""
    while (token := _b64(secrets.token_bytes(32))).startswith("-"):
        pass
    return token


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def normalize_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


class PickupStore:
    def __init__(self, folder: Path, *, lifetime_days: int = 14, max_attempts: int = 5,
                 clock: Callable[[], float] = time.time) -> None:
        self.folder = folder
        self.lifetime = lifetime_days * 86400
        self.max_attempts = max_attempts
        self.clock = clock
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: object) -> PickupStore:
        e = settings.encryption  # type: ignore[attr-defined]
        return cls(settings.path(e.pickup_dir), lifetime_days=e.pickup_days,  # type: ignore[attr-defined]
                   max_attempts=e.pickup_max_attempts)

    @staticmethod
    def _id(token: str) -> str:
        return hashlib.sha256(b"mailbastion-pickup|" + token.encode()).hexdigest()[:32]

    def _path(self, token: str) -> Path:
        return self.folder / f"{self._id(token)}.json"

    @staticmethod
    def _key(token: str, code: str, salt: bytes) -> bytes:
        return Scrypt(salt=salt + _unb64(token), length=32, n=_SCRYPT_N, r=8, p=1).derive(normalize_code(code).encode())

    def deposit(self, message: bytes, *, recipient: str, sender: str) -> PickupTicket:
        token = _new_token()
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
        code = f"{code[:5]}-{code[5:]}"
        salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
        now = self.clock()
        expires = now + self.lifetime
        aad = f"{recipient}|{int(expires)}".encode()
        sealed = AESGCM(self._key(token, code, salt)).encrypt(nonce, message, aad)
        entry = {"recipient": recipient, "sender": sender, "created": now, "expires": int(expires), "attempts": 0,
                 "salt": _b64(salt), "nonce": _b64(nonce), "sealed": base64.b64encode(sealed).decode()}
        private_dir(self.folder)
        write_private(self._path(token), json.dumps(entry).encode())
        return PickupTicket(token, code, recipient, expires)

    def _read(self, path: Path) -> dict[str, object]:
        try:
            return json.loads(path.read_bytes())  # type: ignore[no-any-return]
        except FileNotFoundError:
            raise PickupNotFound("no such pick-up (already opened, destroyed or expired)") from None
        except ValueError:
            raise PickupNotFound("damaged pick-up entry") from None

    def open(self, token: str, code: str) -> bytes:
        """The message, once. Raises PickupNotFound, PickupExpired or WrongCode(remaining)."""
        try:
            _unb64(token)
        except ValueError:
            raise PickupNotFound("not a pick-up token") from None
        path = self._path(token)
        with self._lock:
            entry = self._read(path)
            if float(entry["expires"]) <= self.clock():  # type: ignore[arg-type]
                path.unlink(missing_ok=True)
                raise PickupExpired("the pick-up link has expired; ask the sender to send the message again")
            aad = f"{entry['recipient']}|{entry['expires']}".encode()
            try:
                key = self._key(token, code, _unb64(str(entry["salt"])))
                message = AESGCM(key).decrypt(_unb64(str(entry["nonce"])), base64.b64decode(str(entry["sealed"])), aad)
            except (InvalidTag, ValueError):
                attempts = int(entry["attempts"]) + 1  # type: ignore[call-overload]
                remaining = max(self.max_attempts - attempts, 0)
                if remaining:
                    write_private(path, json.dumps({**entry, "attempts": attempts}).encode())
                else:
                    path.unlink(missing_ok=True)
                raise WrongCode(remaining) from None
            path.unlink(missing_ok=True)  # one-time: opened once
        return message

    def purge(self) -> int:
        """Remove expired entries; returns how many."""
        removed = 0
        now = self.clock()
        if not self.folder.is_dir():
            return 0
        for path in self.folder.glob("*.json"):
            try:
                if float(json.loads(path.read_bytes())["expires"]) <= now:
                    path.unlink(missing_ok=True)
                    removed += 1
            except (OSError, ValueError, KeyError):
                continue
        return removed

    def count(self) -> int:
        return len(list(self.folder.glob("*.json"))) if self.folder.is_dir() else 0


