"""Alembic environment for the directory schema, run from `mailbastion.directory.database.migrate()`.

The caller hands over an open connection in `config.attributes["connection"]`; the URL is only a fallback
for running `alembic` by hand with `-x`-less configs.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from mailbastion.directory.models import Base

config = context.config
target_metadata = Base.metadata
version_table = config.get_main_option("version_table") or "directory_alembic_version"


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        version_table=version_table,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies tables instead
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      version_table=version_table, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///directory.db")
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
