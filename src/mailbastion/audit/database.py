"""Engines, write transactions and schema migrations for the audit database.

The audit log has a database of its own (`[audit] url`, by default `audit.db` below data_dir), so that a
host that must never open the directory database (the DMZ gateway releasing quarantined mail) can still
write audit records. SQLite and PostgreSQL are supported; the schema is owned by the Alembic migrations
in `mailbastion/audit/migrations/`, run by `migrate()`, with a version table of its own so that the audit
log can share a database with the directory when an operator wants one transaction for both.

A SQLite file is created 0600: audit records name people and what was done to their accounts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

VERSION_TABLE = "audit_alembic_version"
SCRIPT_LOCATION = "mailbastion.audit:migrations"
# The execution option that asks for a write transaction. The directory's engines honour the same key, so
# an AuditLog may run on a directory engine (one database for both) and still take the write lock at BEGIN.
WRITE_OPTION = "mailbastion_write"
_MIGRATION_LOCK = 0x6D62_6175  # "mbau": a PostgreSQL advisory lock serializing concurrent migrations


def _sqlite_file(url: URL) -> Path | None:
    return Path(url.database) if url.database and url.database != ":memory:" else None


def make_engine(url: str) -> Engine:
    """An engine for `url`. For a SQLite file: creates it 0600 (and its folder 0700) when missing, turns on
    WAL, foreign keys and a busy timeout, and starts write transactions with `BEGIN IMMEDIATE` (see
    `write_transaction`) so that two writers queue on the database lock instead of failing half-way."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    path = _sqlite_file(parsed)
    if path is not None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # SQLite gives its -wal and -shm files the mode of the database file, so they are 0600 too. Only a
        # missing file is opened here: closing any descriptor of a file drops every POSIX lock this process
        # holds on it, so opening an audit database that another engine of this process already uses would
        # silently release that engine's SQLite locks (another process then checkpoints and removes the WAL
        # under it, and its later commits are lost).
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy, not the sqlite3 module, decides when to BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        if path is not None:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")

    return engine


def as_engine(engine_or_url: Engine | str) -> Engine:
    return make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that intends to write. On SQLite it takes the write lock at BEGIN; on PostgreSQL it
    is an ordinary transaction (the audit log locks its table itself)."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


def same_database(a: Engine | URL | str, b: Engine | URL | str) -> bool:
    """Do two engines (or URLs) reach the same database? SQLite files compare by real path (two in-memory
    databases are never the same unless they are one engine); servers by backend, host, port, database and
    user."""
    if isinstance(a, Engine) and a is b:
        return True
    ua, ub = (x.url if isinstance(x, Engine) else make_url(x) for x in (a, b))
    if ua.get_backend_name() != ub.get_backend_name():
        return False
    if ua.get_backend_name() == "sqlite":
        fa, fb = _sqlite_file(ua), _sqlite_file(ub)
        return fa is not None and fb is not None and os.path.realpath(fa) == os.path.realpath(fb)
    return (ua.host or "localhost", ua.port, ua.database, ua.username) == \
           (ub.host or "localhost", ub.port, ub.database, ub.username)


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.set_main_option("version_table", VERSION_TABLE)
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the audit schema to `revision` (idempotent, safe at every start). Runs in one write
    transaction, so two processes starting at once (the MDA and a CLI command) migrate one after the other."""
    cfg = alembic_config(engine)
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


__all__ = ["VERSION_TABLE", "WRITE_OPTION", "alembic_config", "as_engine", "current_revision", "make_engine",
           "migrate", "same_database", "write_transaction"]
