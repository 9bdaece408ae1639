"""The audit log's two tables as SQLAlchemy 2 models, on a metadata of their own (not the directory's).

The schema is created and changed only by the Alembic migrations in `migrations/`; these models must
describe the same tables. The names are the ones the directory used before the audit log moved out, so a
deployment that keeps both in one database (`[audit] url` = `[directory] url`) keeps its tables as they are.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class AuditBase(DeclarativeBase):
    pass


class AuditEventRow(AuditBase):
    """One audit record. `time` and `details` are stored as the exact text that was hashed."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    time: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(320), index=True)
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(AuditBase):
    """The last record's seq and hash, updated in the same transaction as each append: removing the newest
    records (which leaves an intact but shorter chain) shows as a mismatch with this row."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="ck_audit_head_single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


__all__ = ["AuditBase", "AuditEventRow", "AuditHeadRow"]
