"""Locks that make transactions which check and then write take turns."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def lock_for_write(session: Session, key: int) -> None:
    """Make the rest of the session's transaction wait for other writers.

    On PostgreSQL this takes the transaction advisory lock `key`. SQLite has no
    named locks, and pysqlite opens a transaction only at the first INSERT, UPDATE,
    DELETE or REPLACE, so a SELECT that checks what is stored could race another
    process's insert. There the transaction takes the database's write lock now
    with BEGIN IMMEDIATE, which serialises it with every writer whatever its key.
    A transaction that has written already holds that lock. Other databases are
    left as they are.
    """
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    elif dialect == "sqlite":
        driver_connection = connection.connection.dbapi_connection
        if not getattr(driver_connection, "in_transaction", False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
