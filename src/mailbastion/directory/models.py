"""The directory's tables as SQLAlchemy 2 models: domains, accounts (with their states) and aliases. (The
audit log has its own tables and database: `mailbastion/audit/`.)

The schema itself is created and changed only by the Alembic migrations in `migrations/`; these models must
describe the same tables. Addresses are stored normalized (`Address.normalized`: lower-case local part and
domain, no tag).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class AccountState(StrEnum):
    """The life of an account (issue 13). Only ACTIVE receives mail and may log in.

    pending ──start date / approve──▶ active ◀──▶ suspended (security hold, reversible)
                                        │            │
                                        └─end date───┴──▶ left ──archive──▶ archived ──retention──▶ deleted
                                                                                       (address reserved)

    DISABLED is the name leavers had before migration 0006 (`deactivate` made them so): still readable and
    settable, inactive like LEFT, and archived on the same schedule.
    """

    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    LEFT = "left"
    ARCHIVED = "archived"
    DISABLED = "disabled"
    DELETED = "deleted"


STATES_SQL = "state IN ('pending', 'active', 'suspended', 'left', 'archived', 'disabled', 'deleted')"


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite forgets the zone; this puts it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the directory; use an aware UTC time")
        return value.astimezone(dt.UTC).replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if not isinstance(value, dt.datetime):
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    pass


class Domain(Base):
    __tablename__ = "domains"
    __table_args__ = (UniqueConstraint("name", name="uq_domains_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class DirectoryGeneration(Base):
    """One row counting changes to domains, accounts and aliases. Database triggers (migration 0002) bump
    it in the transaction of every change, whoever makes it, so a reader holding a copy of the directory
    (directory/cache.py) knows from one small read whether its copy is still current."""

    __tablename__ = "directory_generation"
    __table_args__ = (CheckConstraint("id = 1", name="ck_directory_generation_single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(BigInteger)


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("address", name="uq_accounts_address"),
        CheckConstraint(STATES_SQL, name="ck_accounts_state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(320))
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", name="fk_accounts_domain_id_domains"),
                                           index=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # None: mailbox default
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    activated_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    deactivate_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)  # leaver date
    deactivated_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # Migration 0006_lifecycle: the start date (pending until then), who takes over, what HR calls them,
    # when the mailbox was archived and where, and until when a deleted account's address stays reserved.
    start_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    successor: Mapped[str | None] = mapped_column(String(320), nullable=True)
    display_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    manager: Mapped[str | None] = mapped_column(String(320), nullable=True)
    archived_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    archive_file: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    reserved_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    source: Mapped[str | None] = mapped_column(String(16), nullable=True)  # "ldap": kept by the LDAP sync

    domain: Mapped[Domain] = relationship(lazy="joined")


class Alias(Base):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("alias", "target", name="uq_aliases_alias_target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alias: Mapped[str] = mapped_column(String(320), index=True)
    target: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class AppPassword(Base):
    """A password for one device (mail client) of an account: generated, shown once, stored only as an
    argon2id hash (migration 0004). `prefix` holds the first characters of the secret (20 of its 118 bits)
    so that a login verifies one hash, however many devices the account has."""

    __tablename__ = "app_passwords"
    __table_args__ = (UniqueConstraint("account_id", "name", name="uq_app_passwords_account_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", name="fk_app_passwords_account_id_accounts", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))  # the device, as the user named it
    prefix: Mapped[str] = mapped_column(String(8))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


__all__ = ["STATES_SQL", "Account", "AccountState", "Alias", "AppPassword", "Base", "DirectoryGeneration", "Domain"]
