"""Reading with several workers stores what reading with one stores.

CloudTrail log files of some size go to threads, which the native reader lets run
outside the GIL, and other documents to worker processes. Files are grouped only
with neighbours of the same kind, so documents reach the store in file order.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from imageprov import formats, ingest as ingest_module
from imageprov.ingest import ingest
from imageprov.sources import LogObject
from imageprov.sources.files import LocalFolder
from imageprov.store import Store
from imageprov.store.tables import CoverageRow, LogFileRow, QuarantineRow
from tests.helpers import trail
from tests.helpers.failing_store import fail_event_write

DATA = Path(__file__).parents[1] / "data"
T0 = datetime(2026, 11, 4, 8, 0, tzinfo=UTC)
BUILD = trail.role_identity("ImageBuild", "packer-2", path="/build/")


def _mixed_folder(root: Path) -> Path:
    """Write CloudTrail log files in several shapes between Azure and GCP exports,
    with a broken file among them."""
    folder = root / "mixed"
    for number in range(6):
        when = T0 + timedelta(minutes=5 * number)
        records = trail.noise(when, 20) + [trail.create_image(
            BUILD, when, f"ami-0000000000000b{number:03d}", ip="10.0.0.7")]
        path = folder / "a" / trail.log_key(when, suffix=f"Mixed{number:02d}Abcdefghij")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(trail.log_file(records))
    lines = [json.dumps(record) for record in trail.noise(T0, 3)]
    (folder / "b-lines.json").write_text("\n".join(lines) + "\n")
    (folder / "c-broken.json.gz").write_bytes(b"\x1f\x8b not gzip")
    shutil.copytree(DATA / "azure" / "activity", folder / "d-azure")
    shutil.copytree(DATA / "gcp" / "audit-logs", folder / "e-gcp")
    for number in range(3):
        when = T0 + timedelta(hours=2, minutes=number)
        path = folder / "f" / trail.log_key(when, suffix=f"Late{number:02d}Abcdefghijk")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(trail.log_file(trail.noise(when, 10)))
    return folder


def _objects(folder: Path) -> list[LogObject]:
    # Each object carries a checkpoint position, as an S3 trail's objects do, so
    # that the stored checkpoint shows the order documents were stored in.
    return [LogObject(item.location, item.fallback_account, item.loader, "mixed",
                      f"{number:04d}")
            for number, item in enumerate(LocalFolder(folder).objects())]


def _stored(store: Store) -> dict[str, object]:
    with store.engine.connect() as connection:
        files = sorted(connection.execute(select(
            LogFileRow.location, LogFileRow.sha256, LogFileRow.shape, LogFileRow.records,
            LogFileRow.image_events, LogFileRow.errors)).all())
        coverage = sorted(
            (str(row.account), str(row.region), row.first, row.last)
            for row in connection.execute(select(CoverageRow)))
        quarantine = sorted(connection.execute(select(
            QuarantineRow.location, QuarantineRow.record_index, QuarantineRow.field,
            QuarantineRow.error)).all())
    events = sorted((event.key, event.model_dump_json()) for event in store.events())
    return {"files": files, "coverage": coverage, "quarantine": quarantine,
            "events": events, "checkpoint": store.checkpoint("mixed")}


@pytest.mark.parametrize("task_files", [1, ingest_module.TASK_FILES])
@pytest.mark.parametrize("threaded_min_bytes", [0, ingest_module.THREADED_MIN_BYTES])
def test_parallel_ingest_stores_what_one_worker_stores(tmp_path, new_database,
                                                       monkeypatch, threaded_min_bytes,
                                                       task_files):
    folder = _mixed_folder(tmp_path)
    objects = _objects(folder)
    serial_store = Store.open(new_database())
    serial = ingest(serial_store, objects, workers=1, batch_files=4)

    # With one file a task, thread and process tasks alternate; with more, files of
    # several formats are read together. The log files here are small, so they go
    # to threads only without a minimum size.
    monkeypatch.setattr(ingest_module, "TASK_FILES", task_files)
    monkeypatch.setattr(ingest_module, "THREADED_MIN_BYTES", threaded_min_bytes)
    kinds: list[str] = []
    threads, processes = ingest_module._threads, ingest_module._executor
    monkeypatch.setattr(ingest_module, "_threads",
                        lambda workers: kinds.append("thread") or threads(workers))
    monkeypatch.setattr(ingest_module, "_executor",
                        lambda workers: kinds.append("process") or processes(workers))
    parallel_store = Store.open(new_database())
    try:
        parallel = ingest(parallel_store, objects, workers=2, batch_files=4)
    finally:
        ingest_module.close_workers()

    assert formats.FALLBACK.threaded, "the native CloudTrail reader was not built"
    assert ("thread" in kinds) is (threaded_min_bytes == 0)
    assert "process" in kinds
    expected = _stored(serial_store)
    assert _stored(parallel_store) == expected
    assert expected["checkpoint"] == f"{len(objects) - 1:04d}"
    assert sum(key.startswith("cloudtrail:") for key, _ in expected["events"]) == 6
    assert len(expected["events"]) > 6
    assert (parallel.records, parallel.events, parallel.files_failed) == (
        serial.records, serial.events, 1)
    assert serial.records >= 6 * 21 + 3 + 30


@pytest.mark.parametrize("workers", [1, 2])
def test_parallel_ingest_skips_content_read_before(tmp_path, new_database, workers):
    objects = _objects(_mixed_folder(tmp_path))
    store = Store.open(new_database())
    try:
        first = ingest(store, objects, workers=workers)
        second = ingest(store, objects, workers=workers)
    finally:
        ingest_module.close_workers()
    assert first.files == len(objects)
    # The broken file is read again each time; everything else is known.
    assert (second.files, second.skipped) == (1, len(objects) - 1)
    assert second.new_events == 0


def test_group_read_alone_when_reading_together_fails(tmp_path, monkeypatch, caplog):
    objects = _objects(_mixed_folder(tmp_path))
    group = [(item.location, item.load(), item.fallback_account, item.format,
              item.content_hash) for item in objects]
    expected = [ingest_module._parse(*task) for task in group]

    def broken(documents):
        raise RuntimeError("defect")

    monkeypatch.setattr(ingest_module.formats, "read_many", broken)
    assert ingest_module._parse_group(group) == expected
    assert f"reading {len(group)} files together failed" in caplog.text


def test_event_density_bounds_follow_rise_and_decay():
    density = ingest_module._EventDensity()
    assert not density.known
    assert density.content_for(100, 2**20) == 2**20
    density.observe(0, 1000)
    assert density.known
    assert density.content_for(100, 2**20) == 2**20
    density.observe(50, 1000)
    assert density.content_for(100, 2**20) == 2000
    # A sparser task halves the estimate, and a denser one raises it at once.
    density.observe(1, 1000)
    assert density.content_for(100, 2**20) == 4000
    density.observe(200, 1000)
    assert density.content_for(100, 2**20) == 500
    # At least one byte, so that a file is always sent.
    density.observe(10**9, 1)
    assert density.content_for(1, 2**20) == 1


def _write_dense_files(folder: Path, files: int, events: int, prefix: str = "") -> None:
    """Write log files whose records are all CreateImage calls, `events` a file."""
    folder.mkdir(parents=True, exist_ok=True)
    moment = datetime(2026, 11, 30, 8, tzinfo=UTC)
    for number in range(files):
        records = [trail.create_image(trail.user_identity("bob"),
                                      moment + timedelta(seconds=index),
                                      f"ami-{number * 100 + index:017x}",
                                      eid=f"dense-{number}-{index}")
                   for index in range(events)]
        (folder / f"{prefix}{number:03d}.json").write_bytes(trail.log_file(records))


def test_tasks_shrink_for_files_dense_in_events(tmp_path, monkeypatch, new_database):
    folder = tmp_path / "dense"
    _write_dense_files(folder, 40, 50)
    monkeypatch.setattr(ingest_module, "THREADED_MIN_BYTES", 0)
    monkeypatch.setattr(ingest_module, "TASK_EVENTS", 100)
    monkeypatch.setattr(ingest_module, "IN_FLIGHT_EVENTS", 200)
    original = ingest_module._parse_group
    sizes: list[int] = []

    def recording(group):
        sizes.append(len(group))
        return original(group)

    monkeypatch.setattr(ingest_module, "_parse_group", recording)
    store = Store.open(new_database())
    try:
        summary = ingest(store, LocalFolder(folder).objects(), workers=2)
    finally:
        ingest_module.close_workers()
    assert summary.new_events == 2000
    # Two full tasks go out before any is taken. Then a task ends once its files
    # are expected to hold 100 events: the files of 50 vary in size, so at most 3.
    assert sizes[:2] == [ingest_module.TASK_FILES] * 2
    assert max(sizes[2:]) <= 3
    assert sum(sizes) == 40


def test_gate_holds_threads_until_events_taken(monkeypatch):
    import threading

    monkeypatch.setattr(ingest_module, "IN_FLIGHT_EVENTS", 10)
    gate = ingest_module._Gate()
    gate.finished(10)
    passed: list[int] = []

    def reader(ticket: int) -> None:
        gate.enter(ticket)
        passed.append(ticket)

    later = threading.Thread(target=reader, args=(2,))
    later.start()
    later.join(timeout=0.3)
    assert later.is_alive()
    # The oldest task not taken always goes on.
    reader(0)
    assert passed == [0]
    gate.taken(0, 10)
    later.join(timeout=5)
    assert passed == [0, 2]


def test_gate_opens_when_the_run_ends(monkeypatch):
    import threading

    monkeypatch.setattr(ingest_module, "IN_FLIGHT_EVENTS", 1)
    gate = ingest_module._Gate()
    gate.finished(5)
    waiting = threading.Thread(target=gate.enter, args=(3,))
    waiting.start()
    waiting.join(timeout=0.3)
    assert waiting.is_alive()
    gate.open()
    waiting.join(timeout=5)
    assert not waiting.is_alive()


def test_failed_ingest_leaves_reader_threads_free(tmp_path, monkeypatch, new_database):
    import threading

    folder = tmp_path / "mixed"
    folder.mkdir()
    moment = datetime(2026, 11, 30, 8, tzinfo=UTC)
    # Files without image events first, so that many tasks go out, then files
    # dense in them, which fill the gate while this process is still taking.
    for number in range(16):
        (folder / f"a{number:03d}.json").write_bytes(
            trail.log_file(trail.noise(moment, 5)))
    _write_dense_files(folder, 30, 20, prefix="b")
    monkeypatch.setattr(ingest_module, "THREADED_MIN_BYTES", 0)
    monkeypatch.setattr(ingest_module, "TASK_FILES", 1)
    monkeypatch.setattr(ingest_module, "IN_FLIGHT_EVENTS", 1)
    monkeypatch.setattr(ingest_module, "BATCH_EVENTS", 20)
    failing = Store.open(new_database())
    fail_event_write(monkeypatch, failing)
    gates: list[ingest_module._Gate] = []

    class RecordedGate(ingest_module._Gate):
        def __init__(self) -> None:
            super().__init__()
            gates.append(self)

    monkeypatch.setattr(ingest_module, "_Gate", RecordedGate)
    run: threading.Thread | None = None
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            ingest(failing, LocalFolder(folder).objects(), workers=2)

        # The same reader threads serve the next run.
        store = Store.open(new_database())
        outcome: list[int] = []
        run = threading.Thread(target=lambda: outcome.append(
            ingest(store, LocalFolder(folder).objects(), workers=2).new_events),
            daemon=True)
        run.start()
        run.join(timeout=20)
        assert not run.is_alive()
        assert outcome == [600]
    finally:
        # Frees threads that a failing run left waiting, so that the test fails
        # instead of hanging.
        for gate in gates:
            gate.open()
        if run is not None:
            run.join(timeout=20)
        ingest_module.close_workers()


_STARTS_WORKERS = """
import sys, time
from imageprov import ingest

if __name__ == "__main__":
    ingest.start_workers(2)
    (executor,) = ingest._EXECUTORS.values()
    print(" ".join(str(pid) for pid in executor._processes), flush=True)
    time.sleep(120)
"""


def _running(pid: int) -> bool:
    """Say whether a process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_parsers_end_with_killed_parent(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "starts_workers.py"
    script.write_text(_STARTS_WORKERS)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                              text=True)
    try:
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2
        assert all(_running(pid) for pid in workers)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in workers if _running(pid)] == []
    finally:
        parent.kill()
        parent.stdout.close()


def test_emptied_gzip_files_reported_each_run(tmp_path, new_database):
    # All emptied files share one content hash, which must not hide any of them.
    folder = tmp_path / "emptied"
    folder.mkdir()
    for name in ("a.json", "b.json.gz", "c.json.gz", "d.JSON.GZ"):
        (folder / name).write_bytes(b"")
    store = Store.open(new_database())
    try:
        for _ in range(2):
            summary = ingest(store, LocalFolder(folder).objects(), workers=1)
            with store.engine.connect() as connection:
                quarantined = {row.location.rsplit("/", 1)[-1] for row in
                               connection.execute(select(QuarantineRow.location))}
            assert quarantined == {"b.json.gz", "c.json.gz", "d.JSON.GZ"}
            assert summary.problems == 3
    finally:
        store.close()


def test_killed_parser_pool_replaced(tmp_path, new_database):
    import os
    import signal
    from concurrent.futures.process import BrokenProcessPool

    folder = tmp_path / "small"
    for number in range(40):
        when = T0 + timedelta(minutes=number)
        path = folder / trail.log_key(when, suffix=f"Small{number:02d}Abcdefghijk")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(trail.log_file([trail.create_image(
            BUILD, when, f"ami-00000000000{number:05d}", ip="10.0.0.7")]))
    store = Store.open(new_database())
    try:
        ingest_module.start_workers(2)
        (executor,) = ingest_module._EXECUTORS.values()
        os.kill(next(iter(executor._processes)), signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            ingest(store, LocalFolder(folder).objects(), workers=2)
        summary = ingest(store, LocalFolder(folder).objects(), workers=2)
        assert summary.files + summary.skipped == 40
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM events").scalar_one() == 40
    finally:
        ingest_module.close_workers()
        store.close()
