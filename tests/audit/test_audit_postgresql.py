"""The audit log on a real PostgreSQL server: concurrent writers, tampering, a directory and an audit log in
two databases of one server, and the move of an old deployment's records from one to the other."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import inspect

from mailbastion.audit import AuditLog
from mailbastion.audit.database import current_revision
from mailbastion.directory import Directory, DomainExists, make_engine, migrate

PgDatabase = Callable[[str], str]


def test_concurrent_writers_keep_one_chain_and_tampering_shows(pg_database: PgDatabase) -> None:
    url = pg_database("audit")
    AuditLog(url)
    errors: list[Exception] = []

    def writer(n: int) -> None:
        log = AuditLog(url, migrate_schema=False)
        try:
            for i in range(10):
                log.record("test.event", actor=f"w{n}", subject=f"s{i}")
        except Exception as exc:  # noqa: BLE001 - any failure in a thread is reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    log = AuditLog(url, migrate_schema=False)
    assert log.verify().ok and log.verify().count == 40
    assert current_revision(log.engine) == "audit_0001"
    with log.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE audit_events SET actor = 'x' WHERE seq = 7")
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 7


def test_concurrent_first_opens_migrate_once(pg_database: PgDatabase) -> None:
    url = pg_database("audit")
    errors: list[Exception] = []

    def opener() -> None:
        try:
            AuditLog(url).record("test.event", actor="a", subject="s")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert AuditLog(url, migrate_schema=False).verify().count == 3


def test_directory_and_audit_log_in_two_databases(pg_database: PgDatabase, tmp_path: Path) -> None:
    directory_url, audit_url = pg_database("directory"), pg_database("audit")
    d = Directory(directory_url, audit=audit_url, recipient_map=tmp_path / "map.json")
    d.add_domain("example.org", by="admin")
    with pytest.raises(DomainExists):
        d.add_domain("example.org", by="admin")  # refused: no record
    d.add_account("alice@example.org", "a long enough secret", by="hr", reason="joiner")
    assert not {"audit_events", "audit_head"} & set(inspect(d.engine).get_table_names())
    log = AuditLog(audit_url, migrate_schema=False)
    assert [e.action for e in log.events(newest_first=False)] == ["domain.added", "account.added"]
    assert log.verify().ok


def test_old_deployment_moves_to_the_audit_database(pg_database: PgDatabase) -> None:
    directory_url, audit_url = pg_database("directory"), pg_database("audit")
    engine = make_engine(directory_url)
    migrate(engine, "0002_directory_generation")
    old = AuditLog(engine, migrate_schema=False)
    for i in range(4):
        old.record("account.added", actor="admin", subject=f"u{i}@example.org")
    anchor, before = old.head(), old.events(limit=None)
    engine.dispose()

    d = Directory(directory_url, audit=audit_url)

    assert not {"audit_events", "audit_head"} & set(inspect(d.engine).get_table_names())
    moved = AuditLog(audit_url, migrate_schema=False)
    assert moved.events(limit=None) == before and moved.verify(anchor=anchor).ok
    d.add_domain("example.org", by="admin")
    assert moved.head()[0] == 5 and moved.verify(anchor=anchor).ok


def test_one_database_for_both(pg_database: PgDatabase) -> None:
    url = pg_database("both")
    d = Directory(url, audit=url)
    d.add_domain("example.org", by="admin")
    tables = set(inspect(d.engine).get_table_names())
    assert {"domains", "audit_events", "audit_head", "audit_alembic_version", "directory_alembic_version"} <= tables
    assert d.audit.verify().ok and d.audit.verify().count == 1
