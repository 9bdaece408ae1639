"""The portal's tables in the directory (migration 0005_portal): roles and TOTP audited, sessions read with
their account's state, enrolment links once, replayed TOTP steps refused, lockout after failures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mailbastion.directory.database import current_revision
from mailbastion.directory.errors import AccountUnknown, DirectoryError
from mailbastion.directory.models import AccountState
from mailbastion.directory.portal import PortalStore
from mailbastion.directory.store import Directory


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> tuple[PortalStore, Clock]:
    clock = Clock()
    d = Directory(f"sqlite:///{tmp_path}/dir.db", audit=f"sqlite:///{tmp_path}/audit.db", clock=clock)
    d.add_domain("example.org", by="t")
    d.add_account("ann@example.org", "x" * 14, by="t")
    return PortalStore(d), clock


def test_migration_head_and_roles(store: tuple[PortalStore, Clock]) -> None:
    s, _ = store
    assert current_revision(s.engine) == "0009_training"
    assert s.role("ann@example.org") == "user"
    s.set_role("Ann@Example.org", "administrator", by="cli:root", reason="IT")
    assert s.role("ann@example.org") == "administrator"
    event = s.directory.audit.events(limit=1)[0]
    assert (event.action, event.actor, event.subject, event.details["role"]) == (
        "portal.role_changed", "cli:root", "ann@example.org", "administrator")
    with pytest.raises(DirectoryError):
        s.set_role("ann@example.org", "root", by="t")
    with pytest.raises(AccountUnknown):
        s.set_role("nobody@example.org", "user", by="t")


def test_sessions_carry_the_accounts_state(store: tuple[PortalStore, Clock]) -> None:
    s, clock = store
    s.create_session("a" * 64, "ann@example.org", "user", "c", mfa_done=True, expires_at=clock.now + dt.timedelta(hours=1))
    assert s.session("a" * 64).account_active  # type: ignore[union-attr]
    s.directory.set_state("ann@example.org", AccountState.SUSPENDED, by="t")
    assert not s.session("a" * 64).account_active  # type: ignore[union-attr]
    s.directory.set_state("ann@example.org", AccountState.ACTIVE, by="t")
    s.directory.deactivate("ann@example.org", "t", "leaver", at=clock.now + dt.timedelta(minutes=5))
    assert s.session("a" * 64).account_active  # type: ignore[union-attr]
    clock.now += dt.timedelta(minutes=6)
    assert not s.session("a" * 64).account_active  # type: ignore[union-attr]
    assert s.overdue_leavers() == ["ann@example.org"]
    assert s.purge_sessions(idle=dt.timedelta(minutes=5)) == 1 and s.session("a" * 64) is None


def test_set_role_ends_sessions(store: tuple[PortalStore, Clock]) -> None:
    s, clock = store
    s.create_session("b" * 64, "ann@example.org", "user", "c", mfa_done=True, expires_at=clock.now + dt.timedelta(hours=1))
    s.set_role("ann@example.org", "helpdesk", by="t")
    assert s.session("b" * 64) is None


def test_totp_steps_are_spent_once(store: tuple[PortalStore, Clock]) -> None:
    s, _ = store
    s.begin_totp("ann@example.org", b"sealed")
    assert not s.facts("ann@example.org").totp_confirmed
    s.confirm_totp("ann@example.org", 100, by="portal:ann@example.org")
    assert s.facts("ann@example.org").totp_confirmed
    assert not s.use_totp_step("ann@example.org", 100)  # the enrolment's own code
    assert s.use_totp_step("ann@example.org", 101)
    assert not s.use_totp_step("ann@example.org", 101) and not s.use_totp_step("ann@example.org", 99)
    s.reset_totp("ann@example.org", by="t", reason="lost phone")
    assert s.facts("ann@example.org").totp_secret is None
    assert [e.action for e in s.directory.audit.events(limit=2)] == ["portal.totp_reset", "portal.totp_enrolled"]


def test_enrolment_links_work_once_and_expire(store: tuple[PortalStore, Clock]) -> None:
    s, clock = store
    s.create_enrol_token("ann@example.org", "t1" * 32, expires_at=clock.now + dt.timedelta(hours=1), by="t")
    s.create_enrol_token("ann@example.org", "t2" * 32, expires_at=clock.now + dt.timedelta(hours=1), by="t")
    assert s.enrol_token("t1" * 32) is None  # replaced by the newer link
    assert s.enrol_token("t2" * 32) is not None
    clock.now += dt.timedelta(hours=2)
    assert s.enrol_token("t2" * 32) is None and s.use_enrol_token("t2" * 32) is None
    s.create_enrol_token("ann@example.org", "t3" * 32, expires_at=clock.now + dt.timedelta(hours=1), by="t")
    assert s.use_enrol_token("t3" * 32) == "ann@example.org"
    assert s.use_enrol_token("t3" * 32) is None
    with pytest.raises(AccountUnknown):
        s.create_enrol_token("nobody@example.org", "t4" * 32, expires_at=clock.now, by="t")


def test_lockout(store: tuple[PortalStore, Clock]) -> None:
    s, clock = store
    window, lock = dt.timedelta(minutes=15), dt.timedelta(minutes=10)
    assert s.record_failure("ann@example.org", window=window, max_failures=3, lockout=lock) is None
    clock.now += dt.timedelta(minutes=20)  # outside the window: counting starts again
    assert s.record_failure("ann@example.org", window=window, max_failures=3, lockout=lock) is None
    assert s.record_failure("ann@example.org", window=window, max_failures=3, lockout=lock) is None
    until = s.record_failure("ann@example.org", window=window, max_failures=3, lockout=lock)
    assert until == clock.now + lock and s.facts("ann@example.org").locked_until == until
    assert s.directory.audit.events(limit=1)[0].action == "portal.lockout"
    assert s.record_failure("ghost@example.org", window=window, max_failures=1, lockout=lock) is None


def test_accounts_page_is_keyset_paginated(store: tuple[PortalStore, Clock]) -> None:
    s, _ = store
    for i in range(12):
        s.directory.add_account(f"u{i:02d}@example.org", "x" * 14, by="t")
    first = s.page_accounts(limit=5)
    second = s.page_accounts(after=first[-1].info.address, limit=5)
    assert [r.info.address for r in first] == ["ann@example.org", "u00@example.org", "u01@example.org",
                                               "u02@example.org", "u03@example.org"]
    assert second[0].info.address == "u04@example.org"
    assert s.count_accounts(query="u1") == 2 and s.count_accounts(query="%") == 0
    assert [r.info.address for r in s.page_accounts(query="U1")] == ["u10@example.org", "u11@example.org"]
