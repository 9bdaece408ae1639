"""Engines, transactions and schema migrations for the directory database (and the audit log in it).

SQLite is the default and PostgreSQL the scale-out choice; nothing here is specific to either except the
SQLite connection set-up below. The schema is owned by the Alembic migrations shipped in
`mailbastion/directory/migrations/`, run programmatically by `migrate()`: there is no `alembic.ini` to keep.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

# The directory shares its database with other stores (quarantine index, portal): its own version table
# keeps its Alembic history apart from theirs.
VERSION_TABLE = "directory_alembic_version"
SCRIPT_LOCATION = "mailbastion.directory:migrations"
_WRITE = "mailbastion_write"


def make_engine(url: str) -> Engine:
    """An engine for `url`. For SQLite: creates the parent folder, turns on WAL, foreign keys and a busy
    timeout, and starts write transactions with `BEGIN IMMEDIATE` (see `write_transaction`) so that two
    writers queue on the database lock instead of failing half-way."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        from mailbastion.private_files import create_private_file

        create_private_file(Path(parsed.database))  # 0600 from the start; SQLite gives -wal/-shm the same mode
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when a transaction begins.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        if parsed.database and parsed.database != ":memory:":
            cur.execute("PRAGMA journal_mode=WAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def as_engine(engine_or_url: Engine | str) -> Engine:
    return make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that intends to write. On SQLite it takes the write lock at BEGIN; on PostgreSQL it
    is an ordinary transaction (callers lock what they must, e.g. the audit log locks its table)."""
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.set_main_option("version_table", VERSION_TABLE)
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent). Safe to call at every start."""
    cfg = alembic_config(engine)
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        if conn.in_transaction():
            conn.commit()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()
