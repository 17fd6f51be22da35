"""Run the Alembic migrations that ship with imageprov."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine


def migrations_dir() -> Path:
    """Return the folder of Alembic scripts, in a wheel or in a source checkout."""
    packaged = Path(str(resources.files("imageprov"))) / "_migrations"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[3] / "migrations"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"no migrations folder at {packaged} or {checkout}")


def alembic_config(url: str, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # Percent signs in a URL would be read as interpolation by ConfigParser.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, url: str, revision: str = "head") -> None:
    """Upgrade the database behind `connection` to `revision`."""
    command.upgrade(alembic_config(url, connection), revision)


def upgrade_database(engine: Engine, url: str, revision: str = "head") -> None:
    """Upgrade the database behind `engine` to `revision`, once however many
    processes open a new database at the same time.

    On PostgreSQL the migration's transaction takes an advisory lock (`env.py`).
    SQLite has none, and pysqlite opens a transaction only before INSERT, UPDATE,
    DELETE or REPLACE, so two processes would each find no `alembic_version` table
    and both create the tables. There the upgrade runs inside BEGIN EXCLUSIVE: the
    other processes wait for it and then find the schema at `revision`.
    """
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            upgrade(connection, url, revision)
        return
    # A database at head needs no write lock, so commands that only read do not
    # wait for a writer or fail on a read-only file.
    if revision == "head":
        with engine.connect() as connection:
            if _at_head(connection, url):
                return
    with engine.connect() as connection:
        # NOTE: a process waits for the lock up to the busy timeout (30 s, set in
        # the store's connect hook), so a longer migration fails the others with
        # "database is locked".
        connection.exec_driver_sql("BEGIN EXCLUSIVE")
        upgrade(connection, url, revision)
        connection.commit()


def _at_head(connection: Connection, url: str) -> bool:
    current = set(MigrationContext.configure(connection).get_current_heads())
    return current == set(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def downgrade(connection: Connection, url: str, revision: str) -> None:
    """Downgrade the database behind `connection` to `revision`."""
    command.downgrade(alembic_config(url, connection), revision)
