"""Users logging in: the one password path of every mail protocol (IMAP through Dovecot, submission).

    result = directory.verify_login("alice@example.org", secret)   # main password or an app password
    result.ok, result.outcome, result.via, result.device

    guard = LoginGuard(directory, LoginThrottle.from_settings(settings))
    guard.attempt("alice@example.org", secret, client="192.0.2.7", service="imap")   # throttled, logged, audited

`verify_login` accepts the account's main password or one of its app passwords (directory/app_passwords.py),
and only for an ACTIVE account whose leaver date has not passed, read from the database at each call (a
state change refuses the next login at once). It costs one argon2 verification in every case (two when a
secret shaped like an app password matches a device's prefix but not its hash), whether or not the account
exists, so timing tells nothing about which accounts exist.

`LoginGuard.attempt` adds what a network service needs: the throttle (directory/throttle.py) is asked first
and a locked account or client is refused without a password check; every failure is logged
(`mailbastion.login`, never the secret) and counted; a lockout is logged and written to the audit log
(`login.locked_out`, subject the account or `client:<address>`). The reply a client sees must be the same
for every failure (unknown account, wrong password, inactive, locked out): callers use `result.ok` only.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailbastion.core.address import AddressError
from mailbastion.directory import app_passwords, passwords
from mailbastion.directory.models import Account, AccountState, AppPassword
from mailbastion.directory.throttle import Lockout, LoginThrottle

if TYPE_CHECKING:
    from mailbastion.directory.store import Directory

log = logging.getLogger("mailbastion.login")

LAST_USED_RESOLUTION = dt.timedelta(minutes=5)  # `last_used_at` of an app password is written at most this often
LOCKED_OUT = "login.locked_out"  # the audit action of a lockout


class LoginOutcome(StrEnum):
    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"  # wrong password for an existing account
    UNKNOWN_ACCOUNT = "unknown_account"  # no such account (or a malformed address)
    INACTIVE = "inactive"  # right password, but the account is pending, suspended, disabled or past its leave date
    LOCKED_OUT = "locked_out"  # the throttle refused before any password check


@dataclass(frozen=True, slots=True)
class LoginResult:
    outcome: LoginOutcome
    address: str  # the account, normalized (lower case, no tag); the name as given when not an address
    via: str = ""  # "password" | "app-password" when the credentials were right
    device: str | None = None  # the app password's name
    detail: str = ""  # why inactive ("suspended", "left 2026-11-30 00:00") or locked out

    @property
    def ok(self) -> bool:
        return self.outcome is LoginOutcome.OK


def verify_login(directory: Directory, address: str, secret: str) -> LoginResult:
    """See the module docstring. Never raises for bad input; raises SQLAlchemyError when the database
    cannot be read (the caller answers with a temporary failure)."""
    from mailbastion.directory.store import _key

    try:
        key = _key(address)
    except (AddressError, ValueError):
        key = ""
    with Session(directory.engine) as s:
        account = s.scalar(select(Account).where(Account.address == key)) if key else None
        device: AppPassword | None = None
        if account is not None:
            normalized = app_passwords.normalize(secret)
            for candidate in app_passwords.matching(s, account.id, normalized):
                if passwords.verify(candidate.password_hash, normalized):
                    device = candidate
                    break
        main_ok = device is None and passwords.verify(account.password_hash if account else None, secret)
        if account is None:
            return LoginResult(LoginOutcome.UNKNOWN_ACCOUNT, key or address.strip().lower())
        if device is None and not main_ok:
            return LoginResult(LoginOutcome.BAD_CREDENTIALS, key)
        via = "app-password" if device is not None else "password"
        why = _why_inactive(account, directory.now())
        if why is not None:
            return LoginResult(LoginOutcome.INACTIVE, key, via, device.name if device else None, why)
        now = directory.now()
        if device is not None and (device.last_used_at is None or now - device.last_used_at > LAST_USED_RESOLUTION):
            s.execute(update(AppPassword).where(AppPassword.id == device.id).values(last_used_at=now))
            s.commit()
        elif device is None and account.password_hash and passwords.needs_rehash(account.password_hash):
            account.password_hash = passwords.hash_password(secret)
            s.commit()
        return LoginResult(LoginOutcome.OK, key, via, device.name if device else None)


def _why_inactive(account: Account, now: dt.datetime) -> str | None:
    if account.state != AccountState.ACTIVE:
        return str(account.state)
    if account.deactivate_at is not None and account.deactivate_at <= now:
        return f"left {account.deactivate_at:%Y-%m-%d %H:%M}"
    return None


class LoginGuard:
    """`verify_login` behind the failed-login throttle, with logging and audited lockouts. Blocking (argon2,
    database): async callers use `asyncio.to_thread`. Thread-safe."""

    def __init__(self, directory: Directory, throttle: LoginThrottle | None = None) -> None:
        self.directory = directory
        self.throttle = throttle if throttle is not None else LoginThrottle()

    def attempt(self, address: str, secret: str, *, client: str, service: str) -> LoginResult:
        name = address.strip().lower()
        lock = self.throttle.locked(_account_key(name), client)
        if lock is not None:
            log.warning("login.refused service=%s user=%s client=%s reason=locked_out (%s %s, %.0fs left)",
                        service, name, client, lock.kind, lock.key, lock.seconds)
            return LoginResult(LoginOutcome.LOCKED_OUT, name, detail=f"{lock.kind} {lock.key} locked out")
        result = verify_login(self.directory, address, secret)
        if result.ok:
            self.throttle.succeeded(result.address, client)
            log.info("login.ok service=%s user=%s client=%s via=%s%s", service, result.address, client, result.via,
                     f" device={result.device!r}" if result.device else "")
            return result
        log.warning("login.failed service=%s user=%s client=%s reason=%s%s", service, result.address, client,
                    result.outcome, f" ({result.detail})" if result.detail else "")
        for lockout in self.throttle.failed(result.address, client):
            self._audit_lockout(lockout, service=service, user=result.address, client=client)
        return result

    def _audit_lockout(self, lockout: Lockout, *, service: str, user: str, client: str) -> None:
        subject = lockout.key if lockout.kind == "account" else f"client:{lockout.key}"
        reason = (f"{lockout.failures} failed logins within {self.throttle.window:.0f}s: locked for "
                  f"{lockout.seconds:.0f}s (lockout {lockout.level})")
        log.warning("login.locked_out service=%s %s=%s %s (last try user=%s client=%s)", service, lockout.kind,
                    lockout.key, reason, user, client)
        try:
            self.directory.audit.record(LOCKED_OUT, actor=f"{service}:throttle", subject=subject, reason=reason,
                                        details={"kind": lockout.kind, "service": service, "user": user,
                                                 "client": client, "seconds": int(lockout.seconds),
                                                 "level": lockout.level})
        except Exception as exc:  # noqa: BLE001 - the lockout holds even when it cannot be audited
            log.error("login.locked_out could not be written to the audit log: %s", exc)


def _account_key(name: str) -> str:
    from mailbastion.directory.store import _key

    try:
        return _key(name)
    except (AddressError, ValueError):
        return name


__all__ = ["LOCKED_OUT", "LoginGuard", "LoginOutcome", "LoginResult", "verify_login"]
