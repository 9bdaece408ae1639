"""Alembic environment for the audit schema, run from `mailbastion.audit.database.migrate()`.

The caller hands over an open connection (in a write transaction) in `config.attributes["connection"]`;
the URL is only a fallback for running `alembic` by hand.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from mailbastion.audit.models import AuditBase

config = context.config
target_metadata = AuditBase.metadata
version_table = config.get_main_option("version_table") or "audit_alembic_version"


def _run(connection: object) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,  # type: ignore[arg-type]
                      version_table=version_table)
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
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///audit.db")
        with engine.begin() as conn:
            _run(conn)
