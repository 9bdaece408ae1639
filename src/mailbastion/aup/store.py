"""Published versions of the acceptable use policy and who accepted which, in the directory's database.

    store = AupStore(directory)
    v, new = store.publish(text, "2026.1", effective_at=when, by="cli:root")   # AupError: same version, other text
    store.current()                       # the version in effect now (latest effective_at <= now), or None
    store.accept("alice@example.org", "2026.1", sha256=v.sha256, client="192.0.2.7", by="portal:alice@...")
    store.acceptances("2026.1")           # {account: Acceptance}

A version is immutable once published: its text, the SHA-256 of that text (UTF-8) and its effective date are
stored together; publishing the same version again with the same text and date changes nothing, with another
text (or date) it is refused. An acceptance names the version and the hash of the text that was shown, so a
record proves what was accepted. Publishing and accepting are each one transaction with their audit record
(`aup.published`, `aup.accepted`). The clock is the directory's (core/clock.py: tests move it).
Thread-safe (each call opens its own session); raises SQLAlchemyError when the database fails.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailbastion.aup.models import AcceptanceRow, NoticeRow, VersionRow
from mailbastion.directory.errors import DirectoryError
from mailbastion.directory.resolution import to_address

if TYPE_CHECKING:
    from mailbastion.directory.store import Directory

__all__ = ["ACCEPTED", "PUBLISHED", "Acceptance", "AupError", "AupStore", "PolicyVersion", "text_hash"]

PUBLISHED = "aup.published"
ACCEPTED = "aup.accepted"
NOTICE_SENT = "aup.notice_sent"
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
MAX_TEXT = 200_000  # characters: a policy, not a book


class AupError(DirectoryError):
    """A publish or accept that cannot be done; the message is the one-line reason for the user."""


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    version: str
    sha256: str
    effective_at: dt.datetime
    published_at: dt.datetime
    published_by: str
    text: str

    def in_effect(self, now: dt.datetime) -> bool:
        return self.effective_at <= now


@dataclass(frozen=True, slots=True)
class Acceptance:
    account: str
    version: str
    sha256: str
    accepted_at: dt.datetime
    client: str


def _version(r: VersionRow) -> PolicyVersion:
    return PolicyVersion(r.version, r.sha256, r.effective_at, r.published_at, r.published_by, r.text)


def _acceptance(r: AcceptanceRow) -> Acceptance:
    return Acceptance(r.account, r.version, r.sha256, r.accepted_at, r.client)


def norm(address: str) -> str:
    return to_address(address).normalized


class AupStore:
    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.engine = directory.engine

    def now(self) -> dt.datetime:
        return self.directory.now()

    # -- versions ---------------------------------------------------------------------------------

    def publish(self, text: str, version: str, *, effective_at: dt.datetime | None = None, by: str,
                reason: str = "") -> tuple[PolicyVersion, bool]:
        """Store `version` with `text`, in effect from `effective_at` (default: now). Returns the version and
        whether it is new (False: published before with the same text and date, nothing changed).
        Raises AupError: a bad version name, an empty or oversized text, an effective date in the past, or
        the version already published with another text or date."""
        if not VERSION_RE.fullmatch(version):
            raise AupError(f"version {version!r}: 1-32 letters, digits, '.', '_' or '-', starting with a letter "
                           "or digit (e.g. 2026.1)")
        if not text.strip():
            raise AupError("the policy text is empty")
        if len(text) > MAX_TEXT:
            raise AupError(f"the policy text is longer than {MAX_TEXT} characters")
        if "\x00" in text:
            raise AupError("the policy text contains a NUL character: is it a text file?")
        now = self.now()
        digest = text_hash(text)
        existing = self.version(version)
        if existing is not None:
            if existing.sha256 != digest:
                raise AupError(f"version {version} was published on {existing.published_at:%Y-%m-%d} with another "
                               f"text (sha256 {existing.sha256[:12]}…): publish the new text as a new version")
            if effective_at is not None and effective_at != existing.effective_at:
                raise AupError(f"version {version} is already in effect from {existing.effective_at:%Y-%m-%d %H:%M} "
                               "UTC: a published version's date cannot change")
            return existing, False
        when = now if effective_at is None else effective_at.astimezone(dt.UTC)
        if when < now - dt.timedelta(minutes=5):
            raise AupError(f"effective date {when:%Y-%m-%d %H:%M} UTC is in the past: users would have less than "
                           "the grace period to accept it (give a future date, or none for now)")
        row = VersionRow(version=version, sha256=digest, text=text, effective_at=when, published_at=now,
                         published_by=by.strip())
        try:
            details = {"sha256": digest, "effective_at": when.isoformat(timespec="seconds"), "characters": len(text)}
            with self.directory.audited_change(PUBLISHED, by=by, subject=version, reason=reason, details=details) as s:
                s.add(row)
        except IntegrityError:  # published by someone else meanwhile: decide again against theirs
            return self.publish(text, version, effective_at=effective_at, by=by, reason=reason)
        return _version(row), True

    def version(self, version: str) -> PolicyVersion | None:
        with Session(self.engine) as s:
            row = s.get(VersionRow, version)
            return None if row is None else _version(row)

    def versions(self) -> list[PolicyVersion]:
        """Every published version, oldest effective date first."""
        with Session(self.engine) as s:
            rows = s.scalars(select(VersionRow).order_by(VersionRow.effective_at, VersionRow.published_at))
            return [_version(r) for r in rows]

    def current(self, now: dt.datetime | None = None) -> PolicyVersion | None:
        """The version in effect at `now` (default: the directory's now): the latest effective date not after
        it (the later published of two with the same date); None before the first takes effect."""
        now = now or self.now()
        with Session(self.engine) as s:
            row = s.scalars(select(VersionRow).where(VersionRow.effective_at <= now)
                            .order_by(VersionRow.effective_at.desc(), VersionRow.published_at.desc()).limit(1)).first()
            return None if row is None else _version(row)

    def upcoming(self, now: dt.datetime | None = None) -> list[PolicyVersion]:
        now = now or self.now()
        return [v for v in self.versions() if v.effective_at > now]

    # -- acceptances ------------------------------------------------------------------------------

    def accept(self, address: str, version: str, *, sha256: str, client: str, by: str) -> tuple[Acceptance, bool]:
        """Record that `address` accepted `version`, whose text they were shown had `sha256`. Returns the
        acceptance and whether it is new (an earlier one is kept: its time is the proof).
        Raises AupError: unknown version, a hash that is not that version's (another text was shown), an
        account that is not active. AccountUnknown for no such account."""
        key = norm(address)
        v = self.version(version)
        if v is None:
            raise AupError(f"no acceptable use policy version {version!r}")
        if sha256 != v.sha256:
            raise AupError(f"the text shown was not version {version}'s: reload the page and read it again")
        info = self.directory.account(key)
        if info is None or not info.is_active:
            raise AupError(f"{key} is not an active account")
        earlier = self.acceptance(key, version)
        if earlier is not None:
            return earlier, False
        row = AcceptanceRow(account=key, version=version, sha256=v.sha256, accepted_at=self.now(),
                            client=client[:64] or "unknown")
        try:
            with self.directory.audited_change(ACCEPTED, by=by, subject=key, reason=f"version {version}",
                                               details={"version": version, "sha256": v.sha256,
                                                        "client": row.client}) as s:
                s.add(row)
        except IntegrityError:  # twice at once (a double click): the first one stands
            earlier = self.acceptance(key, version)
            if earlier is None:
                raise
            return earlier, False
        return _acceptance(row), True

    def acceptance(self, address: str, version: str) -> Acceptance | None:
        with Session(self.engine) as s:
            row = s.get(AcceptanceRow, (norm(address), version))
            return None if row is None else _acceptance(row)

    def acceptances(self, version: str) -> dict[str, Acceptance]:
        with Session(self.engine) as s:
            return {r.account: _acceptance(r)
                    for r in s.scalars(select(AcceptanceRow).where(AcceptanceRow.version == version))}

    def history(self, address: str) -> list[Acceptance]:
        """Every version `address` accepted, oldest first."""
        with Session(self.engine) as s:
            rows = s.scalars(select(AcceptanceRow).where(AcceptanceRow.account == norm(address))
                             .order_by(AcceptanceRow.accepted_at))
            return [_acceptance(r) for r in rows]

    # -- notices ----------------------------------------------------------------------------------

    def notices(self, version: str) -> dict[str, dt.datetime]:
        """account -> when the overdue notice for `version` was queued."""
        with Session(self.engine) as s:
            return {r.account: r.sent_at for r in s.scalars(select(NoticeRow).where(NoticeRow.version == version))}

    def record_notice(self, address: str, version: str, queue_id: str) -> None:
        key = norm(address)
        with self.directory.audited_change(NOTICE_SENT, by="aup", subject=key,
                                           reason=f"version {version} not accepted in time",
                                           details={"version": version, "queue_id": queue_id}) as s:
            s.add(NoticeRow(account=key, version=version, sent_at=self.now(), queue_id=queue_id))
