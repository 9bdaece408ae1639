"""The hash-chained audit log in its own SQLite file: appends, verification, tampering done with raw SQL."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from mailbastion.audit import AuditLog


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


def _filled(db: Path, n: int = 5) -> AuditLog:
    log = AuditLog(f"sqlite:///{db}")
    for i in range(1, n + 1):
        assert log.record("account.added", actor="admin", subject=f"u{i}@example.org", reason=f"joiner {i}",
                          details={"i": i}) == i
    return log


def _sql(db: Path, *statements: str) -> None:
    con = sqlite3.connect(db)
    with con:
        for s in statements:
            con.execute(s)
    con.close()


def test_intact_chain_verifies(db: Path) -> None:
    log = _filled(db)
    result = log.verify()
    assert result.ok and result.count == 5 and result.first_bad_seq is None
    events = log.events(limit=2)
    assert [e.seq for e in events] == [5, 4]
    assert events[0].details == {"i": 5} and events[0].prev_hash == events[1].hash
    assert log.head() == (5, events[0].hash)


def test_edited_record_is_found(db: Path) -> None:
    log = _filled(db)
    _sql(db, "UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 3")
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 3 and "altered" in result.problem


def test_edited_details_are_found(db: Path) -> None:
    log = _filled(db)
    _sql(db, """UPDATE audit_events SET details = '{"i":99}' WHERE seq = 2""")
    assert log.verify().first_bad_seq == 2


def test_deleted_record_is_found(db: Path) -> None:
    log = _filled(db)
    _sql(db, "DELETE FROM audit_events WHERE seq = 2")
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 2 and "missing" in result.problem


def test_deleted_and_renumbered_records_are_found(db: Path) -> None:
    log = _filled(db)
    _sql(db, "DELETE FROM audit_events WHERE seq = 2",
         "UPDATE audit_events SET seq = seq - 1 WHERE seq > 2")
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 2


def test_deleted_newest_records_are_found(db: Path) -> None:
    log = _filled(db)
    _sql(db, "DELETE FROM audit_events WHERE seq >= 4")
    result = log.verify()
    assert not result.ok and "removed" in result.problem


def test_reordered_records_are_found(db: Path) -> None:
    log = _filled(db)
    _sql(db, "UPDATE audit_events SET seq = 100 WHERE seq = 2",
         "UPDATE audit_events SET seq = 2 WHERE seq = 3",
         "UPDATE audit_events SET seq = 3 WHERE seq = 100")
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 2


def test_rewritten_chain_caught_by_external_anchor(db: Path) -> None:
    log = _filled(db, 3)
    anchor = log.head()
    assert log.verify(anchor=anchor).ok
    _sql(db, "DELETE FROM audit_events", "DELETE FROM audit_head")
    fresh = _filled(db, 3)  # a forger rebuilds a consistent chain ...
    assert fresh.verify().ok
    assert not fresh.verify(anchor=anchor).ok  # ... which disagrees with the hash kept elsewhere


def test_concurrent_writers_keep_one_chain(db: Path) -> None:
    AuditLog(f"sqlite:///{db}")
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        log = AuditLog(f"sqlite:///{db}", migrate_schema=False)
        try:
            for i in range(15):
                log.record("test.event", actor=f"w{n}", subject=f"s{i}")
        except Exception as exc:  # noqa: BLE001 - any failure in a thread is reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    result = AuditLog(f"sqlite:///{db}").verify()
    assert result.ok and result.count == 60


def test_record_requires_actor(db: Path) -> None:
    with pytest.raises(ValueError):
        AuditLog(f"sqlite:///{db}").record("x", actor="", subject="y")
