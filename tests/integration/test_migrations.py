"""The Alembic migrations upgrade an empty database and downgrade again."""

from __future__ import annotations

from sqlalchemy import inspect

from imageprov.store import Store, migrate
from imageprov.store.tables import Base

TABLES = set(Base.metadata.tables)


def test_upgrade_creates_every_table(database_url):
    store = Store.open(database_url)
    assert TABLES <= set(inspect(store.engine).get_table_names())
    store.close()


def test_downgrade_then_upgrade_again(database_url):
    store = Store.open(database_url)
    with store.engine.begin() as connection:
        migrate.downgrade(connection, database_url, "base")
    assert not TABLES & set(inspect(store.engine).get_table_names())
    store.upgrade()
    assert TABLES <= set(inspect(store.engine).get_table_names())
    store.close()


def test_schema_matches_models(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store = Store.open(database_url)
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, Base.metadata)
    store.close()
    assert differences == []
