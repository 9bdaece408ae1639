"""The MDA's in-memory directory (directory/cache.py) on SQLite and on PostgreSQL: it answers as the
database does, sees a change made through another Directory object within its check interval, and asks
the database nothing while nothing changed.

Time is driven by hand (a monotonic clock for the generation checks, a wall clock for leaver dates), so
"within half a second" is exact and no test waits on the real clock.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from alembic import command
from pg_cluster import reset_postgresql
from sqlalchemy import Engine, event, text

from mailbastion.core.address import parse_address
from mailbastion.core.ports import ResolutionKind
from mailbastion.directory import Directory
from mailbastion.directory.cache import DirectoryCache
from mailbastion.directory.database import alembic_config, current_revision, make_engine, migrate
from mailbastion.directory.snapshot import read_generation

START = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


@dataclass
class Clocks:
    mono: float = 1000.0
    wall: dt.datetime = START

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> dt.datetime:
        return self.wall


@dataclass
class Statements:
    """Every SQL statement an engine sends, as SQLAlchemy's `before_cursor_execute` event sees it."""

    seen: list[str] = field(default_factory=list)

    def __call__(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        self.seen.append(" ".join(statement.split()))

    def reset(self) -> list[str]:
        out, self.seen = self.seen, []
        return out


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'directory.db'}"
    pg: str = request.getfixturevalue("pg_url")
    reset_postgresql(pg)
    return pg


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def writer(url: str, clocks: Clocks) -> Directory:
    """Another process's view: the command line changing the directory."""
    d = Directory(url, clock=clocks.now)
    d.add_domain("example.org", by="admin")
    for user in ("alice", "bob", "carol"):
        d.add_account(f"{user}@example.org", None, by="admin")
    d.add_alias("sales@example.org", "alice@example.org", by="admin")
    d.add_alias("sales@example.org", "bob@example.org", by="admin")
    d.add_alias("team@example.org", "sales@example.org", by="admin")
    d.add_alias("partner@example.org", "someone@elsewhere.example", by="admin")
    d.set_quota("carol@example.org", 5000, by="admin")
    return d


@pytest.fixture
def cache(url: str, writer: Directory, clocks: Clocks) -> Iterator[DirectoryCache]:
    own = Directory(url, clock=clocks.now, migrate_schema=False)  # the MDA's own engine
    yield DirectoryCache(own, monotonic=clocks.monotonic)
    own.engine.dispose()


def kind(cache: DirectoryCache, address: str) -> ResolutionKind:
    return cache.resolve(parse_address(address)).kind


def test_answers_as_the_database_does(cache: DirectoryCache, writer: Directory) -> None:
    writer.deactivate("bob@example.org", by="hr", reason="leaver")
    cache.refresh(force=True)
    for address in ("alice@example.org", "Alice+news@EXAMPLE.org", "bob@example.org", "sales@example.org",
                    "team@example.org", "partner@example.org", "nobody@example.org", "x@elsewhere.example",
                    "carol@example.org"):
        mine, theirs = cache.resolve(address), writer.resolve(address)
        assert (mine.kind, mine.address, mine.targets) == (theirs.kind, theirs.address, theirs.targets), address
    assert cache.mailbox_quota("carol@example.org") == 5000 == writer.mailbox_quota("carol@example.org")
    assert cache.mailbox_quota("alice@example.org") is None and cache.mailbox_quota("nobody@example.org") is None
    assert cache.is_local_domain("EXAMPLE.org") and not cache.is_local_domain("elsewhere.example")


def test_deactivation_elsewhere_is_seen_within_the_check_interval(cache: DirectoryCache, writer: Directory,
                                                                  clocks: Clocks) -> None:
    assert kind(cache, "bob@example.org") is ResolutionKind.LOCAL
    writer.deactivate("bob@example.org", by="hr", reason="leaver")
    clocks.mono += cache.check_interval - 0.01
    assert kind(cache, "bob@example.org") is ResolutionKind.LOCAL  # not asked yet: the interval runs
    clocks.mono += 0.01
    assert kind(cache, "bob@example.org") is ResolutionKind.UNKNOWN_USER  # 0.5 s after the change at most
    assert [str(t) for t in cache.resolve("sales@example.org").targets] == ["alice@example.org"]
    assert cache.check_interval <= 0.5


def test_no_statement_while_nothing_changed(cache: DirectoryCache, writer: Directory, clocks: Clocks) -> None:
    statements = Statements()
    event.listen(cache.directory.engine, "before_cursor_execute", statements)
    loads = cache.loads
    for _ in range(200):  # the MDA's three questions per recipient
        assert kind(cache, "alice@example.org") is ResolutionKind.LOCAL
        assert cache.is_local_domain("example.org")
        assert cache.mailbox_quota("carol@example.org") == 5000
    assert statements.reset() == []
    clocks.mono += cache.check_interval  # the next question checks the generation: one small read
    assert kind(cache, "team@example.org") is ResolutionKind.ALIAS
    seen = [s for s in statements.reset() if s.upper() != "BEGIN"]  # SQLite's explicit BEGIN
    assert len(seen) == 1 and "directory_generation" in seen[0], seen
    assert cache.loads == loads  # nothing changed: nothing else was read
    writer.set_quota("carol@example.org", 7000, by="admin")
    clocks.mono += cache.check_interval
    assert cache.mailbox_quota("carol@example.org") == 7000 and cache.loads == loads + 1
    assert any("FROM accounts" in s for s in statements.reset())


def test_leaver_date_needs_no_refresh(cache: DirectoryCache, writer: Directory, clocks: Clocks) -> None:
    writer.deactivate("alice@example.org", by="hr", reason="leaves at noon", at=START + dt.timedelta(hours=3))
    clocks.mono += cache.check_interval
    assert kind(cache, "alice@example.org") is ResolutionKind.LOCAL  # still before noon
    statements = Statements()
    event.listen(cache.directory.engine, "before_cursor_execute", statements)
    loads = cache.loads
    clocks.wall = START + dt.timedelta(hours=3)  # noon: no database change at all
    assert kind(cache, "alice@example.org") is ResolutionKind.UNKNOWN_USER
    assert [str(t) for t in cache.resolve("team@example.org").targets] == ["bob@example.org"]
    # the refusal only made sure the snapshot is current (one read of the generation), nothing reloaded
    assert all("directory_generation" in s or s.upper() == "BEGIN" for s in statements.seen)
    assert cache.loads == loads


def test_a_refusal_is_never_answered_from_a_stale_snapshot(cache: DirectoryCache, writer: Directory) -> None:
    # 550 is final for the sender: an account made a moment ago (inside the check interval) is found.
    assert kind(cache, "dan@example.org") is ResolutionKind.UNKNOWN_USER
    writer.add_account("dan@example.org", None, by="admin")
    assert kind(cache, "dan@example.org") is ResolutionKind.LOCAL  # no clock moved


def test_resolve_from_memory_never_reads_and_never_refuses(cache: DirectoryCache, writer: Directory,
                                                           clocks: Clocks) -> None:
    """The MDA's RCPT on its event loop: a known account from memory with no statement; None (ask `resolve`)
    when a generation check is due, for a refusal, and so for a leaver the moment their date passes."""
    statements = Statements()
    event.listen(cache.directory.engine, "before_cursor_execute", statements)
    found = cache.resolve_from_memory(parse_address("Alice+news@example.org"))
    assert found is not None and found.kind is ResolutionKind.LOCAL and str(found.address) == "alice@example.org"
    alias = cache.resolve_from_memory(parse_address("sales@example.org"))
    assert alias is not None and alias.kind is ResolutionKind.ALIAS
    assert cache.resolve_from_memory(parse_address("dan@example.org")) is None  # a refusal: resolve() decides
    assert statements.reset() == []
    writer.deactivate("bob@example.org", by="hr", reason="leaver")
    clocks.mono += cache.check_interval
    assert cache.resolve_from_memory(parse_address("bob@example.org")) is None  # a check is due: not from memory
    assert statements.reset() == []
    assert kind(cache, "bob@example.org") is ResolutionKind.UNKNOWN_USER
    writer.deactivate("carol@example.org", by="hr", reason="leaves at noon", at=START + dt.timedelta(hours=3))
    clocks.mono += cache.check_interval
    assert kind(cache, "carol@example.org") is ResolutionKind.LOCAL
    clocks.wall = START + dt.timedelta(hours=3)
    assert cache.resolve_from_memory(parse_address("carol@example.org")) is None  # gone at noon, no reload


def _generation(engine: Engine) -> int:
    with engine.connect() as conn:
        return read_generation(conn)


def test_every_change_bumps_the_generation_even_in_plain_sql(writer: Directory) -> None:
    """The triggers of migration 0002 on each table and each kind of change, outside our store."""
    engine = writer.engine
    statements = [
        "INSERT INTO domains (name, created_at) VALUES ('example.net', CURRENT_TIMESTAMP)",
        "UPDATE domains SET name = 'example.com' WHERE name = 'example.net'",
        "DELETE FROM domains WHERE name = 'example.com'",
        "UPDATE accounts SET quota_bytes = 1 WHERE address = 'alice@example.org'",
        "DELETE FROM accounts WHERE address = 'carol@example.org'",
        "INSERT INTO aliases (alias, target, created_at) VALUES ('x@example.org', 'alice@example.org', "
        "CURRENT_TIMESTAMP)",
        "UPDATE aliases SET target = 'bob@example.org' WHERE alias = 'x@example.org'",
        "DELETE FROM aliases WHERE alias = 'x@example.org'",
    ]
    for sql in statements:
        before = _generation(engine)
        with engine.begin() as conn:
            conn.execute(text(sql))
        assert _generation(engine) > before, sql
    before = _generation(engine)
    writer.add_account("dan@example.org", None, by="admin")  # and through the store, of course
    assert _generation(engine) > before


def test_migration_0002_goes_down_and_up(tmp_path: Path) -> None:
    # 0002 on its own (0003, the audit move, comes after it and has tests of its own in tests/audit).
    path = tmp_path / "d.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine, "0002_directory_generation")
    assert current_revision(engine) == "0002_directory_generation"
    cfg = alembic_config(engine)
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
        conn.commit()
    with sqlite3.connect(path) as con:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    assert "directory_generation" not in names and not any(n.startswith("trg_") for n in names)
    with engine.begin() as conn:  # 0001's schema still works without the counter
        conn.execute(text("INSERT INTO domains (name, created_at) VALUES ('example.org', CURRENT_TIMESTAMP)"))
    migrate(engine, "0002_directory_generation")
    assert current_revision(engine) == "0002_directory_generation" and _generation(engine) == 0
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO domains (name, created_at) VALUES ('example.net', CURRENT_TIMESTAMP)"))
    assert _generation(engine) == 1


def test_a_change_by_the_command_line_process_is_seen(tmp_path: Path) -> None:
    """Another process (the real CLI) deactivates; the cache, on the real clock, notices without a restart."""
    import subprocess
    import sys
    import time

    config = tmp_path / "mailbastion.toml"
    config.write_text('[server]\ndata_dir = "."\n')
    from mailbastion.config import load_settings

    cache = DirectoryCache.from_settings(load_settings(config))
    cache.directory.add_domain("example.org", by="admin")
    cache.directory.add_account("bob@example.org", None, by="admin")
    deadline = time.monotonic() + 30
    while kind(cache, "bob@example.org") is not ResolutionKind.LOCAL and time.monotonic() < deadline:
        time.sleep(0.05)
    res = subprocess.run([sys.executable, "-m", "mailbastion", "account", "deactivate", "bob@example.org",
                          "--reason", "leaver", "-c", str(config)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    while kind(cache, "bob@example.org") is ResolutionKind.LOCAL and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kind(cache, "bob@example.org") is ResolutionKind.UNKNOWN_USER
