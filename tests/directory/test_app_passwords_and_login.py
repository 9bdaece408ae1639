"""App passwords, `verify_login` and the login guard (throttle, lockout audit) on a real SQLite directory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mailbastion.directory import AccountDisabled, AccountState, AccountUnknown, Directory
from mailbastion.directory.app_passwords import (
    LENGTH,
    AppPasswordExists,
    AppPasswordUnknown,
    looks_like,
    normalize,
)
from mailbastion.directory.login import LOCKED_OUT, LoginGuard, LoginOutcome
from mailbastion.directory.throttle import LoginThrottle, client_key

PASSWORD = "correct horse battery staple"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def directory(tmp_path: Path) -> Directory:
    d = Directory.create(f"sqlite:///{tmp_path / 'dir.db'}", audit=f"sqlite:///{tmp_path / 'audit.db'}")
    d.add_domain("example.org", by="admin")
    d.add_account("alice@example.org", PASSWORD, by="admin")
    return d


def test_app_password_is_shown_once_stored_hashed_and_logs_in(directory: Directory, tmp_path: Path) -> None:
    created = directory.add_app_password("Alice@Example.org", "phone", by="admin", reason="new phone")
    secret = created.secret
    assert len(normalize(secret)) == LENGTH and looks_like(normalize(secret)) and secret.count("-") == 5
    assert normalize(secret) not in (tmp_path / "dir.db").read_bytes().decode("latin-1")  # only the hash is stored
    result = directory.verify_login("alice@example.org", secret)
    assert result.ok and result.via == "app-password" and result.device == "phone"
    typed = secret.upper().replace("-", " ")  # as a user types it from the screen
    assert directory.verify_login("alice@example.org", typed).ok
    assert directory.verify_login("alice@example.org", PASSWORD).via == "password"
    assert [i.name for i in directory.list_app_passwords("alice@example.org")] == ["phone"]
    assert directory.list_app_passwords("alice@example.org")[0].last_used_at is not None
    actions = [e.action for e in directory.audit.events(limit=5)]
    assert "app_password.created" in actions


def test_each_device_is_revoked_alone(directory: Directory) -> None:
    phone = directory.add_app_password("alice@example.org", "phone", by="admin").secret
    laptop = directory.add_app_password("alice@example.org", "laptop", by="admin").secret
    with pytest.raises(AppPasswordExists):
        directory.add_app_password("alice@example.org", "Phone", by="admin")
    assert directory.revoke_app_password("alice@example.org", "phone", by="admin", reason="lost") == ["phone"]
    assert directory.verify_login("alice@example.org", phone).outcome is LoginOutcome.BAD_CREDENTIALS
    assert directory.verify_login("alice@example.org", laptop).ok
    with pytest.raises(AppPasswordUnknown):
        directory.revoke_app_password("alice@example.org", "phone", by="admin")
    assert directory.revoke_app_password("alice@example.org", None, by="admin") == ["laptop"]
    assert directory.list_app_passwords("alice@example.org") == []
    assert [e.action for e in directory.audit.events(limit=2)] == ["app_password.revoked"] * 2


def test_names_and_accounts_are_checked(directory: Directory) -> None:
    with pytest.raises(ValueError, match="app password name"):
        directory.add_app_password("alice@example.org", "  ", by="admin")
    with pytest.raises(AccountUnknown):
        directory.add_app_password("nobody@example.org", "phone", by="admin")
    directory.set_state("alice@example.org", AccountState.SUSPENDED, by="admin", reason="hold")
    with pytest.raises(AccountDisabled):
        directory.add_app_password("alice@example.org", "phone", by="admin")


@pytest.mark.parametrize("state", [AccountState.PENDING, AccountState.SUSPENDED, AccountState.DISABLED])
def test_only_active_accounts_log_in(directory: Directory, state: AccountState) -> None:
    secret = directory.add_app_password("alice@example.org", "phone", by="admin").secret
    directory.set_state("alice@example.org", state, by="admin", reason="test")
    for credential in (PASSWORD, secret):
        result = directory.verify_login("alice@example.org", credential)
        assert not result.ok and result.outcome is LoginOutcome.INACTIVE and result.detail == str(state)


def test_leave_date_in_the_past_refuses_login(tmp_path: Path) -> None:
    now = [dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)]
    d = Directory.create(f"sqlite:///{tmp_path / 'dir.db'}", clock=lambda: now[0])
    d.add_domain("example.org", by="admin")
    d.add_account("bob@example.org", PASSWORD, by="admin")
    d.deactivate("bob@example.org", by="admin", reason="leaver", at=now[0] + dt.timedelta(hours=1))
    assert d.verify_login("bob@example.org", PASSWORD).ok
    now[0] += dt.timedelta(hours=2)
    result = d.verify_login("bob@example.org", PASSWORD)
    assert result.outcome is LoginOutcome.INACTIVE and result.detail.startswith("left 2026-12-01 13:00")


def test_wrong_and_unknown_are_told_apart_only_inside(directory: Directory) -> None:
    assert directory.verify_login("alice@example.org", "wrong").outcome is LoginOutcome.BAD_CREDENTIALS
    assert directory.verify_login("nobody@example.org", PASSWORD).outcome is LoginOutcome.UNKNOWN_ACCOUNT
    assert directory.verify_login("not an address", PASSWORD).outcome is LoginOutcome.UNKNOWN_ACCOUNT
    assert directory.verify_login("", "").outcome is LoginOutcome.UNKNOWN_ACCOUNT


def test_deleting_an_account_deletes_its_app_passwords_and_listeners_hear_of_it(directory: Directory) -> None:
    heard: list[str] = []
    directory.on_deactivated(heard.append)
    directory.on_deactivated(lambda _: 1 / 0)  # a failing listener does not undo the change
    directory.add_app_password("alice@example.org", "phone", by="admin")
    directory.set_state("alice@example.org", AccountState.SUSPENDED, by="admin", reason="hold")
    directory.set_state("alice@example.org", AccountState.ACTIVE, by="admin", reason="back")
    directory.set_state("alice@example.org", AccountState.DELETED, by="admin", reason="gone")
    assert heard == ["alice@example.org", "alice@example.org"]
    assert directory.list_app_passwords("alice@example.org") == []


# -- the throttle and the guard ---------------------------------------------------------------------------


def test_throttle_locks_the_account_then_backs_off() -> None:
    clock = Clock()
    t = LoginThrottle(max_failures_per_account=3, max_failures_per_client=100, window_seconds=60,
                      lockout_seconds=10, max_lockout_seconds=25, clock=clock)
    assert t.failed("a@x", "192.0.2.1") == [] and t.failed("a@x", "192.0.2.2") == []
    (lock,) = t.failed("a@x", "192.0.2.3")
    assert (lock.kind, lock.key, lock.seconds, lock.level) == ("account", "a@x", 10, 1)
    assert t.locked("a@x", "198.51.100.9") is not None  # any client: the account is locked
    assert t.locked("b@x", "192.0.2.1") is None
    clock.t += 11
    assert t.locked("a@x", "192.0.2.1") is None
    for _ in range(2):
        t.failed("a@x", "192.0.2.1")
    assert t.failed("a@x", "192.0.2.1")[0].seconds == 20  # doubled
    clock.t += 21
    for _ in range(2):
        t.failed("a@x", "192.0.2.1")
    assert t.failed("a@x", "192.0.2.1")[0].seconds == 25  # capped
    clock.t += 26
    t.succeeded("a@x", "192.0.2.1")
    for _ in range(2):
        t.failed("a@x", "192.0.2.1")
    assert t.failed("a@x", "192.0.2.1")[0].seconds == 10  # a success resets the back-off


def test_throttle_counts_clients_and_forgets_old_failures() -> None:
    clock = Clock()
    t = LoginThrottle(max_failures_per_account=100, max_failures_per_client=2, window_seconds=60,
                      lockout_seconds=10, clock=clock)
    t.failed("a@x", "2001:db8::1")
    clock.t += 61
    assert t.failed("b@x", "2001:db8::2") == []  # the first failure left the window
    (lock,) = t.failed("c@x", "2001:db8::3")  # same /64
    assert lock.kind == "client" and lock.key == "2001:db8::/64"
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"


def test_guard_refuses_a_locked_account_even_with_the_right_password_and_audits_the_lockout(
        directory: Directory) -> None:
    guard = LoginGuard(directory, LoginThrottle(max_failures_per_account=3, lockout_seconds=600))
    assert guard.attempt("alice@example.org", PASSWORD, client="192.0.2.1", service="imap").ok
    for _ in range(3):
        assert not guard.attempt("alice@example.org", "guess", client="192.0.2.66", service="imap").ok
    result = guard.attempt("alice@example.org", PASSWORD, client="192.0.2.1", service="imap")
    assert result.outcome is LoginOutcome.LOCKED_OUT
    (event,) = [e for e in directory.audit.events(limit=10) if e.action == LOCKED_OUT]
    assert event.subject == "alice@example.org" and event.actor == "imap:throttle"
    assert event.details["client"] == "192.0.2.66" and event.details["seconds"] == 600
    assert directory.audit.verify().ok
