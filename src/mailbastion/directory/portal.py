"""The portal's state in the directory database: roles, TOTP, failed sign-ins and lockout, server-side
sessions and one-time enrolment links (tables in `portal_models.py`, migration 0005_portal).

    store = PortalStore(directory)
    store.set_role("alice@example.org", "administrator", by="cli:root", reason="IT lead")   # audited
    store.create_session(token_hash, "alice@example.org", "administrator", csrf, mfa_done=False, ...)
    row = store.session(token_hash)              # SessionFacts, with the account's state, or None

Callers hand in hashes, never tokens: the portal makes a token, gives it to the browser, and keeps only its
SHA-256 here. Changes an administrator would want to see later (roles, TOTP set or reset, enrolment links,
lockouts) are audited through the directory's audit log, in the same way as `Directory` changes (the
record before the commit, a compensating record when the commit fails); per-request bookkeeping (session
touch, failure counters) is not. Methods are synchronous and thread-safe; async callers use
`asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, delete, func, insert, or_, select, update

from mailbastion.directory.database import write_transaction
from mailbastion.directory.errors import AccountUnknown, DirectoryError
from mailbastion.directory.models import Account, AccountState
from mailbastion.directory.portal_models import ROLES, PortalAccount, PortalEnrolToken, PortalSession
from mailbastion.directory.resolution import to_address
from mailbastion.directory.store import AccountInfo, Directory

ACCOUNTS = cast(Table, Account.__table__)
PACCOUNTS = cast(Table, PortalAccount.__table__)
SESSIONS = cast(Table, PortalSession.__table__)
TOKENS = cast(Table, PortalEnrolToken.__table__)


@dataclass(frozen=True, slots=True)
class PortalFacts:
    """An account's portal side: role, TOTP and lockout."""

    address: str
    role: str
    totp_secret: bytes | None
    totp_confirmed: bool
    totp_last_step: int
    locked_until: dt.datetime | None


@dataclass(frozen=True, slots=True)
class SessionFacts:
    token_hash: str
    address: str
    role: str
    csrf_token: str
    mfa_done: bool
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime
    account_active: bool  # ACTIVE and its leaver date not passed, now


@dataclass(frozen=True, slots=True)
class EnrolFacts:
    address: str
    expires_at: dt.datetime
    used_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class AccountRow:
    info: AccountInfo
    role: str


def _key(address: str) -> str:
    return to_address(address).normalized


class PortalStore:
    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.engine = directory.engine

    def now(self) -> dt.datetime:
        return self.directory.now()

    @contextlib.contextmanager
    def _audited(self, action: str, *, by: str, subject: str, reason: str = "",
                 details: dict[str, Any] | None = None) -> Iterator[Connection]:
        if not by.strip():
            raise ValueError("every portal change needs an actor (by=...)")
        receipt = None
        try:
            with write_transaction(self.engine) as conn:
                yield conn
                receipt = self.directory.audit.record_change(conn, action, actor=by.strip(), subject=subject,
                                                             reason=reason, details=details)
        except BaseException as exc:
            if receipt is not None:
                self.directory.audit.not_committed(receipt, exc)
            raise

    @staticmethod
    def _ensure_row(conn: Connection, key: str) -> None:
        if conn.execute(select(PACCOUNTS.c.address).where(PACCOUNTS.c.address == key)).first() is None:
            conn.execute(insert(PACCOUNTS).values(address=key, role="user", totp_last_step=0, failed_logins=0))

    @staticmethod
    def _require_account(conn: Connection, key: str) -> None:
        if conn.execute(select(ACCOUNTS.c.id).where(ACCOUNTS.c.address == key)).first() is None:
            raise AccountUnknown(f"no account {key}")

    # -- roles and facts --------------------------------------------------------------------------

    def facts(self, address: str) -> PortalFacts:
        key = _key(address)
        with self.engine.connect() as conn:
            r = conn.execute(select(PACCOUNTS).where(PACCOUNTS.c.address == key)).first()
        if r is None:
            return PortalFacts(key, "user", None, False, 0, None)
        return PortalFacts(key, r.role, r.totp_secret, r.totp_confirmed_at is not None, r.totp_last_step,
                           _aware(r.locked_until))

    def role(self, address: str) -> str:
        return self.facts(address).role

    def set_role(self, address: str, role: str, *, by: str, reason: str = "") -> None:
        """Give an account a portal role (administrator, helpdesk, user). Its open sessions end, so the new
        role (and its TOTP requirement) applies from its next sign-in. Raises AccountUnknown."""
        if role not in ROLES:
            raise DirectoryError(f"unknown portal role {role!r} (one of {', '.join(ROLES)})")
        key = _key(address)
        with self._audited("portal.role_changed", by=by, subject=key, reason=reason, details={"role": role}) as conn:
            self._require_account(conn, key)
            self._ensure_row(conn, key)
            conn.execute(update(PACCOUNTS).where(PACCOUNTS.c.address == key).values(role=role))
            conn.execute(delete(SESSIONS).where(SESSIONS.c.address == key))

    # -- TOTP ----------------------------------------------------------------------------------------

    def begin_totp(self, address: str, encrypted_secret: bytes) -> None:
        """Store a new, unconfirmed secret (enrolment in progress): sign-in does not ask for it yet."""
        key = _key(address)
        with write_transaction(self.engine) as conn:
            self._require_account(conn, key)
            self._ensure_row(conn, key)
            conn.execute(update(PACCOUNTS).where(PACCOUNTS.c.address == key)
                         .values(totp_secret=encrypted_secret, totp_confirmed_at=None, totp_last_step=0))

    def confirm_totp(self, address: str, step: int, *, by: str) -> None:
        """The user proved the secret with a code of time step `step`: from now on sign-in asks for it."""
        key = _key(address)
        with self._audited("portal.totp_enrolled", by=by, subject=key) as conn:
            conn.execute(update(PACCOUNTS).where(PACCOUNTS.c.address == key)
                         .values(totp_confirmed_at=self.now(), totp_last_step=step))

    def reset_totp(self, address: str, *, by: str, reason: str = "") -> None:
        """Remove the secret (a lost phone): the next sign-in enrols again. Ends the account's sessions."""
        key = _key(address)
        with self._audited("portal.totp_reset", by=by, subject=key, reason=reason) as conn:
            conn.execute(update(PACCOUNTS).where(PACCOUNTS.c.address == key)
                         .values(totp_secret=None, totp_confirmed_at=None, totp_last_step=0))
            conn.execute(delete(SESSIONS).where(SESSIONS.c.address == key))

    def use_totp_step(self, address: str, step: int) -> bool:
        """Spend time step `step`: True once, False if that step or a later one was used already (a replayed
        code, RFC 6238 §5.2)."""
        key = _key(address)
        with write_transaction(self.engine) as conn:
            done = conn.execute(update(PACCOUNTS).where(PACCOUNTS.c.address == key, PACCOUNTS.c.totp_last_step < step)
                                .values(totp_last_step=step))
            return bool(done.rowcount)

    # -- failed sign-ins and lockout ----------------------------------------------------------------

    def record_failure(self, address: str, *, window: dt.timedelta, max_failures: int,
                       lockout: dt.timedelta) -> dt.datetime | None:
        """Count a failed sign-in of an existing account; return the lock's end when this failure locks it
        (audited as `portal.lockout`), else None. Unknown addresses are not counted (nothing to lock)."""
        key = _key(address)
        now = self.now()
        with write_transaction(self.engine) as conn:
            if conn.execute(select(ACCOUNTS.c.id).where(ACCOUNTS.c.address == key)).first() is None:
                return None
            self._ensure_row(conn, key)
            r = conn.execute(select(PACCOUNTS).where(PACCOUNTS.c.address == key)).one()
            since = _aware(r.failed_since)
            count = 1 if since is None or now - since > window else r.failed_logins + 1
            values: dict[str, Any] = {"failed_logins": count, "failed_since": now if count == 1 else since}
            locked = None
            if count >= max_failures:
                locked = now + lockout
                values.update(locked_until=locked, failed_logins=0, failed_since=None)
            conn.execute(update(PACCOUNTS).where(PACCOUNTS.c.address == key).values(**values))
        if locked is not None:
            self.directory.audit.record("portal.lockout", actor="portal", subject=key,
                                        reason=f"{max_failures} failed sign-ins within {window}",
                                        details={"locked_until": locked.isoformat()})
        return locked

    def clear_failures(self, address: str) -> None:
        key = _key(address)
        with write_transaction(self.engine) as conn:
            conn.execute(update(PACCOUNTS).where(PACCOUNTS.c.address == key)
                         .values(failed_logins=0, failed_since=None))

    def unlock(self, address: str, *, by: str, reason: str = "") -> None:
        key = _key(address)
        with self._audited("portal.unlocked", by=by, subject=key, reason=reason) as conn:
            conn.execute(update(PACCOUNTS).where(PACCOUNTS.c.address == key)
                         .values(locked_until=None, failed_logins=0, failed_since=None))

    # -- sessions ------------------------------------------------------------------------------------

    def create_session(self, token_hash: str, address: str, role: str, csrf_token: str, *, mfa_done: bool,
                       expires_at: dt.datetime, client: str = "") -> None:
        now = self.now()
        with write_transaction(self.engine) as conn:
            conn.execute(insert(SESSIONS).values(token_hash=token_hash, address=_key(address), role=role,
                                                 csrf_token=csrf_token, mfa_done=mfa_done, created_at=now,
                                                 last_seen_at=now, expires_at=expires_at, client=client[:64]))

    def session(self, token_hash: str) -> SessionFacts | None:
        """The session with its account's state now, in one read; None when there is no such session."""
        q = (select(SESSIONS, ACCOUNTS.c.state, ACCOUNTS.c.deactivate_at)
             .select_from(SESSIONS.outerjoin(ACCOUNTS, ACCOUNTS.c.address == SESSIONS.c.address))
             .where(SESSIONS.c.token_hash == token_hash))
        with self.engine.connect() as conn:
            r = conn.execute(q).first()
        if r is None:
            return None
        leaves = _aware(r.deactivate_at)
        active = r.state == AccountState.ACTIVE and (leaves is None or leaves > self.now())
        return SessionFacts(r.token_hash, r.address, r.role, r.csrf_token, bool(r.mfa_done), _when(r.created_at),
                            _when(r.last_seen_at), _when(r.expires_at), active)

    def touch_session(self, token_hash: str) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(update(SESSIONS).where(SESSIONS.c.token_hash == token_hash).values(last_seen_at=self.now()))

    def end_session(self, token_hash: str) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(delete(SESSIONS).where(SESSIONS.c.token_hash == token_hash))

    def end_sessions(self, address: str) -> int:
        """End every session of an account (suspended, password changed, role changed); return how many."""
        with write_transaction(self.engine) as conn:
            return int(conn.execute(delete(SESSIONS).where(SESSIONS.c.address == _key(address))).rowcount)

    def purge_sessions(self, *, idle: dt.timedelta) -> int:
        """Remove sessions past their absolute end or idle longer than `idle`."""
        now = self.now()
        with write_transaction(self.engine) as conn:
            gone = conn.execute(delete(SESSIONS).where(or_(SESSIONS.c.expires_at <= now,
                                                           SESSIONS.c.last_seen_at <= now - idle)))
            return int(gone.rowcount)

    # -- enrolment links -----------------------------------------------------------------------------

    def create_enrol_token(self, address: str, token_hash: str, *, expires_at: dt.datetime, by: str,
                           reason: str = "") -> None:
        """A one-time link for `address` (which must exist and not be deleted); earlier unused links of the
        account stop working. Audited (`portal.enrol_link_created`), without the token."""
        key = _key(address)
        with self._audited("portal.enrol_link_created", by=by, subject=key, reason=reason,
                           details={"expires_at": expires_at.isoformat()}) as conn:
            state = conn.execute(select(ACCOUNTS.c.state).where(ACCOUNTS.c.address == key)).scalar()
            if state is None:
                raise AccountUnknown(f"no account {key}")
            if state == AccountState.DELETED:
                raise DirectoryError(f"account {key} is deleted")
            conn.execute(delete(TOKENS).where(TOKENS.c.address == key, TOKENS.c.used_at.is_(None)))
            conn.execute(insert(TOKENS).values(token_hash=token_hash, address=key, created_at=self.now(),
                                               expires_at=expires_at, created_by=by.strip()))

    def enrol_token(self, token_hash: str) -> EnrolFacts | None:
        """The link if it exists, is unused and has not expired."""
        with self.engine.connect() as conn:
            r = conn.execute(select(TOKENS).where(TOKENS.c.token_hash == token_hash)).first()
        if r is None or r.used_at is not None or _when(r.expires_at) <= self.now():
            return None
        return EnrolFacts(r.address, _when(r.expires_at), None)

    def use_enrol_token(self, token_hash: str) -> str | None:
        """Spend the link (once, atomically); return its address, or None when it is gone or expired."""
        now = self.now()
        with write_transaction(self.engine) as conn:
            r = conn.execute(select(TOKENS.c.address).where(
                TOKENS.c.token_hash == token_hash, TOKENS.c.used_at.is_(None), TOKENS.c.expires_at > now)).first()
            if r is None:
                return None
            conn.execute(update(TOKENS).where(TOKENS.c.token_hash == token_hash).values(used_at=now))
            return str(r.address)

    # -- the accounts page ---------------------------------------------------------------------------

    def page_accounts(self, *, query: str = "", state: str | None = None, after: str = "",
                      limit: int = 50) -> list[AccountRow]:
        """Accounts in address order after `after` (keyset pagination on the unique address), matching
        `query` (a part of the address) and `state`, with their portal role."""
        q = (select(Account, PACCOUNTS.c.role)
             .select_from(ACCOUNTS.outerjoin(PACCOUNTS, PACCOUNTS.c.address == ACCOUNTS.c.address))
             .where(*self._filters(query, state, after)).order_by(ACCOUNTS.c.address).limit(limit))
        from sqlalchemy.orm import Session

        with Session(self.engine) as s:
            rows = s.execute(q).all()
            return [AccountRow(self.directory._info(acc), role or "user") for acc, role in rows]

    def count_accounts(self, *, query: str = "", state: str | None = None) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(ACCOUNTS)
                                    .where(*self._filters(query, state, ""))).scalar_one())

    @staticmethod
    def _filters(query: str, state: str | None, after: str) -> list[Any]:
        out: list[Any] = []
        if query.strip():
            needle = query.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            out.append(ACCOUNTS.c.address.like(f"%{needle}%", escape="\\"))
        if state:
            out.append(ACCOUNTS.c.state == state)
        if after:
            out.append(ACCOUNTS.c.address > after)
        return out or [and_(True)]

    def overdue_joiners(self) -> list[str]:
        """Pending accounts whose start date has passed (the lifecycle scheduler is late)."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(ACCOUNTS.c.address).where(
                ACCOUNTS.c.state == str(AccountState.PENDING), ACCOUNTS.c.start_at <= self.now())).scalars())

    def overdue_leavers(self) -> list[str]:
        """Active accounts whose leaver date has passed but are not yet disabled (the leaver job is late)."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(ACCOUNTS.c.address).where(
                ACCOUNTS.c.state == str(AccountState.ACTIVE), ACCOUNTS.c.deactivate_at <= self.now())).scalars())


def _when(value: dt.datetime | None) -> dt.datetime:
    aware = _aware(value)
    if aware is None:
        raise DirectoryError("a portal session row without its times")
    return aware


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


__all__ = ["AccountRow", "EnrolFacts", "PortalFacts", "PortalStore", "SessionFacts"]
