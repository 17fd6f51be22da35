"""Read audit-log files into the store, in parallel, a bounded batch at a time.

Files are read and hashed here, parsed in worker processes, and stored in batches
of whole files, one transaction each, so that a crash never leaves half a file.
A file whose content was read before is skipped before it is parsed.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import multiprocessing
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing.connection import Connection
from dataclasses import dataclass, field

from imageprov.errors import SourceError
from imageprov.model import LogDocument, RecordProblem
from imageprov import formats
from imageprov.sources import LogFormat, LogObject
from imageprov.sources.compression import decompress, emptied_gzip
from imageprov.store import Store

logger = logging.getLogger(__name__)

# Files stored per transaction, and files looked up per query of known hashes.
BATCH_FILES = 1000
CHECK_FILES = 1000
# A batch also ends once its files contain this many records, so that large files are
# stored while the next ones are read. It ends at this many image events too, since
# they stay in memory with their raw records until they are stored.
BATCH_RECORDS = 200_000
BATCH_EVENTS = 10_000
# Bounds on file content in memory here. The reader keeps up to CHECK_BYTES between
# the lookup of known hashes and submission. Tasks sent to the workers keep up to
# IN_FLIGHT_BYTES until their parsed documents are taken, and the task being filled
# adds up to TASK_BYTES. Each bound lets at least one file through, however large.
# NOTE: a worker parses a whole file at once and needs about four times its
# uncompressed size in memory (the JSON text and the objects orjson builds, measured
# on generated CloudTrail files), and about eight times for a file of image events
# only, so peak memory grows with the largest file.
CHECK_BYTES = 16 * 2**20
IN_FLIGHT_BYTES = 32 * 2**20
# Stored batches between two collections of every generation while the cyclic
# garbage collector is paused (see `_collections_per_batch`).
FULL_COLLECTION_BATCHES = 50
# Files sent to a worker in one task. Small files are grouped so that the cost of a
# task (pickling, queues, waking a worker) is paid once per group, not per file.
TASK_FILES = 16
TASK_BYTES = 2**20
# Tasks in flight per worker. Enough queued work keeps the workers busy while this
# process stores a batch.
IN_FLIGHT_PER_WORKER = 8
# Image events expected per task and in flight. A parsed event takes far more memory
# than the file content it comes from: 7.2 KiB against 78 bytes of gzip, measured on
# log files of CreateImage and PutImage calls only. So the bounds on content above
# shrink as files get denser in events (see `_EventDensity`), and reader threads wait
# while finished documents not yet taken hold IN_FLIGHT_EVENTS (see `_Gate`).
TASK_EVENTS = 2_000
IN_FLIGHT_EVENTS = 8_000
# The smallest document, as stored, that goes to a thread when its format reads it
# in native code. Reading a smaller one is mostly Python work per file, which holds
# the GIL, so worker processes read such documents faster.
THREADED_MIN_BYTES = 64 * 1024


@dataclass
class IngestSummary:
    """Counts for one ingest run."""

    files: int = 0
    skipped: int = 0
    records: int = 0
    events: int = 0
    new_events: int = 0
    problems: int = 0
    # Files of which nothing could be read (unreadable, invalid gzip, not JSON).
    files_failed: int = 0
    notices: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    # The (account, region) pairs whose records were read.
    scopes: set[tuple[str, str]] = field(default_factory=set)

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def _parse(location: str, data: bytes, fallback_account: str | None,
           format: str | None = None, content_hash: bool = False) -> LogDocument:
    try:
        document = formats.read(data, location, fallback_account, format)
        if content_hash:
            document.content_sha256 = _content_sha256(data)
        return document
    except Exception as error:  # noqa: BLE001 - one file must not stop the others
        # Formats report bad content themselves; this is a defect in imageprov,
        # logged in full, and the file is quarantined so the rest is stored.
        logger.exception("reading %s failed", location)
        document = LogDocument(location=location, source=format or "unknown", platform="")
        document.problems.append(RecordProblem(
            location, -1, "(file)", f"internal error: {type(error).__name__}: {error}"))
        return document


def _content_sha256(data: bytes) -> str | None:
    """Return the SHA-256 of the uncompressed bytes, which digest files list.

    Only trails whose digests are checked pay for it: on the files of
    `benchmarks/generate.py` it took 40 to 60% of the time of a read. A broken gzip
    stream gives None, and the format has quarantined the file already.
    """
    try:
        return hashlib.sha256(decompress(data)).hexdigest()
    except EOFError:
        return None


_Task = tuple[str, bytes, str | None, str | None, bool]


def _parse_group(group: list[_Task]) -> list[LogDocument]:
    """Read the files of one task. A format that reads several files in one native
    call reads them together."""
    if len(group) == 1:
        return [_parse(*group[0])]
    try:
        documents = formats.read_many([(data, location, fallback_account, format)
                                       for location, data, fallback_account, format, _
                                       in group])
    except Exception:  # noqa: BLE001 - a defect: each file is read alone instead
        logger.exception("reading %d files together failed; reading each alone",
                         len(group))
        return [_parse(*task) for task in group]
    for document, (_, data, _, _, content_hash) in zip(documents, group, strict=True):
        if content_hash:
            document.content_sha256 = _content_sha256(data)
    return documents


def _hashed(objects: Iterable[LogObject]) -> Iterator[tuple[LogObject, bytes | None, str]]:
    for item in objects:
        try:
            data = item.load()
        except SourceError as error:
            # The quarantine row names the location, so the detail alone is kept.
            named = error.source in (item.location, f"file:{item.location}")
            yield item, None, error.detail if named else str(error)
            continue
        except OSError as error:
            yield item, None, str(error)
            continue
        yield item, data, hashlib.sha256(data).hexdigest()


def ingest(
    store: Store,
    objects: Iterable[LogObject],
    workers: int = 1,
    on_file: Callable[[str], None] | None = None,
    batch_files: int | None = None,
) -> IngestSummary:
    """Read every object into the store and return the counts.

    A file that cannot be read is quarantined with the reason and the run goes on.
    With more than one worker, files are read, hashed and stored here while the
    workers parse the files that follow, so `on_file` may report a skipped file
    before earlier files that were parsed.
    """
    summary = IngestSummary()
    started = time.perf_counter()
    with _collections_per_batch() as paused:
        writer = _Writer(store, summary, on_file, batch_files or BATCH_FILES,
                         collect=paused)
        fresh = _fresh_files(store, _hashed(_not_read_before(objects, summary, on_file)),
                             summary, on_file, writer)
        if workers <= 1:
            for item, data, sha256 in fresh:
                writer.take(_parse(item.location, data, item.fallback_account,
                                   item.format, item.content_hash), sha256)
        else:
            _parse_parallel(fresh, workers, writer.take)
        writer.flush()
    summary.seconds = time.perf_counter() - started
    return summary


@contextmanager
def _collections_per_batch() -> Iterator[bool]:
    """Run the cyclic garbage collector once per stored batch instead of by count.

    Reading and storing a log file allocates thousands of containers, nearly all
    freed by reference counting, so collections triggered by the count of
    allocations scan them for nothing. On generated CloudTrail files they cost about
    5% of an ingest. `_Writer.flush` collects the young generations after each
    batch, which frees the cycles made since, and every generation after every
    `FULL_COLLECTION_BATCHES` batches, which frees cycles of objects that outlived
    a batch. The setting applies to the whole process while the block runs, and is
    left alone when the collector was off.
    Yields whether the collector was paused here.
    """
    if not gc.isenabled():
        yield False
        return
    gc.disable()
    try:
        yield True
    finally:
        gc.enable()


def _not_read_before(objects: Iterable[LogObject], summary: IngestSummary,
                     on_file: Callable[[str], None] | None) -> Iterator[LogObject]:
    """Count the objects that their source marks as read before as skipped, without
    loading them, and yield the others."""
    for item in objects:
        if item.read_before:
            summary.skipped += 1
            if on_file:
                on_file(item.location)
            continue
        yield item


class _Writer:
    """Counts parsed documents and stores them in transactions that end at
    `batch_files` files, or once they contain `BATCH_RECORDS` records or `BATCH_EVENTS`
    image events."""

    def __init__(self, store: Store, summary: IngestSummary,
                 on_file: Callable[[str], None] | None, batch_files: int,
                 collect: bool = False) -> None:
        self.store = store
        # Whether to collect cyclic garbage after each batch, and the batches stored.
        self.collect = collect
        self.batches = 0
        self.batch_files = batch_files
        self.summary = summary
        self.on_file = on_file
        self.batch: list[tuple[LogDocument, str]] = []
        self.batch_records = 0
        self.batch_events = 0
        # Checkpoint positions of the files accepted for parsing, by location, and
        # the positions the current batch reaches, stored with it.
        self.positions: dict[str, tuple[str, str]] = {}
        self.reached: dict[str, str] = {}
        # Hashes of files accepted for parsing but not stored yet, with the first
        # location accepted, so that a later copy is judged as once it is stored.
        self.unstored: dict[str, str] = {}

    def take(self, document: LogDocument, sha256: str) -> None:
        summary = self.summary
        summary.files += 1
        summary.records += document.records
        summary.events += len(document.events)
        summary.problems += len(document.problems)
        if any(problem.index < 0 for problem in document.problems):
            summary.files_failed += 1
        for notice in document.notices:
            summary.notices[notice] = summary.notices.get(notice, 0) + 1
        summary.scopes.update(document.spans)
        for problem in document.problems[:3]:
            logger.warning("quarantined %s", problem)
        if len(document.problems) > 3:
            logger.warning("quarantined %d more records of %s", len(document.problems) - 3,
                           document.location)
        self.batch.append((document, sha256))
        position = self.positions.pop(document.location, None)
        if position is not None:
            # Documents arrive in the order their files were listed, so the newest
            # position taken is the furthest one that every earlier file has reached.
            self.reached[position[0]] = position[1]
        self.batch_records += document.records
        self.batch_events += len(document.events)
        if (len(self.batch) >= self.batch_files or self.batch_records >= BATCH_RECORDS
                or self.batch_events >= BATCH_EVENTS):
            self.flush()
        if self.on_file:
            self.on_file(document.location)

    def flush(self) -> None:
        if not self.batch:
            return
        self.summary.new_events += self.store.save_documents(self.batch, self.reached)
        self.reached = {}
        for _, sha256 in self.batch:
            self.unstored.pop(sha256, None)
        self.batch.clear()
        self.batch_records = self.batch_events = 0
        self.batches += 1
        if self.collect:
            # See `_collections_per_batch`.
            gc.collect(2 if self.batches % FULL_COLLECTION_BATCHES == 0 else 1)


def _fresh_files(
    store: Store,
    hashed: Iterator[tuple[LogObject, bytes | None, str]],
    summary: IngestSummary,
    on_file: Callable[[str], None] | None,
    writer: _Writer,
) -> Iterator[tuple[LogObject, bytes, str]]:
    """Yield the files not read before; quarantine those that cannot be loaded.

    Files are looked up a chunk at a time. Every file of a chunk is decided when the
    chunk is looked up, so a hash is always either stored or in `unstored`.
    """
    unstored = writer.unstored
    while True:
        chunk: list[tuple[LogObject, bytes | None, str]] = []
        size = 0
        for entry in hashed:
            chunk.append(entry)
            size += len(entry[1] or b"")
            if len(chunk) >= CHECK_FILES or size >= CHECK_BYTES:
                break
        if not chunk:
            return
        known = store.known_log_files(sha for _, data, sha in chunk if data is not None)
        fresh: deque[tuple[LogObject, bytes, str]] = deque()
        for item, data, sha256 in chunk:
            if data is None:
                _quarantine_unloadable(store, item, sha256)
                summary.problems += 1
                summary.files_failed += 1
                continue
            # Every emptied gzip file is reported, though all of them share one hash,
            # and none of them is stored as read.
            emptied = emptied_gzip(data, item.location)
            copies = () if emptied else (known.get(sha256), unstored.get(sha256))
            if _read_before(item.location,
                            min((where for where in copies if where), default=None)):
                summary.skipped += 1
                if on_file:
                    on_file(item.location)
            else:
                if not emptied:
                    unstored[sha256] = min(item.location,
                                           unstored.get(sha256, item.location))
                if item.checkpoint is not None and item.position is not None:
                    writer.positions[item.location] = (item.checkpoint, item.position)
                fresh.append((item, data, sha256))
        chunk.clear()
        # Popping as the consumer goes lets each file's bytes be freed once sent.
        while fresh:
            yield fresh.popleft()


def _read_before(location: str, stored: str | None) -> bool:
    """Say whether content already read at `stored` makes the copy at `location`
    redundant.

    Which copy of a duplicated record is kept goes by location (see
    `Store.save_documents`), so a copy that sorts before the stored one is read,
    and the result does not depend on which copy came first.
    """
    return stored is not None and stored <= location


def _quarantine_unloadable(store: Store, item: LogObject, detail: str) -> None:
    logger.error("cannot read %s: %s", item.location, detail)
    document = LogDocument(location=item.location, source=item.format or "unknown", platform="")
    document.problems.append(RecordProblem(item.location, -1, "(file)", detail))
    store.record_problems(document)


_EXECUTORS: dict[int, ProcessPoolExecutor] = {}
_THREADS: dict[int, ThreadPoolExecutor] = {}


# A pipe whose write end is in this process alone. Parser processes wait on its
# read end and exit when it closes, so they end even when this process is killed by
# SIGKILL: they are children of the fork server, and keep their task queue open.
_LIFELINE: list[Connection] = []


def _executor(workers: int) -> ProcessPoolExecutor:
    executor = _EXECUTORS.get(workers)
    if executor is None:
        # Workers come from a fork server, not from this process: the daemon runs
        # scheduler and metrics threads, and forking a threaded process can copy a
        # lock that some other thread holds. A fork server's children inherit no
        # file of this process, so the lifeline's write end stays here alone.
        if "forkserver" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("forkserver")
            if not _LIFELINE:
                _LIFELINE.extend(context.Pipe(duplex=False))
            executor = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                           initializer=_watch_lifeline,
                                           initargs=(_LIFELINE[0],))
        else:
            executor = ProcessPoolExecutor(max_workers=workers)
        _EXECUTORS[workers] = executor
    return executor


def _discard_executor(workers: int) -> None:
    executor = _EXECUTORS.pop(workers, None)
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)


def _watch_lifeline(lifeline: Connection) -> None:
    """Start a thread that ends this parser process once the process that started
    it has ended, in whatever way."""
    def watch() -> None:
        try:
            lifeline.recv()
        except (EOFError, OSError):
            pass
        os._exit(1)

    threading.Thread(target=watch, name="imageprov-lifeline", daemon=True).start()


def _threads(workers: int) -> ThreadPoolExecutor:
    executor = _THREADS.get(workers)
    if executor is None:
        executor = ThreadPoolExecutor(max_workers=workers,
                                      thread_name_prefix="imageprov-reader")
        _THREADS[workers] = executor
    return executor


def start_workers(workers: int) -> None:
    """Start the parser processes now, so that the first ingest does not wait for
    them to start and import imageprov."""
    if workers <= 1:
        return
    executor = _executor(workers)
    # Each task runs in a process of its own while the others are still busy, since
    # the pool starts a new process for a task that finds no idle one.
    for future in [executor.submit(_ready, 0.05) for _ in range(workers)]:
        future.result()


def _ready(seconds: float) -> None:
    time.sleep(seconds)


def close_workers() -> None:
    """Shut down the worker processes and threads that parallel ingest runs keep
    between calls."""
    while _EXECUTORS:
        _, executor = _EXECUTORS.popitem()
        executor.shutdown()
    while _THREADS:
        _, threads = _THREADS.popitem()
        threads.shutdown()


class _Gate:
    """A barrier that stops reader threads from starting a task while the documents
    they finished, and this process has not taken yet, contain `IN_FLIGHT_EVENTS`
    image events or more.

    The thread that reads the oldest task not taken always goes on, since this
    process waits for that task, so the gate cannot stop a run.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._events_held = 0
        self._oldest = 0
        self._open = False

    def enter(self, ticket: int) -> None:
        with self._condition:
            self._condition.wait_for(
                lambda: self._open or self._events_held < IN_FLIGHT_EVENTS
                or ticket <= self._oldest)

    def open(self) -> None:
        """Let every waiting thread go on: the run ended, so nothing more is taken."""
        with self._condition:
            self._open = True
            self._condition.notify_all()

    def finished(self, events: int) -> None:
        with self._condition:
            self._events_held += events

    def taken(self, ticket: int, events: int) -> None:
        with self._condition:
            self._events_held -= events
            self._oldest = ticket + 1
            self._condition.notify_all()


def _parse_gated(gate: _Gate, ticket: int, group: list[_Task]) -> list[LogDocument]:
    gate.enter(ticket)
    documents = _parse_group(group)
    gate.finished(sum(len(document.events) for document in documents))
    return documents


def _parse_parallel(
    files: Iterable[tuple[LogObject, bytes, str]],
    workers: int,
    take: Callable[[LogDocument, str], None],
) -> None:
    # Results are taken in submission order so that a run is repeatable. Files are
    # submitted as they arrive, across lookup chunks and stored batches, so the
    # workers do not wait for this process between chunks.
    #
    # A document of `THREADED_MIN_BYTES` or more whose format reads it in native
    # code goes to a thread of this process, which needs neither pickling nor a
    # pipe. Any other goes to a worker process, because Python code holds the GIL. Files are grouped only with
    # neighbours of the same kind, so documents arrive in the order of their files.
    pending: deque[_Sent] = deque()
    held_bytes = 0
    limit = workers * IN_FLIGHT_PER_WORKER
    density = _EventDensity()
    # Reader threads finish tasks faster than this process stores their events when
    # files are dense in them, so the gate bounds what they read ahead.
    gate = _Gate()
    tickets = itertools.count()
    group: list[_Task] = []
    digests: list[str] = []
    group_bytes = 0
    group_threaded = False

    def submit() -> None:
        nonlocal group, digests, group_bytes, held_bytes
        ticket = next(tickets)
        if group_threaded:
            future = _threads(workers).submit(_parse_gated, gate, ticket, group)
        else:
            future = _executor(workers).submit(_parse_group, group)
        pending.append(_Sent(future, ticket, digests, group_bytes, group_threaded))
        held_bytes += group_bytes
        group, digests, group_bytes = [], [], 0

    try:
        for item, data, sha256 in files:
            # The format is recognised here once, and named in the task. An unknown
            # format name goes on to `formats.read`, which quarantines the file.
            try:
                chosen: LogFormat | None = formats.choose(data, item.format)
            except KeyError:
                chosen = None
            threaded = (chosen is not None and chosen.threaded
                        and len(data) >= THREADED_MIN_BYTES)
            if group and threaded != group_threaded:
                submit()
            group_threaded = threaded
            group.append((item.location, data, item.fallback_account,
                          chosen.name if chosen is not None else item.format,
                          item.content_hash))
            digests.append(sha256)
            group_bytes += len(data)
            if (len(group) < TASK_FILES
                    and group_bytes < density.content_for(TASK_EVENTS, TASK_BYTES)):
                continue
            submit()
            # Until a task is taken, the density of events is unknown, so one task
            # per worker goes out.
            in_flight = density.content_for(IN_FLIGHT_EVENTS, IN_FLIGHT_BYTES)
            while (len(pending) >= (limit if density.known else workers)
                   or held_bytes >= in_flight):
                held_bytes -= _take_oldest(pending, take, density, gate)
                in_flight = density.content_for(IN_FLIGHT_EVENTS, IN_FLIGHT_BYTES)
        if group:
            submit()
        while pending:
            _take_oldest(pending, take, density, gate)
    except BrokenProcessPool:
        # A parser process died (killed, or out of memory), and its pool takes no
        # more tasks, so the next run starts a new one. The files of this run that
        # were not stored are read again then.
        _discard_executor(workers)
        raise
    finally:
        # After an error here, threads still waiting at the gate must not hold the
        # shared reader threads for good.
        gate.open()


@dataclass
class _Sent:
    """A task sent to a worker, with what taking its documents needs."""

    future: Future[list[LogDocument]]
    ticket: int
    digests: list[str]
    size: int
    # Whether a reader thread reads it, through the gate, or a worker process.
    threaded: bool


class _EventDensity:
    """An estimate of image events per byte of file content, from the tasks taken.

    The estimate follows a rise at once and halves with each sparser task, so a
    stretch of dense files does not slow the rest of a run for long.
    """

    def __init__(self) -> None:
        self.per_byte: float | None = None

    @property
    def known(self) -> bool:
        return self.per_byte is not None

    def observe(self, events: int, size: int) -> None:
        density = events / max(size, 1)
        self.per_byte = (density if self.per_byte is None
                         else max(density, self.per_byte / 2))

    def content_for(self, events: int, bound: int) -> int:
        """Return the bytes of content expected to hold `events` image events, or
        `bound` if that is less."""
        if not self.per_byte:
            return bound
        return max(1, min(bound, int(events / self.per_byte)))


def _take_oldest(
    pending: deque[_Sent],
    take: Callable[[LogDocument, str], None],
    density: _EventDensity,
    gate: _Gate,
) -> int:
    """Take the documents of the oldest task and return the bytes it was sent."""
    sent = pending.popleft()
    documents = sent.future.result()
    events = sum(len(document.events) for document in documents)
    density.observe(events, sent.size)
    gate.taken(sent.ticket, events if sent.threaded else 0)
    for document, digest in zip(documents, sent.digests, strict=True):
        take(document, digest)
    return sent.size
