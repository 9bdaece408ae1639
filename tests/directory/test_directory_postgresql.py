"""The same directory and audit log on a real PostgreSQL server (a throwaway cluster on 127.0.0.1, started
by the `pg_url` fixture of conftest.py).

Skipped when the PostgreSQL server binaries or the psycopg driver are not installed.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mailbastion.core.ports import ResolutionKind
from mailbastion.directory import Directory
from mailbastion.lifecycle.audit_log import AuditLog

from pg_cluster import reset_postgresql as _reset

pytest.importorskip("psycopg")


def test_directory_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    _reset(pg_url)
    d = Directory.create(pg_url, recipient_map=tmp_path / "map.json")
    d.migrate()  # idempotent
    d.add_domain("example.org", by="admin")
    pw = d.add_account("Alice@example.org", None, "admin", "joiner")
    d.add_alias("info@example.org", "alice@example.org", by="admin")
    assert d.verify_password("alice@example.org", pw or "")
    assert d.resolve("alice+x@example.org").kind is ResolutionKind.LOCAL
    assert d.resolve("info@example.org").kind is ResolutionKind.ALIAS
    d.deactivate("alice@example.org", "hr", "leaver")
    assert d.resolve("alice@example.org").kind is ResolutionKind.UNKNOWN_USER
    info = d.account("alice@example.org")
    assert info is not None and info.deactivated_at is not None and info.deactivated_at.tzinfo is not None
    assert d.audit.verify().ok and d.audit.verify().count == 4


def test_audit_log_on_postgresql_concurrent_and_tampered(pg_url: str) -> None:
    _reset(pg_url)
    AuditLog(pg_url)
    errors: list[Exception] = []

    def writer(n: int) -> None:
        log = AuditLog(pg_url, migrate_schema=False)
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
    log = AuditLog(pg_url, migrate_schema=False)
    assert log.verify().ok and log.verify().count == 40
    with log.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE audit_events SET actor = 'x' WHERE seq = 7")
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 7
