"""The store: every read and write the rest of imageprov makes to the database."""

from __future__ import annotations

import hashlib
import operator
import re
import sqlite3
import time
import logging
from contextlib import contextmanager
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    Engine,
    case,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, aliased, sessionmaker

from imageprov.model import (
    CreationEvent,
    EventEffect,
    Flag,
    Image,
    ImageKind,
    LogDocument,
    LogValidation,
    Platform,
    Principal,
    RecordOrigin,
    RecordProblem,
    Verdict,
    VerdictStatus,
)
from imageprov.store import ledger, migrate
from imageprov.store._locks import lock_for_write
from imageprov.store.tables import (
    ApiTokenRow,
    Base,
    CheckpointRow,
    CoverageRow,
    EventRow,
    ImageRow,
    LedgerEntryRow,
    LedgerHeadRow,
    LogFileRow,
    PolicyRow,
    QuarantineRow,
    VerdictRow,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiToken:
    """A bearer token of the gate, by name; the token text itself is never stored."""

    name: str
    sha256: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class TagMove:
    """One push that pointed a tag at a digest."""

    time: datetime
    digest: str | None
    actor: str
    event_id: str
    error_code: str | None


# CloudTrail delivers a file every few minutes per region; a longer silence is
# reported as a gap.
COVERAGE_JOIN = timedelta(minutes=15)


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _lock_key(name: str) -> int:
    """Return a signed 64-bit advisory-lock key for a name, stable across processes."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def redact_url(url: str) -> str:
    """Return a database URL with its password masked, wherever it is written.

    The password may sit in the user part, contain an unescaped `@`, or come as a
    `password` query parameter, so the text is masked by hand as well as parsed.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return "(unparsable database URL)"
    authority, slash, tail = rest.partition("/")
    if "@" in rest and "@" not in authority:
        # An unescaped `@` in a password pushes the host after a later `/`.
        authority, tail = rest.rsplit("@", 1)[0] + "@" + rest.rsplit("@", 1)[1], ""
        slash = ""
    if "@" in authority:
        user_info, host = authority.rsplit("@", 1)
        user = user_info.split(":", 1)[0]
        authority = f"{user}:***@{host}" if ":" in user_info else f"{user}@{host}"
    masked = f"{scheme}://{authority}{slash}{tail}"
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", masked)


def scrub_url_secrets(text: str, url: str) -> str:
    """Return `text` with every piece of the password in `url` masked.

    Driver messages quote what they parsed, such as a host that a badly written
    password leaked into, so each fragment of the password is removed.
    """
    secrets = re.findall(r"(?i)[?&]password=([^&]*)", url)
    _, _, rest = url.partition("://")
    if "@" in rest:
        user_info = rest.rsplit("@", 1)[0]
        if ":" in user_info:
            password = user_info.split(":", 1)[1]
            secrets.append(password)
            secrets.extend(re.split(r"[:@/]", password))
    text = text.replace(url, redact_url(url))
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def _now() -> datetime:
    return datetime.now(UTC)


# How long a new connection retries switching the file to WAL while another
# process has it locked.
_WAL_SWITCH_SECONDS = 30.0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # First, so that switching a new file to WAL waits for another process too.
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    _use_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch the database file to WAL, which it keeps once switched.

    When six processes opened a new file at once, the switch sometimes failed at
    once with "database is locked" instead of waiting for the busy timeout. So it is
    retried until it succeeds or `_WAL_SWITCH_SECONDS` pass.
    """
    deadline = time.monotonic() + _WAL_SWITCH_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


class Store:
    """A database of images, events and verdicts behind one SQLAlchemy engine."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # Statements of the batch writes compiled for SQLite, built on first use.
        self._sqlite_batches: dict[tuple[str, tuple[str, ...]], _SqliteBatch] = {}

    @classmethod
    def open(cls, url: str, upgrade: bool = True) -> Store:
        """Connect to `url` and, when `upgrade` is true, migrate it to the newest schema."""
        # orjson reads and writes the JSON columns several times faster than the
        # standard library, which is most of the cost of loading many rows.
        engine = create_engine(url, json_serializer=_json_text,
                               json_deserializer=orjson.loads)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine, url)
        if upgrade:
            store.upgrade()
        return store

    def upgrade(self, revision: str = "head") -> None:
        migrate.upgrade_database(self.engine, self.url, revision)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def display_url(self) -> str:
        """The database URL with any password hidden, for logs and messages."""
        return redact_url(self.url)

    def session(self) -> Session:
        return self._sessions()

    # Writes of log documents -------------------------------------------------

    def _insert_ignoring(self, table: Any, index: list[str]) -> Any:
        dialect = self.engine.dialect.name
        module = postgresql if dialect == "postgresql" else sqlite
        return module.insert(table).on_conflict_do_nothing(index_elements=index)

    def known_log_files(self, hashes: Iterable[str]) -> dict[str, str]:
        """Return the location stored for each of these content hashes already read."""
        wanted = list(set(hashes))
        found: dict[str, str] = {}
        with self.session() as session:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = session.execute(
                    select(LogFileRow.sha256, LogFileRow.location)
                    .where(LogFileRow.sha256.in_(chunk))
                )
                found.update((sha256, location) for sha256, location in rows)
        return found

    @contextmanager
    def claims(self) -> Iterator[Callable[[str], bool]]:
        """Yield a function that claims a unit of work by name for this process.

        On PostgreSQL a claim is a session advisory lock on a connection kept for the
        block, so another replica's claim of the same name fails until the block
        ends, and a replica that dies releases its claims with its connection. On
        SQLite, one process writes at a time and every claim succeeds.
        """
        if self.engine.dialect.name != "postgresql":
            yield lambda _name: True
            return
        connection = self.engine.connect()
        try:
            def claim(name: str) -> bool:
                taken = connection.execute(
                    sql_text("SELECT pg_try_advisory_lock(:key)"), {"key": _lock_key(name)}
                ).scalar()
                connection.commit()
                return bool(taken)

            yield claim
        finally:
            # Closing the connection ends its session and every lock it holds.
            connection.invalidate()
            connection.close()

    def known_locations(self, locations: Sequence[str]) -> set[str]:
        """Return which of these locations are stored as read log files."""
        unique = list(set(locations))
        found: set[str] = set()
        with self.session() as session:
            for start in range(0, len(unique), 500):
                found.update(session.scalars(select(LogFileRow.location).where(
                    LogFileRow.location.in_(unique[start : start + 500]))))
        return found

    def checkpoint(self, name: str) -> str | None:
        """Return the stored position of an incremental log source, if any."""
        with self.session() as session:
            row = session.get(CheckpointRow, name)
            return row.position if row else None

    def _write_checkpoints(self, session: Session, checkpoints: dict[str, str],
                           now: datetime) -> None:
        module = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        for name, position in checkpoints.items():
            statement = module.insert(CheckpointRow).values(
                name=name, position=position, updated_at=now)
            statement = statement.on_conflict_do_update(
                index_elements=["name"],
                set_={"position": statement.excluded.position,
                      "updated_at": statement.excluded.updated_at},
                # Positions only move forward, whatever order batches commit in.
                where=statement.excluded.position > CheckpointRow.position,
            )
            session.execute(statement)

    def save_documents(self, documents: Sequence[tuple[LogDocument, str]],
                       checkpoints: dict[str, str] | None = None) -> int:
        """Store read documents and their events in one transaction.

        A document whose content hash is stored already, or appears earlier in
        `documents`, adds no file row; its events are offered to the upsert, which
        keeps each from the copy whose location sorts first. An event already stored
        under the same key (the same eventID for the same account) is not added
        again, so reading a file twice changes nothing. Rows are written a table at a
        time for the whole batch, in the order of `documents`, except problems, which
        are written per document. A document of which nothing could be read has its
        problems stored but is not marked as read, so the next run reads it again.
        `checkpoints` maps incremental sources to the position they reached with
        these documents. They advance in the same transaction, so a crash never
        leaves a checkpoint past a file that was not stored.
        Returns the number of event rows written, new or moved to an earlier origin.
        """
        now = _now()
        with self.session() as session, session.begin():
            # The lock makes replicas write one batch at a time, so the check of
            # stored hashes below cannot race another replica's insert.
            lock_for_write(session, _lock_key("imageprov:save-documents"))
            if checkpoints:
                self._write_checkpoints(session, checkpoints, now)
            stored = self._stored_hashes(session, [sha256 for _, sha256 in documents])
            fresh: list[LogDocument] = []
            unread: list[LogDocument] = []
            copies: list[LogDocument] = []
            copy_hashes: list[str] = []
            file_values: list[dict[str, Any]] = []
            for document, sha256 in documents:
                if _unread(document):
                    # Not marked as read, so the file is read again next time, by a
                    # fixed release or after the file is repaired. Its problems are
                    # stored even where the same bytes were read under another name:
                    # an emptied `.json.gz` is a problem, an emptied `.json` is not.
                    unread.append(document)
                    continue
                if sha256 in stored:
                    # Another copy of stored content: its events still go to the
                    # upsert, which keeps them only where this copy sorts first.
                    copies.append(document)
                    copy_hashes.append(sha256)
                    continue
                stored.add(sha256)
                fresh.append(document)
                file_values.append({
                    "location": document.location, "sha256": sha256,
                    "shape": document.shape[:160], "records": document.records,
                    "image_events": len(document.events),
                    "errors": len(document.problems), "notices": document.notices,
                    "read_at": now, "content_sha256": document.content_sha256,
                })
            for document in unread:
                self._insert_problems(session, document.source, document.problems, now)
            if not fresh:
                written = self._write_event_values(session, [
                    _event_values(item, document.raw.get(item.key))
                    for document in copies for item in document.events])
                self._move_to_first_copy(session, copies, copy_hashes)
                return written

            # One statement for the batch: on SQLite, RETURNING in parameter order
            # would run one statement per file. The hash is unique, so the new ids
            # are read back by hash.
            self._insert_rows(session, LogFileRow, file_values)
            ids = self._file_ids(session, [value["sha256"] for value in file_values])
            coverage = [
                {"log_file_id": ids[value["sha256"]], "platform": document.platform,
                 "account": account, "region": region, "first": first, "last": last}
                for document, value in zip(fresh, file_values, strict=True)
                for account, region, first, last in document.span_times()
            ]
            if coverage:
                self._insert_rows(session, CoverageRow, coverage)

            events = [
                _event_values(item, document.raw.get(item.key))
                for document in (*fresh, *copies) for item in document.events
            ]
            new_events = self._write_event_values(session, events)
            read_whole = [document.location for document in fresh
                          if not any(problem.index < 0 for problem in document.problems)]
            for start in range(0, len(read_whole), 500):
                # A file that could not be read before and is read now is no longer
                # quarantined; problems with its records stay.
                session.execute(delete(QuarantineRow).where(
                    QuarantineRow.location.in_(read_whole[start:start + 500]),
                    QuarantineRow.record_index < 0))
            for document in fresh:
                self._insert_problems(session, document.source, document.problems, now)
            self._move_to_first_copy(session, copies, copy_hashes)
        return new_events

    @staticmethod
    def _move_to_first_copy(session: Session, copies: Sequence[LogDocument],
                            hashes: Sequence[str]) -> None:
        """Give each stored file, and the records of it in quarantine, the location of
        its copy that sorts first."""
        for document, sha256 in zip(copies, hashes, strict=True):
            stored = session.scalar(select(LogFileRow.location).where(
                LogFileRow.sha256 == sha256, LogFileRow.location > document.location))
            if stored is None:
                continue
            session.execute(update(LogFileRow).where(LogFileRow.sha256 == sha256)
                            .values(location=document.location))
            # A row already kept under the new location for the same record and
            # field wins, since the pair is unique.
            existing = aliased(QuarantineRow)
            session.execute(delete(QuarantineRow).where(
                QuarantineRow.location == stored,
                exists().where(existing.location == document.location,
                               existing.record_index == QuarantineRow.record_index,
                               existing.field == QuarantineRow.field)))
            session.execute(update(QuarantineRow)
                            .where(QuarantineRow.location == stored)
                            .values(location=document.location))

    @staticmethod
    def _file_ids(session: Session, hashes: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(hashes), 500):
            rows = session.execute(select(LogFileRow.sha256, LogFileRow.id).where(
                LogFileRow.sha256.in_(hashes[start:start + 500])))
            found.update((sha256, file_id) for sha256, file_id in rows)
        return found

    def _stored_hashes(self, session: Session, hashes: Sequence[str]) -> set[str]:
        wanted = list(set(hashes))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            found.update(
                session.scalars(select(LogFileRow.sha256).where(LogFileRow.sha256.in_(chunk)))
            )
        return found

    def _insert_events(
        self, session: Session, events: Sequence[CreationEvent], raw: dict[str, bytes]
    ) -> int:
        values = [_event_values(item, raw.get(item.key)) for item in events]
        return self._write_event_values(session, values)

    def _write_event_values(self, session: Session, values: list[dict[str, Any]]) -> int:
        if not values:
            return 0
        self._warn_of_conflicts(session, values)
        if self.engine.dialect.name == "sqlite":
            return self._upsert_events_sqlite(session, values)
        statement = _event_upsert(postgresql).returning(EventRow.key)

        # PostgreSQL rejects an upsert that meets the same key twice in one statement,
        # so the nth copy of a key goes in the nth statement. The statements run in
        # order, so the copies of each key are applied in the order given, as with one
        # statement per copy, and new rows are inserted in the order given.
        rounds: list[list[dict[str, Any]]] = []
        copies: dict[str, int] = {}
        for value in values:
            copy = copies.get(value["key"], 0)
            copies[value["key"]] = copy + 1
            if copy == len(rounds):
                rounds.append([])
            rounds[copy].append(value)

        connection = session.connection()
        return sum(len(connection.execute(statement, part).all()) for part in rounds)

    def _upsert_events_sqlite(self, session: Session, values: list[dict[str, Any]]) -> int:
        """Run the events upsert on SQLite once per row, in the order given.

        SQLite counts a row as changed when it is inserted or when the upsert
        replaces it, not when the WHERE clause keeps the stored copy, so the count is
        that of the rows written.
        """
        batch = self._sqlite_batch("events upsert", lambda: _event_upsert(sqlite),
                                   EventRow, _EVENT_COLUMNS)
        return batch.run(session, values)

    def _insert_rows(self, session: Session, row_class: type[Base],
                     values: list[dict[str, Any]]) -> None:
        """Insert rows that all set the same columns, as many rows in one call."""
        if self.engine.dialect.name != "sqlite":
            session.connection().execute(insert(row_class), values)
            return
        batch = self._sqlite_batch(f"insert into {row_class.__tablename__}",
                                   lambda: insert(row_class), row_class, tuple(values[0]))
        batch.run(session, values)

    def _sqlite_batch(self, name: str, build: Callable[[], Any], row_class: type[Base],
                      columns: tuple[str, ...]) -> _SqliteBatch:
        key = (name, columns)
        batch = self._sqlite_batches.get(key)
        if batch is None:
            batch = _SqliteBatch.compile(build(), row_class, columns, self.engine.dialect)
            self._sqlite_batches[key] = batch
        return batch

    @staticmethod
    def _warn_of_conflicts(session: Session, values: list[dict[str, Any]]) -> None:
        """Log each event whose new copy names another actor, address, agent, target,
        time or result than the stored one: a duplicate delivery repeats a record,
        so a differing copy was edited or forged."""
        by_key: dict[str, list[dict[str, Any]]] = {}
        for value in values:
            by_key.setdefault(value["key"], []).append(value)
        keys = list(by_key)
        stored_keys: set[str] = set()
        for start in range(0, len(keys), 500):
            rows = session.execute(
                select(EventRow.key, *(getattr(EventRow, name) for name in _COMPARED),
                       EventRow.origin_location, EventRow.origin_index)
                .where(EventRow.key.in_(keys[start:start + 500])))
            for row in rows:
                stored_keys.add(row.key)
                stored = tuple(getattr(row, name) for name in _COMPARED)
                for value in by_key[row.key]:
                    _warn_of_conflict(row.key, value, row.origin_location,
                                      row.origin_index, stored)
        # Copies that arrive in one batch, from one file or several, are compared
        # with the first of them when none is stored yet.
        for key, copies in by_key.items():
            if key in stored_keys:
                continue
            first = copies[0]
            for value in copies[1:]:
                _warn_of_conflict(key, value, first["origin_location"],
                                  first["origin_index"], _compared(first))

    def _insert_problems(
        self, session: Session, source: str, problems: Sequence[RecordProblem],
        now: datetime,
    ) -> None:
        if not problems:
            return
        # A detail may quote the bad value, and PostgreSQL text cannot hold a NUL.
        values = [
            {"source": source, "location": _printable(problem.location),
             "record_index": problem.index, "field": _printable(problem.field)[:256],
             "error": _printable(problem.detail), "quarantined_at": now}
            for problem in problems
        ]
        statement = self._insert_ignoring(
            QuarantineRow, ["location", "record_index", "field"]
        )
        session.connection().execute(statement, values)

    def record_problems(self, document: LogDocument) -> None:
        """Quarantine the problems of a file that could not be read at all."""
        with self.session() as session, session.begin():
            self._insert_problems(session, document.source, document.problems, _now())

    def save_events(self, events: Sequence[CreationEvent], raw: dict[str, bytes]) -> int:
        """Store events that arrived outside a log file (pushed notifications)."""
        with self.session() as session, session.begin():
            return self._insert_events(session, events, raw)

    # Images ------------------------------------------------------------------

    def save_images(self, images: Iterable[Image], seen_at: datetime | None = None) -> int:
        """Insert new images and refresh the fields of known ones; return the count.

        Every image given gets `last_seen = seen_at`. A known image is rewritten only
        when one of its fields changed, and the rest get their `last_seen` in one
        statement per chunk, so a cycle in which nothing changed writes one column.
        When a ref occurs twice in `images`, the later image wins.
        """
        seen_at = seen_at or _now()
        count = 0
        latest: dict[str, dict[str, Any]] = {}
        for image in images:
            count += 1
            latest[image.ref] = _image_values(image)
        with self.session() as session, session.begin():
            stored = self._stored_images(session, list(latest))
            new: list[dict[str, Any]] = []
            changed: list[dict[str, Any]] = []
            unchanged: list[int] = []
            for ref, values in latest.items():
                found = stored.get(ref)
                if found is None:
                    new.append({**values, "first_seen": seen_at, "last_seen": seen_at})
                elif found[1] != values:
                    changed.append({**values, "id": found[0], "last_seen": seen_at})
                else:
                    unchanged.append(found[0])
            if new:
                session.execute(insert(ImageRow), new)
            if changed:
                # A list of dicts that carry the primary key is a bulk UPDATE by id.
                session.execute(update(ImageRow), changed)
            _mark_seen(session, unchanged, seen_at)
        return count

    def record_listing(self, source: str, listed_at: datetime, images: int) -> None:
        """Record whether the complete listing of `source` at `listed_at` found no
        image, so that the images it reported before are gone.

        Only an empty listing is kept. A listing that found images marks them seen,
        and the rule by `last_seen` alone decides, which also holds when two
        listings of one source end out of order.
        """
        name = LISTING_PREFIX + source
        if len(name) > CheckpointRow.name.type.length:
            # A name too long for the column is not recorded, so the rule by
            # `last_seen` alone decides for this source.
            return
        with self.session() as session, session.begin():
            if images:
                session.execute(delete(CheckpointRow).where(CheckpointRow.name == name))
            else:
                self._write_checkpoints(session, {name: listed_at.isoformat()},
                                        listed_at)

    def keep_present(self, source: str, seen_at: datetime) -> int:
        """Mark every image of `source` that is not gone as seen at `seen_at`.

        Used after a listing of which some entries could not be read, so that no
        image of the source is taken for gone. Returns the number of images marked.
        """
        with self.session() as session, session.begin():
            present = _present(select(ImageRow.id).where(
                ImageRow.inventory_source == source))
            ids = list(session.scalars(present))
            _mark_seen(session, ids, seen_at)
        return len(ids)

    def _stored_images(self, session: Session,
                       refs: Sequence[str]) -> dict[str, tuple[int, dict[str, Any]]]:
        """Return the id and the `_image_values` fields of each stored image in `refs`."""
        columns = [ImageRow.id, *(getattr(ImageRow, name) for name in _IMAGE_FIELDS)]
        found: dict[str, tuple[int, dict[str, Any]]] = {}
        for start in range(0, len(refs), 500):
            query = select(*columns).where(ImageRow.ref.in_(refs[start : start + 500]))
            for row in session.execute(query):
                values = dict(zip(_IMAGE_FIELDS, row[1:], strict=True))
                found[values["ref"]] = (row[0], values)
        return found

    def images(self, include_gone: bool = False) -> list[Image]:
        """Return stored images in ref order.

        An image is gone when the last listing of its inventory source did not report
        it (a deregistered AMI, a deleted digest). Gone images are left out unless
        `include_gone` is true. A source that failed keeps its images, since its last listing
        that worked still reported them.
        """
        with self.session() as session:
            # Rows, not ORM objects: tens of thousands of images load several times
            # faster without the identity map.
            query = select(ImageRow.__table__).order_by(ImageRow.ref)
            if not include_gone:
                query = _present(query)
            return [_image_of(row) for row in session.execute(query)]

    def image(self, ref: str) -> Image | None:
        with self.session() as session:
            row = session.scalar(select(ImageRow).where(ImageRow.ref == ref))
            return _image_of(row) if row else None

    def find_images(self, text: str) -> list[Image]:
        """Return images whose ref, native id or digest equals `text`."""
        with self.session() as session:
            rows = session.scalars(
                select(ImageRow).where(
                    (ImageRow.ref == text) | (ImageRow.native_id == text)
                    | (ImageRow.digest == text)
                )
            )
            return [_image_of(row) for row in rows]

    def images_in_repository(self, registry: str,
                             repository: str) -> list[tuple[Image, datetime]]:
        """Return the stored images of one container repository with their last_seen."""
        with self.session() as session:
            rows = session.scalars(
                select(ImageRow).where(ImageRow.registry_host == registry,
                                       ImageRow.repository == repository)
                .order_by(ImageRow.ref)
            )
            return [(_image_of(row), row.last_seen) for row in rows]

    # Events ------------------------------------------------------------------

    def events_naming(self, platform: str, targets: Collection[str],
                      tags: Collection[tuple[str, str, str]] = ()) -> list[CreationEvent]:
        """Return the events of `platform` whose target is in `targets`, and the pushes
        of each (registry, repository, tag) in `tags`, oldest first.

        The caller narrows them to an account and region or a repository: this is
        the superset a `Correlator` needs to attribute a few images.
        """
        found: dict[str, EventRow] = {}
        wanted = sorted(set(targets))
        with self.session() as session:
            for start in range(0, len(wanted), 500):
                query = select(EventRow).where(
                    EventRow.platform == platform,
                    EventRow.target.in_(wanted[start : start + 500]))
                found.update((row.key, row) for row in session.scalars(query))
            for registry, repository, tag in sorted(set(tags)):
                query = select(EventRow).where(
                    EventRow.registry_host == registry, EventRow.repository == repository,
                    EventRow.tag == tag, EventRow.effect == EventEffect.PUSH.value)
                found.update((row.key, row) for row in session.scalars(query))
            rows = sorted(found.values(), key=lambda row: (row.time, row.key))
            return [_event_of(row) for row in rows]

    def events(self, platform: str | None = None) -> list[CreationEvent]:
        """Return stored events, oldest first, ties broken by key.

        Each event carries the digest-check outcome of the file it was read from.
        """
        validations = self.log_validations()
        with self.session() as session:
            # Raw records stay in the database, but for signatures and attestations,
            # whose raw record is the material the policy verifies.
            columns = [column for column in EventRow.__table__.columns if column.name != "raw"]
            evidence = case((EventRow.effect.in_(sorted(_EVIDENCE_EFFECTS)), EventRow.raw),
                            else_=None).label("raw")
            query = select(*columns, evidence).order_by(EventRow.time, EventRow.key)
            if platform:
                query = query.where(EventRow.platform == platform)
            return [_event_of(row, validations.get(row.origin_location))
                    for row in session.execute(query)]

    def events_by_key(self, keys: Iterable[str]) -> list[tuple[CreationEvent, bytes | None]]:
        """Return the stored events with these keys and their raw records."""
        wanted = sorted(set(keys))
        validations = self.log_validations()
        found: list[tuple[CreationEvent, bytes | None]] = []
        with self.session() as session:
            for start in range(0, len(wanted), 500):
                rows = session.scalars(
                    select(EventRow).where(EventRow.key.in_(wanted[start : start + 500])))
                found.extend((_event_of(row, validations.get(row.origin_location)), row.raw)
                             for row in rows)
        return sorted(found, key=lambda pair: pair[0].key)

    def log_validations(self) -> dict[str, tuple[LogValidation, str | None]]:
        """Return the digest-check outcome of every log file location checked.

        A location read with more than one content (a file replaced after it was
        read) takes the worst outcome among them: failed, then unvalidated.
        """
        rank = {LogValidation.FAILED: 0, LogValidation.UNVALIDATED: 1,
                LogValidation.VALIDATED: 2}
        found: dict[str, tuple[LogValidation, str | None]] = {}
        with self.session() as session:
            rows = session.execute(select(LogFileRow.location, LogFileRow.validation,
                                          LogFileRow.validation_detail))
            for location, validation, detail in rows:
                outcome = (LogValidation(validation) if validation
                           else LogValidation.UNVALIDATED, detail)
                known = found.get(location)
                if known is None or rank[outcome[0]] < rank[known[0]]:
                    found[location] = outcome
        return found

    def log_file_contents(self) -> list[tuple[int, str, str | None]]:
        """Return the id, location and uncompressed-content hash of every log file."""
        with self.session() as session:
            rows = session.execute(select(LogFileRow.id, LogFileRow.location,
                                          LogFileRow.content_sha256).order_by(LogFileRow.id))
            return [(row[0], row[1], row[2]) for row in rows]

    def record_validation(self, outcomes: dict[int, tuple[LogValidation, str | None]]) -> int:
        """Store the digest-check outcome of log files by id; return the rows changed."""
        changed = 0
        with self.session() as session, session.begin():
            for file_id, (validation, detail) in outcomes.items():
                result = session.execute(
                    update(LogFileRow).where(
                        LogFileRow.id == file_id,
                        (LogFileRow.validation.is_(None))
                        | (LogFileRow.validation != validation.value)
                        | (LogFileRow.validation_detail.is_distinct_from(detail)))
                    .values(validation=validation.value, validation_detail=detail)
                    .execution_options(synchronize_session=False))
                changed += result.rowcount or 0
        return changed

    def iter_events(self, platform: str | None = None) -> Iterator[CreationEvent]:
        yield from self.events(platform)

    def raw_record(self, key: str) -> bytes | None:
        with self.session() as session:
            return session.scalar(select(EventRow.raw).where(EventRow.key == key))

    def event_count(self) -> int:
        with self.session() as session:
            return session.scalar(select(func.count(EventRow.id))) or 0

    def tag_history(self, registry: str, repository: str, tag: str) -> list[TagMove]:
        """Return every push of `registry/repository:tag`, oldest first."""
        with self.session() as session:
            rows = session.scalars(
                select(EventRow)
                .where(EventRow.registry_host == registry, EventRow.repository == repository,
                       EventRow.tag == tag, EventRow.effect == EventEffect.PUSH.value)
                .order_by(EventRow.time, EventRow.key)
            )
            return [
                TagMove(time=row.time, digest=row.target, actor=row.principal_id,
                        event_id=row.event_id, error_code=row.error_code)
                for row in rows
            ]

    # Coverage ----------------------------------------------------------------

    def coverage(
        self, platform: str | None = None, join_within: timedelta = COVERAGE_JOIN,
        scopes: Collection[tuple[str, str]] | None = None,
    ) -> dict[tuple[str, str], list[tuple[datetime, datetime]]]:
        """Return the merged spans of event time read, per (account, region).

        Spans closer than `join_within` are joined: a quiet minute between two
        delivered files is not a gap in the logs. `scopes` limits the result to
        those (account, region) pairs.
        """
        spans: dict[tuple[str, str], list[tuple[datetime, datetime]]] = {}
        with self.session() as session:
            query = select(CoverageRow.account, CoverageRow.region, CoverageRow.first,
                           CoverageRow.last).order_by(
                CoverageRow.account, CoverageRow.region, CoverageRow.first)
            if platform:
                query = query.where(CoverageRow.platform == platform)
            if scopes is not None:
                accounts = sorted({account for account, _ in scopes})
                query = query.where(CoverageRow.account.in_(accounts))
            rows = session.execute(query)
            for account, region, first, last in rows:
                if scopes is not None and (account, region) not in scopes:
                    continue
                merged = spans.setdefault((account, region), [])
                # A difference of two times cannot overflow, where a sum near the
                # end of year 9999 would.
                if merged and first - merged[-1][1] <= join_within:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], last))
                else:
                    merged.append((first, last))
        return spans

    def log_file_count(self) -> int:
        with self.session() as session:
            return session.scalar(select(func.count(LogFileRow.id))) or 0

    # Quarantine --------------------------------------------------------------

    def quarantined(self, limit: int | None = None) -> list[QuarantineRow]:
        with self.session() as session:
            query = select(QuarantineRow).order_by(QuarantineRow.id)
            if limit:
                query = query.limit(limit)
            return list(session.scalars(query))

    # Policies and verdicts ---------------------------------------------------

    def policy_text(self, policy_hash: str) -> str | None:
        with self.session() as session:
            row = session.get(PolicyRow, policy_hash)
            return row.text if row else None

    def save_policy(self, policy_hash: str, path: str, text: str) -> None:
        with self.session() as session, session.begin():
            # Two cycles that load the same new policy at once store it once.
            lock_for_write(session, _lock_key("imageprov:save-policy"))
            if session.get(PolicyRow, policy_hash) is None:
                session.add(PolicyRow(hash=policy_hash, path=path, text=text,
                                      loaded_at=_now()))

    def mark_evaluated(self, policy_hash: str, started: datetime) -> None:
        """Record that every stored image was judged under a policy as of `started`.

        A time in the future is recorded as now, so that an evaluation with its
        clock set ahead does not keep verdicts fresh for longer.
        """
        started = min(started, _now())
        with self.session() as session, session.begin():
            session.execute(
                update(PolicyRow).where(PolicyRow.hash == policy_hash)
                .where((PolicyRow.evaluated_at.is_(None))
                       | (PolicyRow.evaluated_at < started))
                .values(evaluated_at=started))

    def evaluated_at(self, policy_hash: str) -> datetime | None:
        """Return when every stored image was last judged under this policy, if ever."""
        with self.session() as session:
            return session.scalar(
                select(PolicyRow.evaluated_at).where(PolicyRow.hash == policy_hash))

    def current_verdict(self, ref: str) -> Verdict | None:
        """Return the newest verdict of one image, if it has one."""
        with self.session() as session:
            row = session.execute(select(VerdictRow.__table__)
                                  .where(VerdictRow.image == ref)
                                  .order_by(VerdictRow.id.desc()).limit(1)).first()
            return _verdict_of(row) if row is not None else None

    def current_verdicts(self, refs: Collection[str] | None = None) -> dict[str, Verdict]:
        """Return the newest verdict of every image that has one, or of `refs` only."""
        with self.session() as session:
            return self._current_verdicts(session, refs)

    @staticmethod
    def _current_verdicts(session: Session,
                          refs: Collection[str] | None = None) -> dict[str, Verdict]:
        if refs is None:
            chunks: list[list[str] | None] = [None]
        else:
            wanted = sorted(set(refs))
            chunks = [wanted[start:start + 500] for start in range(0, len(wanted), 500)]
        found: dict[str, Verdict] = {}
        for chunk in chunks:
            newest_query = select(VerdictRow.image, func.max(VerdictRow.id).label("id"))
            if chunk is not None:
                newest_query = newest_query.where(VerdictRow.image.in_(chunk))
            newest = newest_query.group_by(VerdictRow.image).subquery()
            rows = session.execute(
                select(VerdictRow.__table__).join(newest, VerdictRow.id == newest.c.id)
                .order_by(VerdictRow.image)
            )
            found.update((row.image, _verdict_of(row)) for row in rows)
        return found

    def save_verdicts(self, verdicts: Iterable[Verdict]) -> int:
        """Append each verdict that differs from the image's current one.

        Each row added gets a ledger entry in the same transaction, with the hash
        of the raw creation events it rests on. Returns how many rows were added;
        an unchanged verdict adds none. The comparison and the writes hold a write
        lock (`lock_for_write`), so replicas that judge the same change at once
        append it once.
        """
        now = _now()
        verdicts = list(verdicts)
        # A few verdicts are compared with their own images' rows; a whole
        # evaluation reads every current verdict in one query.
        refs = [verdict.image for verdict in verdicts]
        with self.session() as session, session.begin():
            lock_for_write(session, _lock_key("imageprov:save-verdicts"))
            current = self._current_verdicts(session, refs if len(refs) <= 500 else None)
            changed = [
                verdict for verdict in verdicts
                if (previous := current.get(verdict.image)) is None
                or not previous.same_decision(verdict)
            ]
            if not changed:
                return 0
            appender = ledger.Appender(session)
            appender.prefetch([verdict.image for verdict in changed])
            evidence = ledger.evidence_of(
                session, [v.event_id for v in changed if v.event_id])
            statement = insert(VerdictRow).returning(
                VerdictRow.id, sort_by_parameter_order=True)
            ids = session.execute(
                statement, [_verdict_values(verdict) for verdict in changed]
            ).scalars().all()
            for verdict, verdict_id in zip(changed, ids, strict=True):
                items = evidence.get(verdict.event_id, []) if verdict.event_id else []
                appender.append(ledger.VERDICT, verdict.image, {
                    "verdict": ledger.verdict_body(verdict), "evidence": items,
                    "evidence_hash": ledger.evidence_hash(items),
                }, verdict.policy_hash, now, verdict_id)
            appender.flush()
        return len(changed)

    def record_exceptions(self, active: Sequence[dict[str, Any]], policy_hash: str,
                          now: datetime | None = None) -> int:
        """Append ledger entries for exceptions granted or ended since the last call.

        `active` lists the exceptions in force now, each with `image`, `reason` and
        `expires` (ISO text). One that the ledger does not hold yet is recorded as
        granted. One the ledger contains that is not in `active` is recorded as
        expired, with `ended` saying whether its time passed or the policy dropped
        it. Returns the number of entries added.
        """
        now = now or _now()
        with self.session() as session, session.begin():
            appender = ledger.Appender(session)
            held = ledger.active_exceptions(session)
            given = {ledger.exception_key(item): dict(item) for item in active}
            for key, exception in sorted(given.items()):
                if key not in held:
                    appender.append(ledger.EXCEPTION_GRANTED, exception["image"],
                                    {"exception": exception}, policy_hash, now)
            for key, exception in sorted(held.items()):
                if key not in given:
                    expires = datetime.fromisoformat(str(exception.get("expires")))
                    ended = "expired" if expires <= now else "removed from the policy"
                    appender.append(ledger.EXCEPTION_EXPIRED, exception["image"],
                                    {"exception": exception, "ended": ended},
                                    policy_hash, now)
            return appender.flush()

    # Ledger ------------------------------------------------------------------

    def ledger_entries(self, images: Iterable[str] | None = None,
                       start: int = 1) -> Iterator[LedgerEntryRow]:
        """Yield ledger entries in sequence order, from `start`, a page at a time.

        With `images`, only the entries of those images are yielded.
        """
        wanted = sorted(set(images)) if images is not None else None
        position = start - 1
        while True:
            with self.session() as session:
                query = (select(LedgerEntryRow).where(LedgerEntryRow.seq > position)
                         .order_by(LedgerEntryRow.seq).limit(5000))
                if wanted is not None:
                    query = query.where(LedgerEntryRow.image.in_(wanted))
                rows = list(session.scalars(query))
            if not rows:
                return
            yield from rows
            position = rows[-1].seq

    def ledger_tail(self) -> tuple[int, str]:
        """Return the sequence number and hash of the newest entry, (0, zeros) if none."""
        with self.session() as session:
            return ledger._tail(session)

    def verdict_rows(self) -> Iterator[tuple[int, Verdict]]:
        """Yield every verdict row with its id, oldest first, a page at a time."""
        position = 0
        while True:
            with self.session() as session:
                rows = list(session.scalars(
                    select(VerdictRow).where(VerdictRow.id > position)
                    .order_by(VerdictRow.id).limit(5000)))
            if not rows:
                return
            for row in rows:
                yield row.id, _verdict_of(row)
            position = rows[-1].id

    # Reports read plain rows: building 100,000 ORM objects and models would take
    # most of a report's time.

    def image_places(self, include_gone: bool = False
                     ) -> dict[str, tuple[str, str, str, str]]:
        """Return the platform, kind, account and region of each image, by ref.

        Gone images are left out unless asked for, as in `images`.
        """
        query = select(ImageRow.ref, ImageRow.platform, ImageRow.kind, ImageRow.account,
                       ImageRow.region)
        if not include_gone:
            query = _present(query)
        with self.session() as session:
            rows = session.execute(query)
            return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}

    def current_verdict_values(self) -> list[dict[str, Any]]:
        """Return the newest verdict of every image as plain column values."""
        newest = (select(func.max(VerdictRow.id).label("id"))
                  .group_by(VerdictRow.image).subquery())
        columns = [column for column in VerdictRow.__table__.columns if column.name != "id"]
        with self.session() as session:
            rows = session.execute(
                select(*columns).join(newest, VerdictRow.id == newest.c.id)
                .order_by(VerdictRow.image))
            return [dict(row._mapping) for row in rows]

    def status_history(self) -> Iterator[tuple[str, str, datetime]]:
        """Yield (image, status, decided_at) of every verdict row in id order."""
        position = 0
        while True:
            with self.session() as session:
                rows = session.execute(
                    select(VerdictRow.id, VerdictRow.image, VerdictRow.status,
                           VerdictRow.decided_at)
                    .where(VerdictRow.id > position).order_by(VerdictRow.id).limit(20000)
                ).all()
            if not rows:
                return
            for row in rows:
                yield row[1], row[2], row[3]
            position = rows[-1][0]

    def verdict_history_rows(self, image: str) -> list[tuple[int, Verdict]]:
        with self.session() as session:
            rows = session.scalars(
                select(VerdictRow).where(VerdictRow.image == image).order_by(VerdictRow.id))
            return [(row.id, _verdict_of(row)) for row in rows]

    def save_head(self, seq: int, entry_hash: str, key_id: str, public_key: str,
                  signature: str, signed_at: str) -> None:
        with self.session() as session, session.begin():
            session.add(LedgerHeadRow(seq=seq, entry_hash=entry_hash, key_id=key_id,
                                      public_key=public_key, signature=signature,
                                      signed_at=signed_at))

    def latest_head(self) -> LedgerHeadRow | None:
        with self.session() as session:
            return session.scalar(
                select(LedgerHeadRow).order_by(LedgerHeadRow.id.desc()).limit(1))

    def ledger_heads(self) -> list[LedgerHeadRow]:
        with self.session() as session:
            return list(session.scalars(select(LedgerHeadRow).order_by(LedgerHeadRow.id)))

    def rebuild_verdicts(self) -> int:
        """Replace every verdict row with the verdicts the ledger records.

        Each row gets back the id its entry names. Returns the number of rows.
        """
        with self.session() as session, session.begin():
            session.execute(delete(VerdictRow))
            values: list[dict[str, Any]] = []
            for content in session.scalars(
                select(LedgerEntryRow.content).where(LedgerEntryRow.kind == ledger.VERDICT)
                .order_by(LedgerEntryRow.seq)
            ):
                entry = orjson.loads(content)
                verdict = Verdict.model_validate(entry["verdict"])
                values.append({**_verdict_values(verdict), "id": entry["verdict_id"]})
            for start in range(0, len(values), 5000):
                session.execute(insert(VerdictRow), values[start : start + 5000])
            if self.engine.dialect.name == "postgresql" and values:
                # Rows inserted with their ids leave the id sequence behind them.
                session.execute(sql_text(
                    "SELECT setval(pg_get_serial_sequence('verdicts', 'id'), "
                    "(SELECT max(id) FROM verdicts))"))
        return len(values)

    def last_verdict_id(self) -> int:
        with self.session() as session:
            return session.scalar(select(func.max(VerdictRow.id))) or 0

    def verdict_changes(self, after: int) -> tuple[int, set[str]]:
        """Return the newest verdict row id and the images of rows added after `after`."""
        with self.session() as session:
            rows = session.execute(
                select(VerdictRow.id, VerdictRow.image).where(VerdictRow.id > after))
            newest = after
            images: set[str] = set()
            for row_id, image in rows:
                newest = max(newest, row_id)
                images.add(image)
            return newest, images

    # API tokens --------------------------------------------------------------

    def create_token(self, name: str, sha256: str) -> None:
        """Store a new token's hash under `name`.

        Raises:
            ValueError: a token of that name exists, revoked or not.
        """
        with self.session() as session, session.begin():
            if session.scalar(select(ApiTokenRow.id).where(ApiTokenRow.name == name)):
                raise ValueError(f"a token named {name!r} exists already; "
                                 "choose another name")
            session.add(ApiTokenRow(name=name, sha256=sha256, created_at=_now()))

    def revoke_token(self, name: str) -> bool:
        """Revoke the token named `name`; return False when no active token has it."""
        with self.session() as session, session.begin():
            result = session.execute(
                update(ApiTokenRow)
                .where(ApiTokenRow.name == name, ApiTokenRow.revoked_at.is_(None))
                .values(revoked_at=_now()))
            return bool(result.rowcount)

    def tokens(self) -> list[ApiToken]:
        with self.session() as session:
            rows = session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.name))
            return [ApiToken(row.name, row.sha256, row.created_at, row.revoked_at)
                    for row in rows]

    def active_tokens(self) -> dict[str, str]:
        """Return the name of each token not revoked, by the SHA-256 of its text."""
        with self.session() as session:
            rows = session.execute(select(ApiTokenRow.sha256, ApiTokenRow.name)
                                   .where(ApiTokenRow.revoked_at.is_(None)))
            return {sha256: name for sha256, name in rows}

    def verdict_history(self, image: str) -> list[Verdict]:
        with self.session() as session:
            rows = session.scalars(
                select(VerdictRow).where(VerdictRow.image == image).order_by(VerdictRow.id)
            )
            return [_verdict_of(row) for row in rows]


def _present(query: Any) -> Any:
    """Keep the images that the last listing of their inventory source reported.

    An image is gone when another image of its source was seen later, or when a
    listing of its source found no image after it was last seen (see
    `Store.record_listing`).
    """
    newest = (
        select(ImageRow.inventory_source, func.max(ImageRow.last_seen).label("seen"))
        .group_by(ImageRow.inventory_source)
        .subquery()
    )
    listing = aliased(CheckpointRow)
    return query.join(
        newest, ImageRow.inventory_source == newest.c.inventory_source
    ).outerjoin(
        listing, listing.name == literal(LISTING_PREFIX) + ImageRow.inventory_source
    ).where(
        (ImageRow.inventory_source == "")
        | ((ImageRow.last_seen == newest.c.seen)
           & (listing.updated_at.is_(None) | (ImageRow.last_seen >= listing.updated_at)))
    )


def adopt_verdict_rows(session: Session, now: datetime | None = None) -> int:
    """Append a ledger entry for every verdict row that has none, in id order.

    Used when the ledger is added to a database that contains verdicts already, so
    that those rows are covered from then on. Returns the number of entries.
    """
    covered = select(LedgerEntryRow.verdict_id).where(LedgerEntryRow.verdict_id.isnot(None))
    rows = list(session.scalars(
        select(VerdictRow).where(VerdictRow.id.not_in(covered)).order_by(VerdictRow.id)))
    if not rows:
        return 0
    appender = ledger.Appender(session)
    appender.prefetch([row.image for row in rows])
    evidence = ledger.evidence_of(session, [row.event_id for row in rows if row.event_id])
    for row in rows:
        verdict = _verdict_of(row)
        items = evidence.get(row.event_id, []) if row.event_id else []
        appender.append(ledger.VERDICT, row.image, {
            "verdict": ledger.verdict_body(verdict), "evidence": items,
            "evidence_hash": ledger.evidence_hash(items), "adopted": True,
        }, row.policy_hash, now or _now(), row.id)
    return appender.flush()


def _image_values(image: Image) -> dict[str, Any]:
    return {
        "ref": image.ref, "platform": image.platform.value, "kind": image.kind.value,
        "account": image.account, "region": image.region, "native_id": image.native_id,
        "digest": image.digest, "registry_host": image.registry,
        "repository": image.repository, "names": list(image.names),
        "tags": dict(image.tags), "created": image.created, "state": image.state,
        "public": image.public, "source_image": image.source_image,
        "source_region": image.source_region,
        "inventory_source": image.inventory_source,
    }


# The keys of `_image_values`, which are also ImageRow attributes. A key missing here
# makes every known image look changed, so it is rewritten each cycle.
_IMAGE_FIELDS = (
    "ref", "platform", "kind", "account", "region", "native_id", "digest",
    "registry_host", "repository", "names", "tags", "created", "state", "public",
    "source_image", "source_region", "inventory_source",
)


# Rows read back were validated when they were written, so models are built from
# them without validating again: at tens of thousands of rows per evaluation,
# validation was most of the cost of loading.


def _image_of(row: Any) -> Image:
    return Image.model_construct(
        ref=row.ref, platform=Platform(row.platform), kind=ImageKind(row.kind),
        account=row.account, region=row.region, native_id=row.native_id,
        digest=row.digest, registry=row.registry_host, repository=row.repository,
        names=tuple(row.names or ()), tags=row.tags or {}, created=row.created,
        state=row.state, public=row.public, source_image=row.source_image,
        source_region=row.source_region, inventory_source=row.inventory_source,
    )


# The fields of an event that say who did what, from where and with what result.
_COMPARED = ("principal_id", "source_ip", "user_agent", "target", "action", "error_code",
             "time")


# Checkpoint names that record an inventory source's last listing that found no image.
LISTING_PREFIX = "inventory-listing:"


def _mark_seen(session: Session, ids: Sequence[int], seen_at: datetime) -> None:
    """Set `last_seen` of the images with these ids, 500 to a statement."""
    for start in range(0, len(ids), 500):
        session.execute(
            update(ImageRow)
            .where(ImageRow.id.in_(ids[start : start + 500]))
            .values(last_seen=seen_at)
            .execution_options(synchronize_session=False)
        )


def _compared(value: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(value[name] for name in _COMPARED)


def _warn_of_conflict(key: str, value: dict[str, Any], other_location: str,
                      other_index: int, other: tuple[Any, ...]) -> None:
    """Log that the copy `value` of an event differs from another copy in the fields
    that `_COMPARED` names."""
    differing = [name for name, old, new in zip(_COMPARED, other, _compared(value),
                                                strict=True) if old != new]
    if differing:
        logger.warning(
            "conflicting copies of event %s: %s #%d differs from %s #%d in %s; the "
            "copy whose location sorts first is kept", key, value["origin_location"],
            value["origin_index"], other_location, other_index, ", ".join(differing))


def _unread(document: LogDocument) -> bool:
    """Say whether nothing of a document could be read: no record, event or notice."""
    return (not document.records and not document.events and not document.notices
            and any(problem.index < 0 for problem in document.problems))


def _printable(text: str) -> str:
    """Return `text` with each NUL character written as the escape `\\x00`."""
    return text.replace("\x00", "\\x00") if "\x00" in text else text


_EVENT_COLUMNS = tuple(column.name for column in EventRow.__table__.columns
                       if column.name != "id")


@dataclass(frozen=True)
class _SqliteBatch:
    """A write compiled once for SQLite and run through the DBAPI's `executemany`.

    `run` takes each row's parameters in bind order and converts only those that
    have a bind processor. On 200-row batches of log file rows that took 6.1 µs a
    row, against 8.3 µs through SQLAlchemy's many-row execute, SQLite's own work
    included.
    """

    sql: str
    # The parameters of one row from its value dict, in bind order.
    parameters: Callable[[dict[str, Any]], tuple[Any, ...]]
    # The bind processor of each parameter that has one, by position.
    conversions: tuple[tuple[int, Callable[[Any], Any]], ...]

    @classmethod
    def compile(cls, statement: Any, row_class: type[Base], columns: tuple[str, ...],
                dialect: Any) -> _SqliteBatch:
        """Compile `statement`, which binds one parameter per name in `columns`.

        Raises:
            RuntimeError: the statement binds other parameters than `columns`.
        """
        by_name = {column.name: column for column in row_class.__table__.columns}
        compiled = statement.compile(dialect=dialect, column_keys=list(columns))
        names = tuple(compiled.positiontup or ())
        if len(names) < 2 or sorted(names) != sorted(columns):
            raise RuntimeError(f"{row_class.__tablename__}: the statement binds {names}, "
                               f"not one parameter per column of {columns}")
        # The dialect's own type: SQLite's DATETIME writes the same text format as the
        # store's other writes, which the generic type does not.
        processors = [by_name[name].type.dialect_impl(dialect).bind_processor(dialect)
                      for name in names]
        return cls(compiled.string, operator.itemgetter(*names),
                   tuple((index, process) for index, process in enumerate(processors)
                         if process is not None))

    def run(self, session: Session, values: Iterable[dict[str, Any]]) -> int:
        """Run the statement once per value dict, in order, and return SQLite's count
        of the rows changed."""
        rows = []
        for value in values:
            row = list(self.parameters(value))
            for index, process in self.conversions:
                row[index] = process(row[index])
            rows.append(row)
        cursor = session.connection().connection.cursor()
        try:
            cursor.executemany(self.sql, rows)
            return cursor.rowcount
        except sqlite3.Error as error:
            # Wrapped as SQLAlchemy wraps a driver error, so that callers handle it
            # like any other, and without the parameters, which contain record text.
            raise DBAPIError.instance(self.sql, None, error, sqlite3.Error,
                                      hide_parameters=True, ismulti=True) from error
        finally:
            cursor.close()


def _event_upsert(module: Any) -> Any:
    """Return the upsert of event rows for a dialect module (`sqlite` or
    `postgresql`).

    A duplicate delivery normally carries the same record, but a forged or edited
    copy may not. The whole copy from the file that sorts first is kept, so neither
    the stored event nor its origin depends on read order.
    """
    statement = module.insert(EventRow)
    new = statement.excluded
    earlier = (new.origin_location < EventRow.origin_location) | (
        (new.origin_location == EventRow.origin_location)
        & (new.origin_index < EventRow.origin_index)
    )
    replaced = {column.name: getattr(new, column.name)
                for column in EventRow.__table__.columns
                if column.name not in ("id", "key")}
    return statement.on_conflict_do_update(index_elements=["key"], set_=replaced,
                                          where=earlier)


def _event_values(item: CreationEvent, raw: bytes | None) -> dict[str, Any]:
    return {
        "key": item.key, "source": item.source, "event_id": item.event_id,
        "time": item.time.astimezone(UTC), "action": item.action,
        "effect": item.effect.value, "platform": item.platform,
        "account": item.account, "region": item.region,
        # The JSON column writes the fields in order, enums by value and tuples as
        # arrays, the JSON of `model_dump(mode="json")` at a third of its cost.
        "principal": item.principal.__dict__,
        "principal_id": item.principal.id, "source_ip": item.source_ip,
        "user_agent": item.user_agent, "target": item.target,
        "registry_host": item.registry, "repository": item.repository,
        "tag": item.tag,
        "source_image": item.source_image, "source_region": item.source_region,
        "shared_with": list(item.shared_with),
        "unshared_from": list(item.unshared_from), "error_code": item.error_code,
        "origin_location": item.origin.location, "origin_index": item.origin.index,
        "origin_shape": item.origin.shape,
        "raw": raw if raw is not None else item.evidence,
    }


_EVIDENCE_EFFECTS = frozenset({EventEffect.SIGN.value, EventEffect.ATTEST.value})


def _event_of(row: Any,
              validation: tuple[LogValidation, str | None] | None = None) -> CreationEvent:
    outcome, detail = validation or (LogValidation.UNVALIDATED, None)
    return CreationEvent.model_construct(
        log_validation=outcome, validation_detail=detail,
        source=row.source, key=row.key, event_id=row.event_id, time=row.time,
        action=row.action, effect=EventEffect(row.effect), platform=row.platform,
        account=row.account, region=row.region,
        principal=Principal.model_validate(row.principal), source_ip=row.source_ip,
        user_agent=row.user_agent, target=row.target, registry=row.registry_host,
        repository=row.repository, tag=row.tag, source_image=row.source_image,
        source_region=row.source_region, shared_with=tuple(row.shared_with or ()),
        unshared_from=tuple(row.unshared_from or ()), error_code=row.error_code,
        origin=RecordOrigin.model_construct(location=row.origin_location,
                                            index=row.origin_index, shape=row.origin_shape),
        # The raw record of a signature or attestation is the material the policy
        # verifies, so it comes back with the event.
        evidence=row.raw if row.effect in _EVIDENCE_EFFECTS else None,
    )


def _verdict_values(verdict: Verdict) -> dict[str, Any]:
    return {
        "image": verdict.image, "status": verdict.status.value,
        "flags": [flag.value for flag in verdict.flags], "rule": verdict.rule,
        "event_id": verdict.event_id, "reason": verdict.reason, "actor": verdict.actor,
        "source_ip": verdict.source_ip, "policy_hash": verdict.policy_hash,
        "decided_at": verdict.decided_at,
    }


def _verdict_of(row: Any) -> Verdict:
    return Verdict.model_construct(
        image=row.image, status=VerdictStatus(row.status),
        flags=tuple(Flag(flag) for flag in row.flags or ()), rule=row.rule,
        event_id=row.event_id, reason=row.reason, actor=row.actor,
        source_ip=row.source_ip, policy_hash=row.policy_hash,
        decided_at=row.decided_at,
    )
