"""Who may send as whom, and whose sending is suspended: the submission side of the directory
(migration 0007_submission).

    store = SendingStore(directory)
    store.allowed_senders("alice@example.org")    # {"alice@example.org", her aliases, her send-as grants}
    store.grant("alice@example.org", "sales@example.org", by="cli:root", reason="team mailbox")
    store.revoke("alice@example.org", "sales@example.org", by=..., reason=...)
    store.suspend("alice@example.org", reason="fan-out: 160 recipients in 600s", by="submission:hijack")
    store.hold("alice@example.org")              # SendingHold or None
    store.unsuspend("alice@example.org", reason="password reset, phished", by="cli:root")

Sender binding (Postfix's reject_sender_login_mismatch): an authenticated account may use as envelope
sender and header From its own address (with a +tag), an alias whose targets include it, or an address
granted to it explicitly with `account send-as`. A hold stops sending only: login and receiving go on (the
account state is untouched; that is the lifecycle's business). Every grant, revoke, suspension and
unsuspension is written with its audit record in one transaction (`Directory.audited_change`).
Rows are keyed by the normalized address, like aliases; these tables are outside the directory-generation
triggers (migration 0002): a suspension must not make every MDA re-read the directory.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Index, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mailbastion.core.address import Address
from mailbastion.directory.errors import AccountUnknown, DirectoryError
from mailbastion.directory.models import Account, Alias, Base, UtcDateTime
from mailbastion.directory.resolution import to_address

if TYPE_CHECKING:
    from mailbastion.directory.store import Directory

SEND_AS_GRANTED = "account.send_as_granted"
SEND_AS_REVOKED = "account.send_as_revoked"
SENDING_SUSPENDED = "account.sending_suspended"
SENDING_UNSUSPENDED = "account.sending_unsuspended"


class SendAsGrant(Base):
    """`account` may send as `sender` (an address of ours or not; kept normalized)."""

    __tablename__ = "send_as_grants"
    __table_args__ = (UniqueConstraint("account", "sender", name="uq_send_as_grants_account_sender"),
                      Index("ix_send_as_grants_account", "account"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(320))
    sender: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(320))


class SendingHoldRow(Base):
    """Sending suspended for `account` (one row at most): why, since when, by whom."""

    __tablename__ = "sending_holds"

    account: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(String(1000))
    since: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    suspended_by: Mapped[str] = mapped_column(String(320))


@dataclass(frozen=True, slots=True)
class SendingHold:
    account: str
    reason: str
    since: dt.datetime
    by: str


class NotSuspended(DirectoryError):
    """unsuspend of an account whose sending is not suspended."""


class GrantUnknown(DirectoryError):
    """revoke of a send-as grant that does not exist."""


def _norm(address: Address | str) -> str:
    return to_address(str(address)).normalized


class SendingStore:
    """Thread-safe (each call opens its own session). Raises SQLAlchemyError when the database fails."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.engine = directory.engine

    # -- sender binding ---------------------------------------------------------------------------

    def allowed_senders(self, account: str) -> frozenset[str]:
        """Normalized addresses `account` may send as: itself, aliases reaching it, its grants."""
        key = _norm(account)
        with Session(self.engine) as s:
            aliases = set(s.scalars(select(Alias.alias).where(Alias.target == key)))
            # one level more: an alias of an alias that reaches the account (a team list of lists)
            if aliases:
                aliases |= set(s.scalars(select(Alias.alias).where(Alias.target.in_(aliases))))
            grants = set(s.scalars(select(SendAsGrant.sender).where(SendAsGrant.account == key)))
        return frozenset({key, *aliases, *grants})

    def grants(self, account: str) -> list[str]:
        key = _norm(account)
        with Session(self.engine) as s:
            return sorted(s.scalars(select(SendAsGrant.sender).where(SendAsGrant.account == key)))

    def grant(self, account: str, sender: str, *, by: str = "", reason: str = "") -> None:
        key, who = _norm(account), _norm(sender)
        with self.directory.audited_change(SEND_AS_GRANTED, by=by, subject=key, reason=reason,
                                           details={"sender": who}) as s:
            if s.scalar(select(Account.id).where(Account.address == key)) is None:
                raise AccountUnknown(f"no account {key}")
            exists = s.scalar(select(SendAsGrant.id).where(SendAsGrant.account == key, SendAsGrant.sender == who))
            if exists is None:
                s.add(SendAsGrant(account=key, sender=who, created_at=self.directory.now(), created_by=by or "cli"))

    def revoke(self, account: str, sender: str, *, by: str = "", reason: str = "") -> None:
        key, who = _norm(account), _norm(sender)
        with self.directory.audited_change(SEND_AS_REVOKED, by=by, subject=key, reason=reason,
                                           details={"sender": who}) as s:
            row = s.scalar(select(SendAsGrant).where(SendAsGrant.account == key, SendAsGrant.sender == who))
            if row is None:
                raise GrantUnknown(f"{key} has no grant to send as {who}")
            s.delete(row)

    # -- sending holds ----------------------------------------------------------------------------

    def hold(self, account: str) -> SendingHold | None:
        key = _norm(account)
        with Session(self.engine) as s:
            row = s.get(SendingHoldRow, key)
            return None if row is None else SendingHold(row.account, row.reason, row.since, row.suspended_by)

    def holds(self) -> list[SendingHold]:
        with Session(self.engine) as s:
            return [SendingHold(r.account, r.reason, r.since, r.suspended_by)
                    for r in s.scalars(select(SendingHoldRow).order_by(SendingHoldRow.since))]

    def suspend(self, account: str, *, reason: str, by: str, details: dict[str, Any] | None = None) -> bool:
        """Suspend sending; False (and nothing written) when it already is."""
        key = _norm(account)
        if self.hold(key) is not None:
            return False
        with self.directory.audited_change(SENDING_SUSPENDED, by=by, subject=key, reason=reason, details=details) as s:
            if s.get(SendingHoldRow, key) is None:
                s.add(SendingHoldRow(account=key, reason=reason[:1000], since=self.directory.now(), suspended_by=by))
        return True

    def unsuspend(self, account: str, *, reason: str, by: str = "") -> SendingHold:
        key = _norm(account)
        with self.directory.audited_change(SENDING_UNSUSPENDED, by=by, subject=key, reason=reason) as s:
            row = s.get(SendingHoldRow, key)
            if row is None:
                raise NotSuspended(f"sending is not suspended for {key}")
            held = SendingHold(row.account, row.reason, row.since, row.suspended_by)
            s.delete(row)
        return held


__all__ = ["SENDING_SUSPENDED", "SENDING_UNSUSPENDED", "SEND_AS_GRANTED", "SEND_AS_REVOKED", "GrantUnknown",
           "NotSuspended", "SendAsGrant", "SendingHold", "SendingHoldRow", "SendingStore"]
