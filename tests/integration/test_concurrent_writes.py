"""Stores on one database that write the same thing at once write it once.

Each store has its own engine, as separate processes do, on SQLite and on
PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from imageprov.model import Verdict, VerdictStatus
from imageprov.sources.aws.trail_documents import read_document
from imageprov.store import Store
from imageprov.store.tables import EventRow, LedgerEntryRow, LogFileRow
from tests.helpers import trail

WRITERS = 4
IMAGE = "arn:aws:ec2:us-east-1:111122223333:image/ami-0c0c000000000001"


def _at_once(stores: list[Store], write: Callable[[Store], Any]) -> list[Any]:
    """Run `write` on every store at the same moment; return results and errors."""
    barrier = threading.Barrier(len(stores))
    outcomes: list[Any] = []

    def run(store: Store) -> None:
        barrier.wait()
        try:
            outcomes.append(write(store))
        except Exception as error:  # noqa: BLE001 - the test reports what failed
            outcomes.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=run, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def _count(store: Store, column: Any) -> int:
    with store.session() as session:
        return session.scalar(select(func.count(column)))


def test_same_file_saved_at_once_stored_once(database_url):
    moment = datetime(2026, 11, 30, 8, tzinfo=UTC)
    record = trail.create_image(trail.user_identity("bob"), moment, "ami-0c0c000000000001")
    data = json.dumps({"Records": [record]}).encode()
    sha256 = hashlib.sha256(data).hexdigest()
    Store.open(database_url).close()
    stores = [Store.open(database_url) for _ in range(WRITERS)]

    outcomes = _at_once(stores, lambda store: store.save_documents(
        [(read_document(data, "same.json"), sha256)]))

    assert sorted(outcomes, key=str) == [0] * (WRITERS - 1) + [1]
    assert _count(stores[0], LogFileRow.id) == 1
    assert _count(stores[0], EventRow.id) == 1
    for store in stores:
        store.close()


def test_same_verdict_saved_at_once_appended_once(database_url):
    verdict = Verdict(image=IMAGE, status=VerdictStatus.FLAGGED, rule="test",
                      policy_hash="p1", decided_at=datetime(2026, 11, 30, 8, tzinfo=UTC),
                      reason="judged by one of several writers")
    Store.open(database_url).close()
    stores = [Store.open(database_url) for _ in range(WRITERS)]

    outcomes = _at_once(stores, lambda store: store.save_verdicts([verdict]))

    assert sorted(outcomes, key=str) == [0] * (WRITERS - 1) + [1]
    assert [v.status for v in stores[0].verdict_history(IMAGE)] == [VerdictStatus.FLAGGED]
    assert _count(stores[0], LedgerEntryRow.seq) == 1
    for store in stores:
        store.close()


def test_same_exception_recorded_at_once_appended_once(database_url):
    exception = {"image": IMAGE, "reason": "vendor image",
                 "expires": "2027-01-01T00:00:00+00:00"}
    Store.open(database_url).close()
    stores = [Store.open(database_url) for _ in range(WRITERS)]

    outcomes = _at_once(stores, lambda store: store.record_exceptions([exception], "p1"))

    assert sorted(outcomes, key=str) == [0] * (WRITERS - 1) + [1]
    assert _count(stores[0], LedgerEntryRow.seq) == 1
    for store in stores:
        store.close()


def test_same_policy_saved_at_once_stored_once(database_url):
    from imageprov.store.tables import PolicyRow

    Store.open(database_url).close()
    stores = [Store.open(database_url) for _ in range(WRITERS)]
    try:
        outcomes = _at_once(stores, lambda store: store.save_policy(
            "f" * 64, "policy.yaml", "builders: []\n"))
        assert outcomes == [None] * WRITERS
        assert _count(stores[0], PolicyRow.hash) == 1
    finally:
        for store in stores:
            store.close()


def _copy_of(record: dict[str, Any], location: str) -> tuple[Any, str]:
    """A one-record log file at `location`, with a hash of its own."""
    data = json.dumps({"Records": [record]}).encode()
    return read_document(data, location), hashlib.sha256(location.encode()).hexdigest()


def test_event_upsert_count_and_kept_copy(database_url):
    moment = datetime(2026, 11, 30, 8, tzinfo=UTC)
    record = trail.create_image(trail.user_identity("bob"), moment, "ami-0c0c000000000001")
    forged = json.loads(json.dumps(record))
    forged["sourceIPAddress"] = "198.51.100.7"
    store = Store.open(database_url)

    # New, then a copy that sorts later (kept out), then one that sorts first.
    assert store.save_documents([_copy_of(record, "c/b.json")]) == 1
    assert store.save_documents([_copy_of(forged, "c/c.json")]) == 0
    assert store.save_documents([_copy_of(forged, "c/a.json")]) == 1
    # Two copies in one batch: the first is written, and the second replaces it
    # because it sorts before it. A third that sorts after both changes nothing.
    other = trail.create_image(trail.user_identity("bob"), moment, "ami-0c0c000000000002")
    assert store.save_documents([_copy_of(other, "d/e.json"), _copy_of(other, "d/d.json"),
                                 _copy_of(other, "d/f.json")]) == 2

    with store.session() as session:
        rows = {row.target: (row.origin_location, row.source_ip)
                for row in session.execute(select(EventRow.target, EventRow.origin_location,
                                                  EventRow.source_ip))}
    assert rows == {"ami-0c0c000000000001": ("c/a.json", "198.51.100.7"),
                    "ami-0c0c000000000002": ("d/d.json", record["sourceIPAddress"])}
    store.close()


def test_event_time_text_on_sqlite(tmp_path):
    import sqlite3

    moment = datetime(2026, 11, 30, 8, tzinfo=UTC)
    record = trail.create_image(trail.user_identity("bob"), moment, "ami-0c0c000000000001")
    path = tmp_path / "imageprov.db"
    store = Store.open(f"sqlite:///{path}")
    store.save_documents([_copy_of(record, "t/a.json")])
    store.close()
    with sqlite3.connect(path) as connection:
        (stored,) = connection.execute("SELECT time FROM events").fetchone()
        (read_at,) = connection.execute("SELECT read_at FROM log_files").fetchone()
    # The format SQLAlchemy writes for every other time column on SQLite.
    assert stored == "2026-11-30 08:00:00.000000"
    assert len(read_at) == len(stored)


def test_sqlite_batch_error_raised_as_sqlalchemy_error(tmp_path):
    import pytest
    from sqlalchemy.exc import OperationalError

    moment = datetime(2026, 11, 30, 8, tzinfo=UTC)
    record = trail.create_image(trail.user_identity("bob"), moment, "ami-0c0c000000000001")
    path = tmp_path / "imageprov.db"
    Store.open(f"sqlite:///{path}").close()
    store = Store.open(f"sqlite:///file:{path}?mode=ro&uri=true", upgrade=False)
    try:
        with pytest.raises(OperationalError) as raised:
            store.save_documents([_copy_of(record, "ro/secret-location.json")])
    finally:
        store.close()
    assert "readonly database" in str(raised.value.orig)
    # The parameters, which hold record text, are not part of the message.
    assert "secret-location" not in str(raised.value)
