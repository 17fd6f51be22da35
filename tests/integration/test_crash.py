"""Killing the daemon at any point loses nothing and stores nothing twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.helpers import trail

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
KILLS = 24
INGEST_KILLS = 14
FILES = 240
LEGACY_IMAGES = 3000
EVALUATING = "step=evaluate started"
EVALUATED = "step=evaluate images="


def _write_trail(folder: Path) -> None:
    role = trail.role_identity("ImageBuild", "packer", path="/build/")
    rng = random.Random(11)
    for number in range(FILES):
        when = T0 + timedelta(minutes=5 * number)
        records = trail.noise(when, 150)
        for offset in range(3):
            image_id = f"ami-{number:08x}{offset:09x}"
            identity = role if rng.random() < 0.8 else trail.user_identity("mallory")
            records.append(trail.create_image(identity, when, image_id, ip="10.20.0.4"))
        path = folder / trail.log_key(when, suffix=f"Crash{number:03d}abcdefgh")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(trail.log_file(records))


def _write_inventory(path: Path) -> None:
    images = [{"ImageId": f"ami-{number:08x}{offset:09x}", "OwnerId": trail.ACCOUNT,
               "Name": f"golden-{number}-{offset}", "State": "available",
               "CreationDate": (T0 + timedelta(minutes=5 * number)).strftime(
                   "%Y-%m-%dT%H:%M:%S.000Z")}
              for number in range(FILES) for offset in range(3)]
    # Images no event names make each evaluation long enough to be killed inside.
    images += [{"ImageId": f"ami-{number:017x}", "OwnerId": trail.ACCOUNT,
                "Name": f"legacy-{number}", "State": "available",
                "CreationDate": "2020-01-01T00:00:00.000Z"}
               for number in range(0x10000000, 0x10000000 + LEGACY_IMAGES)]
    path.write_bytes(orjson.dumps({"Images": images}))


def _config(tmp_path: Path) -> Path:
    _write_trail(tmp_path / "logs")
    _write_inventory(tmp_path / "images.json")
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump({"builders": [
        {"name": "pipeline",
         "roles": [f"arn:aws:iam::{trail.ACCOUNT}:role/build/ImageBuild"]}]}))
    every_second = {"interval": "1s"}
    path = tmp_path / "crash.yaml"
    path.write_text(yaml.safe_dump({
        "policy": "policy.yaml", "workers": 2, "batch_files": 2,
        "aws": {"inventory_files": [{"path": "images.json", "kind": "ami",
                                     "region": "us-east-1"}],
                "cloudtrail": [{"path": "logs"}]},
        "schedule": {"inventory": every_second, "logs": every_second,
                     "evaluate": every_second},
    }))
    return path


class _Daemon:
    """`imageprov run` as a real process, with the lines it logs as they arrive."""

    def __init__(self, config: Path, database: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "imageprov", "run", "--config", str(config),
             "--database", database],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=os.environ.copy(), start_new_session=True)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append((time.monotonic(), line))

    def count(self, marker: str) -> int:
        return sum(marker in line for _, line in list(self.lines))

    def times(self, marker: str) -> list[float]:
        return [when for when, line in list(self.lines) if marker in line]

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)
        self._reader.join(timeout=10)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=120)
        self._reader.join(timeout=10)
        return code

    def output(self) -> str:
        return "".join(line for _, line in self.lines)


def _wait_until(condition, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the daemon made no progress in time")
        time.sleep(0.02)


def _settle(daemon: _Daemon, database: str) -> None:
    """Wait until every file is stored and an evaluation that began afterwards ended."""
    _wait_until(lambda: _count(database, "log_files") == FILES or not daemon.alive())
    assert daemon.alive(), daemon.output()
    # Steps never overlap, so the second evaluation to end from here on began after
    # the logs step that stored the last file.
    done = daemon.count(EVALUATED)
    _wait_until(lambda: daemon.count(EVALUATED) >= done + 2 or not daemon.alive())
    assert daemon.alive(), daemon.output()


def _count(database: str, table: str) -> int:
    engine = create_engine(database)
    try:
        with engine.connect() as connection:
            return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
    except Exception:  # noqa: BLE001 - killed before the schema was created
        return 0
    finally:
        engine.dispose()


def _snapshot(database: str) -> dict[str, object]:
    engine = create_engine(database)
    with engine.connect() as connection:
        events = connection.execute(text(
            "SELECT key, count(*) FROM events GROUP BY key ORDER BY key")).all()
        files = connection.execute(text(
            "SELECT sha256, records, image_events FROM log_files ORDER BY sha256")).all()
        verdicts = connection.execute(text(
            "SELECT v.image, v.status, v.flags, v.rule, v.event_id FROM verdicts v "
            "JOIN (SELECT image, max(id) AS id FROM verdicts GROUP BY image) newest "
            "ON v.id = newest.id ORDER BY v.image")).all()
        coverage = connection.execute(text(
            "SELECT account, region, count(*) FROM coverage GROUP BY account, region")).all()
    engine.dispose()
    return {"events": [tuple(row) for row in events],
            "files": [tuple(row) for row in files],
            "verdicts": [(row[0], row[1], str(row[2]), row[3], row[4]) for row in verdicts],
            "coverage": [tuple(row) for row in coverage]}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_killed_daemon_matches_uninterrupted(backend, tmp_path, request):
    config = _config(tmp_path)

    def database(name: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / name}"
        return request.getfixturevalue("postgres_url") if name == "clean.db" else (
            _second_postgres(request))

    clean = database("clean.db")
    daemon = _Daemon(config, clean)
    _settle(daemon, clean)
    assert daemon.stop() == 0, daemon.output()
    expected = _snapshot(clean)
    assert len(expected["events"]) == 3 * FILES
    assert len(expected["verdicts"]) == 3 * FILES + LEGACY_IMAGES
    evaluations = [end - begin for begin, end in zip(daemon.times(EVALUATING),
                                                    daemon.times(EVALUATED), strict=False)]
    evaluation = min(evaluations)

    crashed = database("crashed.db")
    rng = random.Random(5)
    stored_after_kill = []
    killed_in_evaluation = 0
    for kill in range(KILLS):
        daemon = _Daemon(config, crashed)
        before = stored_after_kill[-1] if stored_after_kill else 0
        if kill < INGEST_KILLS and before < FILES:
            # A kill during ingest: right after this process has stored something new.
            _wait_until(lambda: _count(crashed, "log_files") > before or not daemon.alive())
        else:
            # A kill during evaluation: a random moment after one has begun, within
            # the first half of the time the shortest evaluation took before.
            _wait_until(lambda: daemon.count(EVALUATING) > 0 or not daemon.alive())
            time.sleep(rng.uniform(0.0, evaluation / 2))
            killed_in_evaluation += daemon.count(EVALUATED) == 0
        assert daemon.alive(), daemon.output()
        daemon.kill()
        stored_after_kill.append(_count(crashed, "log_files"))
    partial = [count for count in stored_after_kill if 0 < count < FILES]
    assert len(partial) >= 8, stored_after_kill
    assert stored_after_kill[-1] == FILES, stored_after_kill
    assert killed_in_evaluation >= 5, (killed_in_evaluation, evaluation)
    daemon = _Daemon(config, crashed)
    _settle(daemon, crashed)
    assert daemon.stop() == 0, daemon.output()
    result = _snapshot(crashed)
    assert result["events"] == expected["events"]
    assert all(count == 1 for _, count in result["events"])
    assert result["files"] == expected["files"]
    assert result["coverage"] == expected["coverage"]
    assert result["verdicts"] == expected["verdicts"]


def _second_postgres(request) -> str:
    # A second, separate database on the same server, created by a fresh fixture call.
    import uuid

    import psycopg

    host, port = request.getfixturevalue("postgres_server")
    name = f"imageprov_crash_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres",
                         autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    request.addfinalizer(drop)
    return f"postgresql+psycopg://postgres@{host}:{port}/{name}"
