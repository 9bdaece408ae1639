"""The directory records every change through the audit log, in the audit database of its own.

Two databases (the default: directory.db and audit.db): the record commits first, the change second, and a
change whose commit fails leaves a compensating record. One database ([audit] url = [directory] url): a
change and its record commit or roll back together.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from mailbastion.audit import NOT_COMMITTED, AuditLog
from mailbastion.config import load_settings
from mailbastion.directory import Directory, DomainExists


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as con:
        return {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}


def _sql(db: Path, statement: str) -> None:
    con = sqlite3.connect(db)
    with con:
        con.execute(statement)
    con.close()


@pytest.fixture
def apart(tmp_path: Path) -> Directory:
    return Directory(f"sqlite:///{tmp_path / 'directory.db'}", audit=f"sqlite:///{tmp_path / 'audit.db'}")


def test_changes_are_recorded_in_the_audit_database_only(apart: Directory, tmp_path: Path) -> None:
    apart.add_domain("example.org", by="admin", reason="new customer")
    apart.add_account("alice@example.org", "a long enough secret", by="hr", reason="joiner HR-1")
    assert not {"audit_events", "audit_head"} & _tables(tmp_path / "directory.db")
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    events = log.events(newest_first=False)
    assert [(e.action, e.actor, e.subject, e.reason) for e in events] == [
        ("domain.added", "admin", "example.org", "new customer"),
        ("account.added", "hr", "alice@example.org", "joiner HR-1"),
    ]
    assert log.verify().ok and apart.audit.verify().count == 2


def test_settings_put_the_audit_log_in_audit_db_created_0600(tmp_path: Path) -> None:
    config = tmp_path / "mailbastion.toml"
    config.write_text('[server]\ndata_dir = "data"\n')
    settings = load_settings(config)
    assert settings.audit_url == f"sqlite:///{tmp_path / 'data' / 'audit.db'}"
    d = Directory.from_settings(settings)
    d.add_domain("example.org", by="admin")
    audit_db = tmp_path / "data" / "audit.db"
    assert stat.S_IMODE(audit_db.stat().st_mode) == 0o600
    for extra in tmp_path.glob("data/audit.db-*"):  # SQLite's WAL and shared-memory files
        assert stat.S_IMODE(extra.stat().st_mode) == 0o600, extra
    assert [e.action for e in AuditLog(settings.audit_url).events()] == ["domain.added"]


def test_a_refused_change_leaves_no_record(apart: Directory) -> None:
    apart.add_domain("example.org", by="admin")
    with pytest.raises(DomainExists):
        apart.add_domain("example.org", by="admin")
    assert [e.action for e in apart.audit.events()] == ["domain.added"]


def test_a_change_whose_commit_fails_gets_a_compensating_record(apart: Directory) -> None:
    apart.add_domain("example.org", by="admin")

    def fail_commit(_conn: Any) -> None:
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    event.listen(apart.engine, "commit", fail_commit)
    try:
        with pytest.raises(OperationalError):
            apart.add_domain("example.net", by="admin", reason="second domain")
    finally:
        event.remove(apart.engine, "commit", fail_commit)
    assert apart.list_domains() == ["example.org"]  # the change did not happen ...
    newest, attempted = apart.audit.events(limit=2)
    assert (attempted.action, attempted.subject, attempted.reason) == ("domain.added", "example.net", "second domain")
    assert newest.action == NOT_COMMITTED and newest.subject == "example.net" and newest.actor == "admin"
    assert newest.details["of_seq"] == attempted.seq and "disk I/O error" in newest.reason  # ... and says so
    assert apart.audit.verify().ok


def test_no_change_when_the_audit_database_fails(apart: Directory, tmp_path: Path) -> None:
    apart.add_domain("example.org", by="admin")
    _sql(tmp_path / "audit.db", "DROP TABLE audit_head")  # the audit database is broken
    with pytest.raises(OperationalError):
        apart.add_domain("example.net", by="admin")
    assert apart.list_domains() == ["example.org"]


def test_one_database_one_transaction(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'both.db'}"
    d = Directory(url, audit=url)
    assert d.audit.engine is d.engine  # not two pools on one SQLite file
    d.add_domain("example.org", by="admin")
    assert {"domains", "audit_events", "audit_head", "audit_alembic_version"} <= _tables(tmp_path / "both.db")
    assert not (tmp_path / "audit.db").exists()
    _sql(tmp_path / "both.db", "DROP TABLE audit_head")
    with pytest.raises(OperationalError):
        d.add_domain("example.net", by="admin")  # the record fails, so the change rolls back with it
    assert d.list_domains() == ["example.org"]


def test_one_database_commit_failure_needs_no_compensation(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'both.db'}"
    d = Directory(url)  # no audit given: the directory's own database
    d.add_domain("example.org", by="admin")

    def fail_commit(_conn: Any) -> None:
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    event.listen(d.engine, "commit", fail_commit)
    try:
        with pytest.raises(OperationalError):
            d.add_domain("example.net", by="admin")
    finally:
        event.remove(d.engine, "commit", fail_commit)
    assert d.list_domains() == ["example.org"]
    assert [e.action for e in d.audit.events()] == ["domain.added"]  # the record rolled back with the change


def test_audit_database_is_not_loosened_when_it_exists(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    AuditLog(f"sqlite:///{db}").record("x.y", actor="a", subject="s")
    os.chmod(db, 0o640)  # an operator's choice (a log reader group) is theirs to make
    AuditLog(f"sqlite:///{db}").record("x.y", actor="a", subject="s")
    assert stat.S_IMODE(db.stat().st_mode) == 0o640
