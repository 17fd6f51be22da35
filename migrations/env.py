"""Alembic environment for imageprov.

The CLI passes an open connection in `config.attributes["connection"]`; plain
`alembic` runs use `sqlalchemy.url`. On PostgreSQL the upgrade takes an advisory
lock, so that two replicas starting at once do not migrate the same database
together, and sets a lock timeout so that a migration waiting behind a long
transaction fails instead of blocking every reader.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

from imageprov.store.tables import Base

# An arbitrary constant that names imageprov's migration lock.
MIGRATION_LOCK_ID = 0x1A9E_0001

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        connection.execute(text("SET lock_timeout = '30s'"))
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"),
                      target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as owned:
        _run(owned)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
