"""Read audit-log files into the store, in parallel, a bounded batch at a time.

Files are read and hashed here, parsed in worker processes, and stored in batches
of whole files, one transaction each, so that a crash never leaves half a file.
A file whose content was read before is skipped before it is parsed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field

from imageprov.errors import SourceError
from imageprov.model import LogDocument, RecordProblem
from imageprov.sources.aws.trail_documents import read_document
from imageprov.sources.aws.trail_locations import LogObject
from imageprov.store import Store

logger = logging.getLogger(__name__)

# Files stored per transaction, and records parsed ahead of the writer per worker.
BATCH_FILES = 200
IN_FLIGHT_PER_WORKER = 8


@dataclass
class IngestSummary:
    """Counts for one ingest run."""

    files: int = 0
    skipped: int = 0
    records: int = 0
    events: int = 0
    new_events: int = 0
    problems: int = 0
    notices: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def _parse(location: str, data: bytes, fallback_account: str | None) -> LogDocument:
    return read_document(data, location, fallback_account)


def _hashed(objects: Iterable[LogObject]) -> Iterator[tuple[LogObject, bytes | None, str]]:
    for item in objects:
        try:
            data = item.load()
        except (OSError, SourceError) as error:
            yield item, None, str(error)
            continue
        yield item, data, hashlib.sha256(data).hexdigest()


def ingest(
    store: Store,
    objects: Iterable[LogObject],
    workers: int = 1,
    on_file: Callable[[str], None] | None = None,
) -> IngestSummary:
    """Read every object into the store and return the counts.

    A file that cannot be read is quarantined with the reason and the run goes on.
    """
    summary = IngestSummary()
    started = time.perf_counter()
    batch: list[tuple[LogDocument, str]] = []

    def flush() -> None:
        if batch:
            summary.new_events += store.save_documents(batch)
            batch.clear()

    def take(document: LogDocument, sha256: str) -> None:
        summary.files += 1
        summary.records += document.records
        summary.events += len(document.events)
        summary.problems += len(document.problems)
        for notice in document.notices:
            summary.notices[notice] = summary.notices.get(notice, 0) + 1
        for problem in document.problems[:3]:
            logger.warning("quarantined %s", problem)
        if len(document.problems) > 3:
            logger.warning("quarantined %d more records of %s", len(document.problems) - 3,
                           document.location)
        batch.append((document, sha256))
        if len(batch) >= BATCH_FILES:
            flush()
        if on_file:
            on_file(document.location)

    for chunk in _unread_chunks(store, _hashed(objects), summary, on_file):
        if workers <= 1:
            for item, data, sha256 in chunk:
                take(_parse(item.location, data, item.fallback_account), sha256)
        else:
            _parse_parallel(chunk, workers, take)
        flush()
    summary.seconds = time.perf_counter() - started
    return summary


def _unread_chunks(
    store: Store,
    hashed: Iterator[tuple[LogObject, bytes | None, str]],
    summary: IngestSummary,
    on_file: Callable[[str], None] | None,
) -> Iterator[list[tuple[LogObject, bytes, str]]]:
    """Yield chunks of files not read before; quarantine those that cannot be loaded."""
    while True:
        chunk: list[tuple[LogObject, bytes | None, str]] = []
        for entry in hashed:
            chunk.append(entry)
            if len(chunk) >= BATCH_FILES:
                break
        if not chunk:
            return
        known = store.known_log_files(sha for _, data, sha in chunk if data is not None)
        fresh: list[tuple[LogObject, bytes, str]] = []
        seen: set[str] = set()
        for item, data, sha256 in chunk:
            if data is None:
                _quarantine_unloadable(store, item, sha256)
                summary.problems += 1
            elif sha256 in known or sha256 in seen:
                summary.skipped += 1
                if on_file:
                    on_file(item.location)
            else:
                seen.add(sha256)
                fresh.append((item, data, sha256))
        yield fresh


def _quarantine_unloadable(store: Store, item: LogObject, detail: str) -> None:
    logger.error("cannot read %s: %s", item.location, detail)
    document = LogDocument(location=item.location, source="cloudtrail", platform="aws")
    document.problems.append(RecordProblem(item.location, -1, "(file)", detail))
    store.record_problems(document)


_EXECUTORS: dict[int, ProcessPoolExecutor] = {}


def _executor(workers: int) -> ProcessPoolExecutor:
    executor = _EXECUTORS.get(workers)
    if executor is None:
        executor = ProcessPoolExecutor(max_workers=workers)
        _EXECUTORS[workers] = executor
    return executor


def close_workers() -> None:
    """Shut down the worker processes that parallel ingest runs keep between calls."""
    while _EXECUTORS:
        _, executor = _EXECUTORS.popitem()
        executor.shutdown()


def _parse_parallel(
    chunk: list[tuple[LogObject, bytes, str]],
    workers: int,
    take: Callable[[LogDocument, str], None],
) -> None:
    # Results are taken in submission order so that a run is repeatable, and at most
    # a bounded number of files are in flight to keep memory flat.
    executor = _executor(workers)
    pending: deque[tuple[Future[LogDocument], str]] = deque()
    limit = workers * IN_FLIGHT_PER_WORKER
    for item, data, sha256 in chunk:
        pending.append((executor.submit(_parse, item.location, data, item.fallback_account),
                        sha256))
        if len(pending) >= limit:
            future, digest = pending.popleft()
            take(future.result(), digest)
    while pending:
        future, digest = pending.popleft()
        take(future.result(), digest)
