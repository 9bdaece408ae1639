"""The Sender Rewriting Scheme (SRS) for mail we forward outside our domains.

    srs = Srs(key, max_age_days=21)
    srs.forward("alice@sender.test", "example.org")   -> "SRS0=HHHH=TT=sender.test=alice@example.org"
    srs.reverse("SRS0=HHHH=TT=sender.test=alice@example.org")   -> "alice@sender.test"
    srs.reverse("SRS0=forged=...@example.org")                  raises SrsInvalid (refused 5.1.1 at RCPT)

Why: a forwarded copy leaves our gateway with its original envelope sender, whose domain's SPF does not
list us, so the next hop would refuse it; and its bounces would have nowhere honest to go. SRS rewrites the
envelope sender into an address of ours that carries the original one, signed and dated, so that only
bounces of mail we really forwarded, and recently, come back through us (no open backscatter relay).

The format is Shevek's "Sender Rewriting Scheme" paper as libsrs2 and Mail::SRS implement it (the "guarded"
scheme, interoperable with postsrsd):

    SRS0=<hash>=<tt>=<host>=<local>@<our domain>        the first forwarder (us)
    SRS1=<hash>=<first forwarder>==<hash0>=<tt>=<host>=<local>@<our domain>   an SRS0 address of
                                                         another forwarder, forwarded again by us
- <tt>: the day (days since the epoch, mod 1024) in two base32 characters; older than `max_age_days`
  is refused (a bounce comes within days; a replayed address later does not);
- <hash>: HMAC-SHA1 with our secret key over the lower-cased fields, base64, the first `hash_length`
  characters, compared without regard to case (some MTAs lower-case local parts).
Addresses of our own domains and the null sender are never rewritten (the caller decides: `should_rewrite`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings

__all__ = ["KEY_BYTES", "Srs", "SrsInvalid", "is_srs", "load_or_create_key", "provision_key", "srs_from_settings"]

KEY_BYTES = 32
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_PERIOD = len(_B32) ** 2  # 1024 days: the timestamp wraps around
_SRS0 = re.compile(r"(?i)^SRS0[=+-]([^=]+)=([^=]{2})=([^=]+)=(.+)$")
_SRS1 = re.compile(r"(?i)^SRS1[=+-]([^=]+)=([^=]+)=[=+-](.+)$")


class SrsInvalid(ValueError):
    """An SRS address that we did not make, or made too long ago (refused: 550 5.1.1)."""


def is_srs(local: str) -> bool:
    """Does the local part look like an SRS address (SRS0 or SRS1)? Says nothing about its validity."""
    head = local[:5].upper()
    return len(head) == 5 and head[:4] in ("SRS0", "SRS1") and head[4] in "=+-"


def load_or_create_key(path: Path) -> bytes:
    """The secret in `path` (created 0600 with KEY_BYTES random bytes, base64, when missing). Raises OSError
    when it cannot be read or made, ValueError when it holds fewer than 16 bytes."""
    try:
        text = path.read_bytes().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = base64.b64encode(secrets.token_bytes(KEY_BYTES))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, text + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never replaces a key another process made meanwhile: that one wins
        except FileExistsError:
            text = path.read_bytes().strip()
        finally:
            os.unlink(tmp)
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        key = text
    if len(key) < 16:
        raise ValueError(f"{path}: the SRS key is too short (at least 16 bytes)")
    return key


def srs_from_settings(settings: Settings) -> Srs | None:
    """The site's Srs for `[srs]` (None when off). Raises OSError or ValueError for a key file that cannot
    be read or made."""
    s = settings.srs
    if not s.enabled:
        return None
    return Srs(load_or_create_key(settings.path(s.key_file)), max_age_days=s.max_age_days)


def provision_key(settings: Settings) -> Path | None:
    """`mailbastion init`: make the SRS key of `settings` (owned like the folder it is in, for the service
    user when run as root). The path, or None when SRS is off."""
    if not settings.srs.enabled:
        return None
    path = settings.path(settings.srs.key_file)
    load_or_create_key(path)
    if os.geteuid() == 0:
        folder = path.parent.stat()
        os.chown(path, folder.st_uid, folder.st_gid)
    return path


class Srs:
    """Makes and checks SRS addresses with one secret. Pure and thread-safe."""

    def __init__(self, key: bytes, *, max_age_days: int = 21, hash_length: int = 4,
                 clock: Callable[[], float] = time.time) -> None:
        if len(key) < 16:
            raise ValueError("the SRS key must be at least 16 bytes")
        self.key = key
        self.max_age_days = max_age_days
        self.hash_length = hash_length
        self.clock = clock

    # -- parts ------------------------------------------------------------------------------------

    def _hash(self, *fields: str) -> str:
        mac = hmac.new(self.key, b"".join(f.lower().encode("utf-8") for f in fields), hashlib.sha1)
        return base64.b64encode(mac.digest()).decode("ascii")[: self.hash_length]

    def _check_hash(self, given: str, *fields: str) -> None:
        if len(given) != self.hash_length or not hmac.compare_digest(given.lower(), self._hash(*fields).lower()):
            raise SrsInvalid("SRS hash does not match: not an address we made")

    def _today(self) -> int:
        return int(self.clock() // 86400) % _PERIOD

    def timestamp(self) -> str:
        day = self._today()
        return _B32[day >> 5] + _B32[day & 31]

    def _check_timestamp(self, stamp: str) -> None:
        try:
            day = (_B32.index(stamp[0].upper()) << 5) | _B32.index(stamp[1].upper())
        except ValueError:
            raise SrsInvalid("SRS timestamp is not base32") from None
        age = (self._today() - day) % _PERIOD
        if age > self.max_age_days:
            raise SrsInvalid(f"SRS address expired ({age} days old, at most {self.max_age_days})")

    # -- the two directions -------------------------------------------------------------------------

    def forward(self, sender: str, our_domain: str) -> str:
        """The envelope sender for a copy of mail from `sender` that we forward. `sender` must be a full
        address (the caller keeps the null sender as it is)."""
        local, at, host = sender.rpartition("@")
        if not at or not local or not host:
            raise ValueError(f"not an address: {sender!r}")
        if is_srs(local):
            return self._forward_srs(local, host, our_domain)
        stamp = self.timestamp()
        return f"SRS0={self._hash(stamp, host, local)}={stamp}={host}={local}@{our_domain}"

    def _forward_srs(self, local: str, host: str, our_domain: str) -> str:
        """An SRS address of another forwarder: SRS1 naming that forwarder (so it, not we, checks the
        original hash and age); an SRS1 keeps its first forwarder."""
        if local[3] == "1":
            match = _SRS1.match(local)
            if match is None:
                raise ValueError(f"malformed SRS1 address: {local}@{host}")
            first, rest = match.group(2), match.group(3)
        else:
            first, rest = host, local[5:]
        return f"SRS1={self._hash(first, rest)}={first}=={rest}@{our_domain}"

    def check(self, address: str) -> bool | None:
        """None: not an SRS address; True: one of ours, valid now; False: forged, damaged or expired."""
        local = address.rpartition("@")[0]
        if not is_srs(local):
            return None
        try:
            self.reverse(address)
        except SrsInvalid:
            return False
        return True

    def reverse(self, address: str) -> str:
        """The address an SRS address of ours stands for: the original sender for SRS0, the first
        forwarder's SRS0 address for SRS1. Raises SrsInvalid for a forged, damaged or expired one."""
        local = address.rpartition("@")[0] if "@" in address else address
        match = _SRS0.match(local)
        if match is not None:
            given, stamp, host, orig = match.groups()
            self._check_hash(given, stamp, host, orig)
            self._check_timestamp(stamp)
            return f"{orig}@{host}"
        match = _SRS1.match(local)
        if match is not None:
            given, first, rest = match.groups()
            self._check_hash(given, first, rest)
            return f"SRS0={rest}@{first}"
        raise SrsInvalid("not an SRS address")
