"""App passwords: one generated password per device (mail client) of an account, so that phones and mail
programs never hold the account's main password, and one lost device is revoked alone.

    created = directory.add_app_password("alice@example.org", "phone", by="cli:root")
    created.secret                  # "k7qm-x2vr-..." shown once; only its argon2id hash is stored
    directory.list_app_passwords("alice@example.org")      # [AppPasswordInfo(name="phone", ...)]
    directory.revoke_app_password("alice@example.org", "phone", by="cli:root")
    directory.verify_login("alice@example.org", "k7qm x2vr ...")   # LoginResult (directory/login.py)

A secret is 24 characters from an alphabet without look-alikes (about 118 bits), shown in groups of four;
dashes, spaces and capitals are ignored when it is typed back. The first four characters are stored in
clear as `prefix` (20 of the 118 bits: what remains is still far beyond guessing) so that a login checks one
argon2 hash, not one per device. App passwords work for every mail protocol of the account (IMAP,
submission), only while the account is active; creating and revoking them are audited changes. IMAP and
submission share this store (issue 10 reuses it).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbastion.directory import passwords
from mailbastion.directory.errors import AccountDisabled, DirectoryError
from mailbastion.directory.models import AccountState, AppPassword

if TYPE_CHECKING:
    from mailbastion.directory.store import Directory

ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no i, l, o, 0, 1: nothing to misread from a screen
LENGTH = 24  # 24 * log2(31) ≈ 118.9 bits
PREFIX_LENGTH = 4
MAX_PER_ACCOUNT = 50
_NAME = re.compile(r"^[\w][\w .@()+'-]{0,63}$")


class AppPasswordUnknown(DirectoryError):
    """No app password of that name for that account."""


class AppPasswordExists(DirectoryError):
    """The account already has an app password of that name."""


@dataclass(frozen=True, slots=True)
class AppPasswordInfo:
    """What may be shown about an app password: never the secret nor its hash."""

    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class NewAppPassword:
    info: AppPasswordInfo
    secret: str  # the display form: show it once, it is never stored


def generate() -> str:
    """A new secret, normalized (no separators)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def display(secret: str) -> str:
    """`abcd-efgh-...`: groups of four, easier to type into a phone."""
    return "-".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def normalize(typed: str) -> str:
    """The secret as typed back: capitals, dashes and spaces do not matter."""
    return typed.strip().lower().replace("-", "").replace(" ", "")


def looks_like(secret: str) -> bool:
    """Could `secret` (normalized) be an app password? Others are checked as the main password only."""
    return len(secret) == LENGTH and all(c in ALPHABET for c in secret)


def check_name(name: str) -> str:
    """A device name: 1 to 64 letters, digits, spaces and `.@()+'-`, starting with a letter or digit."""
    name = name.strip()
    if not _NAME.match(name):
        raise ValueError(f"app password name {name!r}: use 1 to 64 letters, digits, spaces or .@()+'- "
                         "(e.g. 'phone' or 'laptop thunderbird')")
    return name


def info(row: AppPassword) -> AppPasswordInfo:
    return AppPasswordInfo(row.name, row.created_at, row.last_used_at)


# -- the Directory's methods (store.py delegates here) --------------------------------------------------


def add(directory: Directory, address: str, name: str, *, by: str, reason: str) -> NewAppPassword:
    """Create an app password named `name` for the account `address` and return it with its secret.
    Raises AccountUnknown, AccountDisabled (only active accounts get new ones), AppPasswordExists,
    DirectoryError past MAX_PER_ACCOUNT, ValueError for a bad name."""
    from mailbastion.directory.store import AuditAction, _key

    name = check_name(name)
    secret = generate()
    digest = passwords.hash_password(secret)
    now = directory.now()
    key = _key(address)
    with directory._change(AuditAction.APP_PASSWORD_CREATED, by=by, subject=key, reason=reason,
                          details={"name": name}) as s:
        account = directory._account(s, key)
        if account.state != AccountState.ACTIVE:
            raise AccountDisabled(f"account {key} is {account.state}: app passwords are for active accounts")
        rows = list(s.scalars(select(AppPassword).where(AppPassword.account_id == account.id)))
        if any(r.name.lower() == name.lower() for r in rows):
            raise AppPasswordExists(f"{key} already has an app password named {name!r} (revoke it first)")
        if len(rows) >= MAX_PER_ACCOUNT:
            raise DirectoryError(f"{key} has {len(rows)} app passwords, the most allowed; revoke unused ones")
        row = AppPassword(account_id=account.id, name=name, prefix=secret[:PREFIX_LENGTH], password_hash=digest,
                          created_at=now)
        s.add(row)
    return NewAppPassword(AppPasswordInfo(name, now, None), display(secret))


def listed(directory: Directory, address: str) -> list[AppPasswordInfo]:
    """The app passwords of `address`, by name. Raises AccountUnknown."""
    from mailbastion.directory.store import _key

    key = _key(address)
    with Session(directory.engine) as s:
        account = directory._account(s, key)
        rows = s.scalars(select(AppPassword).where(AppPassword.account_id == account.id).order_by(AppPassword.name))
        return [info(r) for r in rows]


def revoke(directory: Directory, address: str, name: str | None, *, by: str, reason: str) -> list[str]:
    """Delete the app password `name` of `address` (every one when `name` is None); returns the names
    revoked. Raises AccountUnknown, AppPasswordUnknown (also when there is none to revoke)."""
    from mailbastion.directory.store import AuditAction, _key

    key = _key(address)
    with directory._change(AuditAction.APP_PASSWORD_REVOKED, by=by, subject=key, reason=reason,
                          details={"name": name if name is not None else "*"}) as s:
        account = directory._account(s, key)
        rows = list(s.scalars(select(AppPassword).where(AppPassword.account_id == account.id)))
        if name is not None:
            rows = [r for r in rows if r.name.lower() == name.strip().lower()]
        if not rows:
            raise AppPasswordUnknown(f"{key} has no app password" + (f" named {name!r}" if name else ""))
        for r in rows:
            s.delete(r)
        return sorted(r.name for r in rows)


def matching(s: Session, account_id: int, secret: str) -> list[AppPassword]:
    """The app passwords of the account whose prefix fits `secret` (normalized): normally none or one."""
    if not looks_like(secret):
        return []
    return list(s.scalars(select(AppPassword).where(AppPassword.account_id == account_id,
                                                    AppPassword.prefix == secret[:PREFIX_LENGTH])))


__all__ = ["ALPHABET", "LENGTH", "AppPasswordExists", "AppPasswordInfo", "AppPasswordUnknown", "NewAppPassword",
           "display", "generate", "looks_like", "normalize"]
