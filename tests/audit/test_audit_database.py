"""The audit database: which URLs name the same database, and its own schema history."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from mailbastion.audit import AuditLog
from mailbastion.audit.database import VERSION_TABLE, current_revision, make_engine, same_database


def test_same_database(tmp_path: Path) -> None:
    a = f"sqlite:///{tmp_path / 'a.db'}"
    (tmp_path / "link").symlink_to(tmp_path)
    assert same_database(a, f"sqlite:///{tmp_path / 'link' / 'a.db'}")
    assert not same_database(a, f"sqlite:///{tmp_path / 'b.db'}")
    assert not same_database("sqlite://", "sqlite://")  # two in-memory databases
    engine = make_engine("sqlite://")
    assert same_database(engine, engine)
    pg = "postgresql+psycopg://mb@db.example:5432/mail"
    assert same_database(pg, "postgresql+psycopg2://mb:secret@db.example:5432/mail")
    assert not same_database(pg, "postgresql+psycopg://mb@db.example:5432/audit")
    assert not same_database(pg, a)


def test_schema_is_versioned_apart_and_idempotent(tmp_path: Path) -> None:
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    log.migrate()
    assert current_revision(log.engine) == "audit_0001"
    with sqlite3.connect(tmp_path / "audit.db") as con:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
    assert tables == {"audit_events", "audit_head", VERSION_TABLE}


def test_processes_opening_a_new_audit_database_at_once(tmp_path: Path) -> None:
    # The MDA and a CLI command may both be first: their migrations queue on the write lock.
    code = ("import sys; from mailbastion.audit import AuditLog\n"
            "AuditLog(sys.argv[1]).record('test.event', actor='p', subject='s')\n")
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    result = AuditLog(url).verify()
    assert result.ok and result.count == 3


def test_public_surface() -> None:
    import mailbastion.audit as audit

    assert set(audit.__all__) == {"GENESIS", "NOT_COMMITTED", "AuditChainConflict", "AuditEvent", "AuditLog",
                                  "AuditReceipt", "VerifyResult", "canonical_details", "record_hash"}
    for name in audit.__all__:
        assert getattr(audit, name) is not None


def test_the_chain_alone_loads_no_database_code() -> None:
    code = ("import sys; from mailbastion.audit.chain import walk, record_hash; "
            "bad = [m for m in ('sqlalchemy', 'alembic', 'mailbastion.audit.log') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
