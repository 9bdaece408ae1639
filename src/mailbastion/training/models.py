"""The training tables in the directory database (migration 0009_training).

- `TrainingAssignment`: one module assigned to one account: when, due when, by whom and why, the attempts,
  the last score, when it was completed (first passed), when the last reminder went out.
- `TrainingCampaign`: a phishing simulation: its template, target (a group alias or "all"), the module a
  click assigns, its start time and when it was sent.
- `TrainingTarget`: one recipient of a campaign: the SHA-256 of their link token (the token itself is only in
  the message), the queue id of their copy and when they clicked or reported it.

Rows are keyed by the account's normalized address, like aliases. None of these tables is under the
directory-generation triggers (migration 0002).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mailbastion.directory.models import Base, UtcDateTime

__all__ = ["TrainingAssignment", "TrainingCampaign", "TrainingTarget"]


class TrainingAssignment(Base):
    __tablename__ = "training_assignments"
    __table_args__ = (UniqueConstraint("address", "module", name="uq_training_assignments_address_module"),
                      Index("ix_training_assignments_due_at", "due_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(320))
    module: Mapped[str] = mapped_column(String(64))
    assigned_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    assigned_by: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)  # percent, the last attempt's
    completed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class TrainingCampaign(Base):
    __tablename__ = "training_campaigns"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    template: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(320))  # a group (alias) address, or "all"
    module: Mapped[str] = mapped_column(String(64))
    start_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(320))
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class TrainingTarget(Base):
    __tablename__ = "training_targets"
    __table_args__ = (UniqueConstraint("campaign", "address", name="uq_training_targets_campaign_address"),
                      UniqueConstraint("token_hash", name="uq_training_targets_token_hash"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(320))
    token_hash: Mapped[str] = mapped_column(String(64))
    queue_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    clicked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reported_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
