"""Helpers every command uses: the database, the configuration and errors."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from imageprov.cli.render import safe_lines
from imageprov.config import database_url, load_config
from imageprov.errors import ImageprovError
from imageprov.store import Store, redact_url, scrub_url_secrets

# Messages are not wrapped: a path cut across two lines cannot be copied whole, and
# the terminal wraps long lines itself.
err = Console(stderr=True, soft_wrap=True)


def _database(database: str | None, config: Path | None) -> str:
    settings = None
    if config is not None:
        try:
            settings = load_config(config)
        except ImageprovError as error:
            raise _fail(error) from error
    return database_url(database, settings)


def _ledger_key(config: Path | None) -> Path | None:
    """Return the `ledger_key` of a configuration file, if one is given and sets it."""
    if config is None:
        return None
    try:
        return load_config(config).ledger_key
    except ImageprovError as error:
        raise _fail(error) from error


def _fail(error: Exception) -> typer.Exit:
    # Messages embed paths, command-line values and record text, any of which may
    # look like rich markup.
    err.print(f"[bold red]error:[/] {safe_lines(str(error))}", markup=True,
              highlight=False)
    return typer.Exit(code=2)


def _open_store(url: str, existing: bool = False) -> Store:
    """Open the database at `url`, creating and migrating it as needed.

    With `existing`, an SQLite file that does not exist is an error instead of a
    new empty database: commands that only read would otherwise report from it as
    if nothing had been recorded, which hides a mistyped path.
    """
    if url.rstrip("/") in ("sqlite:", "sqlite:/") or url.endswith(":memory:"):
        raise _fail(ImageprovError(
            f"{url} is an in-memory database, which keeps nothing after the command; "
            "give a file, such as sqlite:///imageprov.db"))
    missing = _missing_sqlite_file(url) if existing else None
    if missing is not None:
        raise _fail(ImageprovError(
            f"no database at {missing}: check --database or IMAGEPROV_DATABASE_URL, "
            "or run `imageprov scan` or `imageprov ingest` first to create it"))
    try:
        return Store.open(url)
    except Exception as error:  # noqa: BLE001 - any driver error means the same here
        # Driver messages can repeat the URL they were given, password included.
        detail = scrub_url_secrets(str(error), url)
        raise _fail(ImageprovError(f"cannot open database {redact_url(url)}: "
                                   f"{type(error).__name__}: {detail}")) from error


def _missing_sqlite_file(url: str) -> Path | None:
    """Return the path of an SQLite database file that does not exist or is empty,
    or None."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return None
    if parsed.query.get("uri") in ("true", "1"):
        # A URI filename names its file in another syntax; SQLite reports it.
        return None
    path = Path(parsed.database)
    try:
        # An empty file is no database yet: opening it would write the schema.
        return None if path.stat().st_size > 0 else path
    except OSError:
        return path
