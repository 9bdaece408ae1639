"""The portal's tables in the directory database (migration 0005_portal): portal roles with each account's
TOTP and sign-in state, server-side sessions, and one-time enrolment links.

No secret is stored as it is used: sessions and enrolment links are kept as the SHA-256 of their token
(a copy of the database does not give a working cookie or link), and TOTP secrets are encrypted with a key
kept apart from the database (`portal/` below data_dir). Rows are keyed by the account's normalized
address, like aliases. None of these tables is under the directory-generation triggers (migration 0002):
a session write must not make every MDA reread the directory.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from mailbastion.directory.models import Base, UtcDateTime

ROLES = ("administrator", "helpdesk", "user")


class PortalAccount(Base):
    """Portal state of an account; an account without a row is a plain user with no TOTP."""

    __tablename__ = "portal_accounts"
    __table_args__ = (CheckConstraint("role IN ('administrator', 'helpdesk', 'user')", name="ck_portal_accounts_role"),)

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), default="user")
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # AES-GCM nonce + ciphertext
    totp_confirmed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    totp_last_step: Mapped[int] = mapped_column(BigInteger, default=0)  # RFC 6238 §5.2: a code works once
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    failed_since: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class PortalSession(Base):
    """A signed-in browser. `mfa_done` False: password checked, TOTP still to come (no page but the code)."""

    __tablename__ = "portal_sessions"
    __table_args__ = (Index("ix_portal_sessions_address", "address"),
                      Index("ix_portal_sessions_expires_at", "expires_at"))

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    csrf_token: Mapped[str] = mapped_column(String(64))
    mfa_done: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)  # the absolute end
    client: Mapped[str] = mapped_column(String(64), default="")


class PortalEnrolToken(Base):
    """A one-time link: set a password (and TOTP when the role needs it)."""

    __tablename__ = "portal_enrol_tokens"
    __table_args__ = (Index("ix_portal_enrol_tokens_address", "address"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_by: Mapped[str] = mapped_column(String(320))


__all__ = ["ROLES", "PortalAccount", "PortalEnrolToken", "PortalSession"]
