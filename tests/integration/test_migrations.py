"""The Alembic migrations upgrade an empty database and downgrade again."""

from __future__ import annotations

from typing import Any

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


def test_upgrade_adopts_existing_verdicts(database_url):
    """Verdict rows written before the ledger existed get entries on upgrade."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from sqlalchemy import text

    from imageprov.ledger import verify_ledger

    store = Store.open(database_url, upgrade=False)
    store.upgrade("0002")
    with store.engine.begin() as connection:
        for image in ("ami-1", "ami-2"):
            connection.execute(text(
                "INSERT INTO verdicts (image, status, flags, reason, policy_hash, "
                "decided_at) VALUES (:image, 'approved', '[]', 'before the ledger', "
                ":hash, '2026-11-30 09:00:00+00:00')"), {"image": image, "hash": "d" * 64})
    store.upgrade()
    entries = list(store.ledger_entries())
    report = verify_ledger(store, Ed25519PrivateKey.generate().public_key())
    store.close()
    assert [entry.image for entry in entries] == ["ami-1", "ami-2"]
    assert [entry.verdict_id for entry in entries] == [1, 2]
    assert '"adopted":true' in entries[0].content
    assert report.problems == []


def _open_when_released(url: str, start: Any, results: Any) -> None:
    try:
        start.wait(timeout=60)
        Store.open(url).close()
    except Exception as error:  # noqa: BLE001 - the parent reports what failed
        results.put(f"{type(error).__name__}: {error}")
        return
    results.put("ok")


def test_first_use_by_processes_at_once(database_url):
    """Commands started together on a new database migrate it once, and all open it."""
    import multiprocessing

    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    processes = 6
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes)
    results = context.Queue()
    workers = [context.Process(target=_open_when_released, args=(database_url, start, results))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    assert outcomes == ["ok"] * processes
    store = Store.open(database_url, upgrade=False)
    with store.engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    store.close()
    head = ScriptDirectory.from_config(migrate.alembic_config(database_url)).get_current_head()
    assert versions == [(head,)]
