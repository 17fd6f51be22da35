"""Run the Alembic migrations that ship with imageprov."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection


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


def downgrade(connection: Connection, url: str, revision: str) -> None:
    """Downgrade the database behind `connection` to `revision`."""
    command.downgrade(alembic_config(url, connection), revision)
