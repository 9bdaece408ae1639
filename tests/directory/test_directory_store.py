"""The directory store on a real SQLite file: domains, accounts, states, aliases, passwords, resolution."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from mailbastion.core.address import AddressError, parse_address
from mailbastion.core.ports import ResolutionKind
from mailbastion.directory import (
    AccountExists,
    AccountState,
    AccountUnknown,
    Directory,
    DomainExists,
    DomainUnknown,
    PasswordTooWeak,
)
from mailbastion.directory.database import VERSION_TABLE, current_revision


@pytest.fixture
def directory(tmp_path: Path) -> Directory:
    d = Directory.create(f"sqlite:///{tmp_path / 'dir.db'}", recipient_map=tmp_path / "map.json")
    d.add_domain("Example.org", by="admin")
    return d


def test_migrations_create_schema_and_are_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    d = Directory.create(url)
    d.migrate()
    assert current_revision(d.engine) == "0011_webauthn"
    tables = {r[0] for r in sqlite3.connect(tmp_path / "m.db").execute("select name from sqlite_master")}
    assert {"domains", "accounts", "aliases", "audit_events", "audit_head", "directory_generation",
            VERSION_TABLE} <= tables


def test_domains(directory: Directory) -> None:
    assert directory.list_domains() == ["example.org"]
    assert directory.is_local_domain("EXAMPLE.ORG")
    with pytest.raises(DomainExists):
        directory.add_domain("example.org", by="admin")
    with pytest.raises(AddressError):
        directory.add_domain("[127.0.0.1]", by="admin")
    with pytest.raises(AddressError):
        directory.add_domain("no_such..domain", by="admin")


def test_add_account_generates_password_and_never_stores_it(directory: Directory, tmp_path: Path) -> None:
    pw = directory.add_account("Alice@Example.org", None, "admin", "joiner HR-1")
    assert pw is not None and len(pw) >= 20
    assert directory.verify_password("alice@example.org", pw)
    assert not directory.verify_password("alice@example.org", pw + "x")
    raw = (tmp_path / "dir.db").read_bytes()
    assert pw.encode() not in raw
    (stored,) = sqlite3.connect(tmp_path / "dir.db").execute("select password_hash from accounts").fetchone()
    assert stored.startswith("$argon2id$")
    assert pw not in json.dumps([e.details for e in directory.audit.events()])


def test_chosen_password(directory: Directory) -> None:
    assert directory.add_account("bob@example.org", "correct horse battery", "admin") is None
    assert directory.verify_password("BOB@example.org", "correct horse battery")
    with pytest.raises(PasswordTooWeak):
        directory.add_account("carol@example.org", "short", "admin")


def test_add_account_refusals(directory: Directory) -> None:
    directory.add_account("alice@example.org", None, "admin")
    with pytest.raises(AccountExists):
        directory.add_account("ALICE@example.org", None, "admin")
    with pytest.raises(DomainUnknown):
        directory.add_account("x@other.org", None, "admin")
    with pytest.raises(ValueError):
        directory.add_account("y@example.org", None, "")  # an actor is required


def test_resolve(directory: Directory) -> None:
    directory.add_account("alice@example.org", None, "admin")
    directory.add_account("bob@example.org", None, "admin")
    directory.add_alias("team@example.org", "alice@example.org", by="admin")
    directory.add_alias("team@example.org", "bob@example.org", by="admin")
    directory.add_alias("ext@example.org", "someone@remote.net", by="admin")
    r = directory.resolve(parse_address("Alice+news@EXAMPLE.org"))
    assert r.kind is ResolutionKind.LOCAL and str(r.address) == "alice@example.org"
    r = directory.resolve("team+x@example.org")
    assert r.kind is ResolutionKind.ALIAS
    assert [str(t) for t in r.targets] == ["alice@example.org", "bob@example.org"]
    assert [str(t) for t in directory.resolve("ext@example.org").targets] == ["someone@remote.net"]
    assert directory.resolve("nobody@example.org").kind is ResolutionKind.UNKNOWN_USER
    assert directory.resolve("alice@elsewhere.org").kind is ResolutionKind.UNKNOWN_DOMAIN
    with pytest.raises(AccountUnknown):
        directory.add_alias("x@example.org", "typo@example.org", by="admin")
    with pytest.raises(AccountExists):
        directory.add_alias("alice@example.org", "bob@example.org", by="admin")


def test_deactivated_account_neither_receives_nor_logs_in(directory: Directory) -> None:
    pw = directory.add_account("alice@example.org", None, "admin")
    directory.add_alias("info@example.org", "alice@example.org", by="admin")
    directory.deactivate("alice@example.org", "admin", "leaver 2026-11")
    info = directory.account("alice@example.org")
    assert info is not None and info.state is AccountState.LEFT and info.deactivated_at is not None
    assert directory.resolve("alice@example.org").kind is ResolutionKind.UNKNOWN_USER
    assert directory.resolve("info@example.org").kind is ResolutionKind.UNKNOWN_USER  # alias left empty
    assert not directory.verify_password("alice@example.org", pw or "")
    directory.set_state("alice@example.org", AccountState.ACTIVE, "admin", "back")
    assert directory.resolve("alice@example.org").kind is ResolutionKind.LOCAL


def test_an_unknown_account_costs_a_real_argon2_check_and_never_matches() -> None:
    from argon2 import extract_parameters

    from mailbastion.directory import passwords

    real = passwords.hash_password("correct horse battery")
    assert extract_parameters(passwords._DUMMY) == extract_parameters(real)  # the same work as a real hash
    assert passwords._DUMMY != real and passwords._DUMMY.startswith("$argon2id$")
    for attempt in ("", "correct horse battery", passwords._DUMMY):
        assert not passwords.verify(None, attempt) and not passwords.verify("", attempt)
    assert passwords.verify(real, "correct horse battery")


def test_scheduled_deactivation(tmp_path: Path) -> None:
    now = [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)]
    d = Directory.create(f"sqlite:///{tmp_path / 'd.db'}", clock=lambda: now[0])
    d.add_domain("example.org", by="admin")
    d.add_account("alice@example.org", None, "admin")
    d.deactivate("alice@example.org", "hr", "leaver", at=now[0] + dt.timedelta(days=30))
    assert d.is_active("alice@example.org")
    now[0] += dt.timedelta(days=31)
    assert not d.is_active("alice@example.org")  # cut off on the date, before the job runs
    assert d.deactivate_due() == ["alice@example.org"]
    assert d.account("alice@example.org").state is AccountState.LEFT  # type: ignore[union-attr]


def test_every_change_is_audited(directory: Directory) -> None:
    directory.add_account("alice@example.org", None, "admin", "joiner")
    directory.add_alias("info@example.org", "alice@example.org", by="admin")
    directory.deactivate("alice@example.org", "hr", "leaver")
    actions = [e.action for e in directory.audit.events(newest_first=False)]
    assert actions == ["domain.added", "account.added", "alias.added", "account.state_changed"]
    last = directory.audit.events(limit=1)[0]
    assert (last.actor, last.subject, last.reason) == ("hr", "alice@example.org", "leaver")
    assert directory.audit.verify().ok


def test_failed_change_is_neither_applied_nor_audited(directory: Directory) -> None:
    before = directory.audit.head()
    with pytest.raises(DomainExists):
        directory.add_domain("example.org", by="admin")
    assert directory.audit.head() == before


def test_audited_change_records_its_change_and_leaves_the_map_and_generation_alone(directory: Directory,
                                                                                   tmp_path: Path) -> None:
    from sqlalchemy import text

    from mailbastion.directory.sending import SendingHoldRow

    def generation() -> int:
        with directory.engine.connect() as conn:
            return int(conn.execute(text("SELECT generation FROM directory_generation")).scalar_one())

    (tmp_path / "map.json").unlink()  # written by add_domain; audited_change must not write it again
    before = generation()
    with directory.audited_change("test.held", by=" admin ", subject="a@example.org", reason="why",
                                  details={"n": 1}) as s:
        s.add(SendingHoldRow(account="a@example.org", reason="why", since=directory.now(), suspended_by="admin"))
    last = directory.audit.events(limit=1)[0]
    assert (last.action, last.actor, last.subject, last.reason, last.details) == (
        "test.held", "admin", "a@example.org", "why", {"n": 1})
    assert generation() == before and not (tmp_path / "map.json").exists()

    head, ran = directory.audit.head(), []
    with pytest.raises(ValueError, match="actor"):  # refused before the session opens
        with directory.audited_change("test.held", by=" ", subject="b@example.org", reason="") as s:
            ran.append(s)
    with pytest.raises(KeyError):  # the change's own refusal: nothing written, nothing recorded
        with directory.audited_change("test.held", by="admin", subject="b@example.org", reason="") as s:
            s.add(SendingHoldRow(account="b@example.org", reason="", since=directory.now(), suspended_by="admin"))
            raise KeyError("refused")
    assert ran == [] and directory.audit.head() == head
    with directory.engine.connect() as conn:
        assert conn.execute(text("SELECT account FROM sending_holds")).scalars().all() == ["a@example.org"]


def test_list_accounts(directory: Directory) -> None:
    directory.add_account("b@example.org", None, "admin")
    directory.add_account("a@example.org", None, "admin", state=AccountState.PENDING)
    assert [a.address for a in directory.list_accounts()] == ["a@example.org", "b@example.org"]
    assert [a.address for a in directory.list_accounts(state=AccountState.PENDING)] == ["a@example.org"]
    assert not directory.is_active("a@example.org")


def test_dead_aliases_follow_the_leaver_date_and_alias_add_refuses_them(tmp_path: Path) -> None:
    from mailbastion.directory import AccountDisabled

    now = [dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)]
    d = Directory(f"sqlite:///{tmp_path / 'd.db'}", clock=lambda: now[0])
    d.add_domain("example.org", by="admin")
    d.add_account("alice@example.org", None, by="admin")
    d.add_alias("sales@example.org", "alice@example.org", by="admin")
    d.add_alias("sales@example.org", "partner@remote.example", by="admin")  # remote targets are not judged
    d.deactivate("alice@example.org", by="hr", reason="leaver", at=now[0] + dt.timedelta(days=1))
    assert d.dead_aliases() == []
    now[0] += dt.timedelta(days=1)  # the leaver date passes; no job has run yet
    [dead] = d.dead_aliases()
    assert (dead.alias, dead.target, dead.why) == ("sales@example.org", "alice@example.org", "left 2026-12-02 09:00")
    with pytest.raises(AccountDisabled, match=r"alice\+x@example.org cannot receive mail \(left 2026-12-02"):
        d.add_alias("info@example.org", "alice+x@example.org", by="admin")
    assert d.dead_aliases(domain="example.net") == []


def test_a_commit_that_fails_after_a_separate_audit_record_is_said_so(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit log in its own database: the record commits apart before the directory's commit; when that
    commit fails, `change.not_committed` follows it (for `_change` and `audited_change`, one code path)."""
    import contextlib

    from mailbastion.directory import store as store_module
    from mailbastion.directory.sending import SendingHoldRow

    d = Directory(f"sqlite:///{tmp_path / 'd.db'}", audit=f"sqlite:///{tmp_path / 'audit.db'}")
    d.add_domain("example.org", by="admin")
    real = store_module.write_transaction

    @contextlib.contextmanager
    def failing_commit(engine):  # type: ignore[no-untyped-def]
        with real(engine) as conn:
            yield conn
            raise OSError("disk gone at commit")  # rolls the directory's transaction back

    monkeypatch.setattr(store_module, "write_transaction", failing_commit)
    with pytest.raises(OSError, match="disk gone"):
        with d.audited_change("test.held", by="admin", subject="a@example.org") as s:
            s.add(SendingHoldRow(account="a@example.org", reason="", since=d.now(), suspended_by="admin"))
    with pytest.raises(OSError, match="disk gone"):
        d.add_account("b@example.org", None, by="admin")
    monkeypatch.setattr(store_module, "write_transaction", real)
    actions = [e.action for e in reversed(d.audit.events(limit=4))]
    assert actions == ["test.held", "change.not_committed", "account.added", "change.not_committed"], actions
    assert d.list_accounts() == []
