"""Directory revision 0003_audit_moves_out: an existing deployment's audit records leave directory.db for
the audit database, verbatim, so the chain, its head and the anchors kept of it stay valid.

An "old deployment" is made the way the old code left it: the directory schema at the revision before the
move, with records appended into its audit tables by the same chain code.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import Engine

from mailbastion.audit import AuditChainConflict, AuditLog
from mailbastion.audit.transfer import import_chain, moving_to
from mailbastion.cli import main_group
from mailbastion.config import load_settings
from mailbastion.directory import Directory, make_engine, migrate
from mailbastion.directory.database import alembic_config, current_revision

BEFORE = "0002_directory_generation"


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as con:
        return {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}


def _old_deployment(db: Path, records: int = 5) -> tuple[Engine, tuple[int, str]]:
    """directory.db as it was before the move: schema at BEFORE, a domain, and `records` audit records."""
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine, BEFORE)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO domains (name, created_at) VALUES ('example.org', '2026-01-01 00:00:00')")
    old = AuditLog(engine, migrate_schema=False)  # the tables have the same shape: the old code's records
    for i in range(1, records + 1):
        old.record("account.added", actor="admin", subject=f"u{i}@example.org", reason=f"joiner {i}")
    return engine, old.head()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "mailbastion.toml"
    path.write_text('[server]\ndata_dir = "."\n')
    return path


def test_records_move_verbatim_and_the_old_tables_go(config: Path, tmp_path: Path) -> None:
    engine, anchor = _old_deployment(tmp_path / "directory.db")
    before = AuditLog(engine, migrate_schema=False).events(limit=None)
    engine.dispose()

    d = Directory.from_settings(load_settings(config))  # the upgrade: migrations run at open

    assert current_revision(d.engine) == "0004_app_passwords"
    assert not {"audit_events", "audit_head"} & _tables(tmp_path / "directory.db")
    assert d.list_domains() == ["example.org"]
    moved = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    assert moved.events(limit=None) == before  # same seq, time, fields and hashes
    assert moved.verify(anchor=anchor).ok and moved.head() == anchor
    d.add_domain("example.net", by="admin")  # the chain goes on where it was
    assert moved.head()[0] == 6 and moved.verify(anchor=anchor).ok

    runner = CliRunner()
    out = runner.invoke(main_group, ["audit-log", "verify", "--anchor", f"{anchor[0]}:{anchor[1]}", "-c", str(config)])
    assert (out.exit_code, out.output) == (0, "audit log intact: 6 records\n")


def test_tampering_before_the_move_still_shows_after_it(config: Path, tmp_path: Path) -> None:
    engine, _ = _old_deployment(tmp_path / "directory.db")
    engine.dispose()
    with sqlite3.connect(tmp_path / "directory.db") as con:
        con.execute("UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 2")
    Directory.from_settings(load_settings(config))
    result = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}").verify()
    assert not result.ok and result.first_bad_seq == 2 and "altered" in result.problem


def test_removed_newest_records_before_the_move_still_show(config: Path, tmp_path: Path) -> None:
    engine, _ = _old_deployment(tmp_path / "directory.db")
    engine.dispose()
    with sqlite3.connect(tmp_path / "directory.db") as con:
        con.execute("DELETE FROM audit_events")  # every record gone, the head row left behind
    Directory.from_settings(load_settings(config))
    result = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}").verify()
    assert not result.ok and "removed" in result.problem


def test_an_interrupted_move_runs_again_without_duplicates(config: Path, tmp_path: Path) -> None:
    engine, anchor = _old_deployment(tmp_path / "directory.db")
    settings = load_settings(config)
    target = AuditLog(settings.audit_url)
    with engine.connect() as conn:  # the copy committed, then the process died before the drop
        assert import_chain(conn, target) == 5
    engine.dispose()
    assert {"audit_events"} <= _tables(tmp_path / "directory.db")

    Directory.from_settings(settings)

    assert not {"audit_events"} & _tables(tmp_path / "directory.db")
    assert target.verify(anchor=anchor).ok and target.verify().count == 5


def test_a_different_chain_in_the_audit_database_is_refused(config: Path, tmp_path: Path) -> None:
    engine, anchor = _old_deployment(tmp_path / "directory.db")
    engine.dispose()
    settings = load_settings(config)
    AuditLog(settings.audit_url).record("quarantine.release", actor="admin", subject="quarantine:x")

    with pytest.raises(AuditChainConflict, match="another record 1"):
        Directory.from_settings(settings)

    old = AuditLog(f"sqlite:///{tmp_path / 'directory.db'}", migrate_schema=False)
    assert old.verify(anchor=anchor).ok  # the directory database is left as it was
    assert current_revision(make_engine(settings.directory_url)) == BEFORE
    assert AuditLog(settings.audit_url).verify().count == 1


def test_records_without_a_destination_are_never_dropped(tmp_path: Path) -> None:
    engine, anchor = _old_deployment(tmp_path / "directory.db")
    with pytest.raises(RuntimeError, match="must move to the audit database"):
        migrate(engine)  # a bare migrate() does not know [audit] url
    assert current_revision(engine) == BEFORE
    assert AuditLog(engine, migrate_schema=False).verify(anchor=anchor).ok


def test_a_fresh_directory_drops_the_empty_tables(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'directory.db'}")
    migrate(engine)
    assert current_revision(engine) == "0004_app_passwords"
    assert not {"audit_events", "audit_head"} & _tables(tmp_path / "directory.db")


def test_one_database_keeps_its_tables(tmp_path: Path) -> None:
    engine, anchor = _old_deployment(tmp_path / "both.db")
    engine.dispose()
    url = f"sqlite:///{tmp_path / 'both.db'}"
    d = Directory(url, audit=url)
    assert {"audit_events", "audit_head", "audit_alembic_version"} <= _tables(tmp_path / "both.db")
    assert d.audit.verify(anchor=anchor).ok and d.audit.head() == anchor
    d.add_domain("example.net", by="admin")
    assert d.audit.head()[0] == 6 and d.audit.verify(anchor=anchor).ok


def test_downgrade_puts_the_records_back(config: Path, tmp_path: Path) -> None:
    engine, anchor = _old_deployment(tmp_path / "directory.db")
    engine.dispose()
    d = Directory.from_settings(load_settings(config))
    d.add_domain("example.net", by="admin")
    head = d.audit.head()
    cfg = alembic_config(d.engine)
    with moving_to(d.audit), d.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, BEFORE)
        conn.commit()
    assert current_revision(d.engine) == BEFORE
    back = AuditLog(d.engine, migrate_schema=False)
    assert back.head() == head and back.verify(anchor=anchor).ok and back.verify().count == 6
