"""The tables of the acceptable use policy in the directory's database (migration 0008_aup), as SQLAlchemy
models on the directory's `Base`. Addresses are stored normalized; times are aware UTC (`UtcDateTime`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailbastion.directory.models import Base, UtcDateTime

__all__ = ["AcceptanceRow", "NoticeRow", "VersionRow"]


class VersionRow(Base):
    """One published version: its Markdown text exactly as published, and the SHA-256 of that text."""

    __tablename__ = "aup_versions"
    __table_args__ = (Index("ix_aup_versions_effective_at", "effective_at"),)

    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    effective_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    published_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    published_by: Mapped[str] = mapped_column(String(320))


class AcceptanceRow(Base):
    """`account` accepted `version` (whose text had `sha256`) at `accepted_at` from `client`. One per pair."""

    __tablename__ = "aup_acceptances"
    __table_args__ = (Index("ix_aup_acceptances_version", "version"),)

    account: Mapped[str] = mapped_column(String(320), primary_key=True)
    version: Mapped[str] = mapped_column(ForeignKey("aup_versions.version", name="fk_aup_acceptances_version"),
                                         primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    accepted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    client: Mapped[str] = mapped_column(String(64))


class NoticeRow(Base):
    """The overdue notice for (`account`, `version`) went into the spool as `queue_id`: it is sent once."""

    __tablename__ = "aup_notices"

    account: Mapped[str] = mapped_column(String(320), primary_key=True)
    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    sent_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    queue_id: Mapped[str] = mapped_column(String(64))
