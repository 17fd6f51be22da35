"""Reading the same files twice, or in another order, changes nothing."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imageprov import cycle
from imageprov import ingest as ingest_module
from imageprov.errors import SourceError
from imageprov.ingest import ingest
from imageprov.model import Image, ImageKind, Platform, ami_arn
from imageprov.policy.schema import load_policy
from imageprov.sources.aws.trail_locations import LocalTrail, LogObject
from imageprov.sources.files import LocalFolder
from imageprov.store import Store
from tests.helpers import trail
from tests.helpers.failing_store import fail_event_write

T0 = datetime(2026, 11, 3, 6, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=2)
POLICY = Path(__file__).parents[2] / "policies" / "example.yaml"
BUILD = trail.role_identity("ImageBuild", "packer-9", path="/build/")
PACKER = "Packer/1.11.2 (+https://www.packer.io)"


def _write_files(folder: Path) -> list[str]:
    """Write five log files; the fourth repeats two records of the first, as
    CloudTrail may, and one file contains a record only the late delivery carries."""
    first = [trail.create_image(BUILD, T0, "ami-0000000000000a001", ip="10.20.0.5",
                                agent=PACKER),
             trail.create_image(trail.root_identity(), T0 + timedelta(minutes=1),
                                "ami-0000000000000a002", ip="172.64.9.9")]
    files = [
        first + trail.noise(T0, 10),
        [trail.copy_image(BUILD, T0 + timedelta(minutes=20), "ami-0000000000000a003",
                          "ami-0000000000000a001", "us-east-1", ip="10.20.0.5",
                          agent=PACKER)] + trail.noise(T0 + timedelta(minutes=20), 10),
        [trail.share_image(trail.user_identity("mallory"), T0 + timedelta(minutes=40),
                           "ami-0000000000000a003", {"group": "all"}, ip="10.20.0.9")],
        first[:2],
        trail.noise(T0 + timedelta(hours=1), 5),
    ]
    names = []
    for number, records in enumerate(files):
        when = T0 + timedelta(minutes=5 + 10 * number)
        path = folder / trail.log_key(when, suffix=f"Order{number:02d}Abcdefghi")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(trail.log_file(records))
        names.append(str(path))
    return names


def _images() -> list[Image]:
    return [
        Image(ref=ami_arn("us-east-1", trail.ACCOUNT, image_id), platform=Platform.AWS,
              kind=ImageKind.AMI, account=trail.ACCOUNT, region="us-east-1",
              native_id=image_id, created=T0)
        for image_id in ("ami-0000000000000a001", "ami-0000000000000a002",
                         "ami-0000000000000a003", "ami-0000000000000a004")
    ]


def _run(database: str, objects: list[LogObject], times: int = 1):
    store = Store.open(database)
    store.save_images(_images())
    for _ in range(times):
        ingest(store, objects, workers=1)
    policy, text = load_policy(POLICY)
    evaluation, _ = cycle.evaluate(store, policy, text, now=NOW)
    events = sorted((e.key, e.model_dump_json()) for e in store.events())
    verdicts = {ref: v.model_dump(exclude={"decided_at"})
                for ref, v in store.current_verdicts().items()}
    return events, verdicts, store


def test_ingest_twice_same_result(tmp_path, new_database):
    _write_files(tmp_path / "logs")
    objects = list(LocalTrail(tmp_path / "logs").objects())
    once = _run(new_database(), objects)
    twice = _run(new_database(), objects, times=2)
    assert once[0] == twice[0]
    assert once[1] == twice[1]
    assert len(once[0]) == 4


def test_ingest_any_order_same_result(tmp_path, new_database):
    _write_files(tmp_path / "logs")
    objects = list(LocalTrail(tmp_path / "logs").objects())
    baseline = _run(new_database(), objects)
    shuffler = random.Random(7)
    for attempt in range(4):
        shuffled = objects[:]
        shuffler.shuffle(shuffled)
        result = _run(new_database(), shuffled)
        assert result[0] == baseline[0]
        assert result[1] == baseline[1]


def test_duplicate_record_stored_once(tmp_path, new_database):
    _write_files(tmp_path / "logs")
    events, verdicts, store = _run(new_database(),
                                   list(LocalTrail(tmp_path / "logs").objects()))
    keys = [key for key, _ in events]
    assert len(keys) == len(set(keys))
    copy = verdicts[ami_arn("us-east-1", trail.ACCOUNT, "ami-0000000000000a003")]
    assert copy["status"] == "flagged"
    assert [flag.value for flag in copy["flags"]] == ["public"]


def test_reingest_keeps_earlier_rows(tmp_path, new_database):
    names = _write_files(tmp_path / "logs")
    store = Store.open(new_database())
    ingest(store, LocalTrail(names[0]).objects())
    before = {e.key for e in store.events()}
    Path(names[1]).write_bytes(b"\x1f\x8b\x08 truncated")
    summary = ingest(store, LocalTrail(tmp_path / "logs").objects())
    after = {e.key for e in store.events()}
    assert before <= after
    assert summary.problems == 1
    assert store.quarantined()[0].location == names[1]


def test_file_read_after_a_failed_read_leaves_quarantine(tmp_path, new_database):
    names = _write_files(tmp_path / "logs")
    good = Path(names[1]).read_bytes()
    Path(names[1]).write_bytes(b"\x1f\x8b\x08 truncated")
    store = Store.open(new_database())
    ingest(store, LocalTrail(tmp_path / "logs").objects())
    assert [(row.location, row.record_index) for row in store.quarantined()] == [
        (names[1], -1)]
    Path(names[1]).write_bytes(good)
    summary = ingest(store, LocalTrail(tmp_path / "logs").objects())
    assert summary.problems == 0
    assert store.quarantined() == []


def test_checkpoint_moves_only_with_stored_files(tmp_path, monkeypatch, new_database):
    names = _write_files(tmp_path / "logs")
    objects = [
        LogObject(item.location, item.fallback_account, item.loader, "folder", f"key-{n}")
        for n, item in enumerate(LocalTrail(tmp_path / "logs").objects())
    ]
    store = Store.open(new_database())
    fail_event_write(monkeypatch, store)
    try:
        ingest(store, objects, workers=1, batch_files=2)
    except RuntimeError:
        pass
    assert store.checkpoint("folder") == "key-1"
    assert store.log_file_count() == 2
    assert len(names) == 5


@pytest.mark.parametrize(("bound", "limit", "files_per_batch"), [
    ("BATCH_RECORDS", 12, [1, 2, 2]),
    ("BATCH_EVENTS", 2, [1, 2, 1, 1]),
])
def test_batch_ends_at_record_or_event_bound(tmp_path, monkeypatch, new_database,
                                             bound, limit, files_per_batch):
    # The five files hold 12, 11, 1, 2 and 5 records, and 2, 1, 1, 2 and 0 image events.
    _write_files(tmp_path / "logs")
    monkeypatch.setattr(ingest_module, bound, limit)
    store = Store.open(new_database())
    original = store.save_documents
    batches: list[int] = []

    def counting(documents, checkpoints=None):
        batches.append(len(documents))
        return original(documents, checkpoints)

    monkeypatch.setattr(store, "save_documents", counting)
    summary = ingest(store, LocalTrail(tmp_path / "logs").objects(), workers=1)
    assert batches == files_per_batch
    assert summary.files == 5
    assert store.log_file_count() == 5


def test_conflicting_duplicates_resolve_by_file_order(tmp_path, new_database):
    mallory = trail.user_identity("mallory")
    golden = trail.create_image(BUILD, T0, "ami-0000000000000a001", ip="10.20.0.5",
                                agent=PACKER, eid="dup-eid-1")
    forged = trail.create_image(mallory, T0, "ami-0000000000000a001", ip="8.8.8.8",
                                eid="dup-eid-1")
    (tmp_path / "l1").mkdir()
    (tmp_path / "l2").mkdir()
    (tmp_path / "l1" / "b-mallory.json").write_text(json.dumps({"Records": [forged]}))
    (tmp_path / "l2" / "a-golden.json").write_text(json.dumps({"Records": [golden]}))
    results = []
    for order in (["l1", "l2"], ["l2", "l1"]):
        store = Store.open(new_database())
        for folder in order:
            ingest(store, LocalTrail(tmp_path / folder).objects())
        (event,) = store.events()
        results.append((event.principal.id, event.source_ip, event.origin.location,
                        json.loads(store.raw_record(event.key))["sourceIPAddress"]))
    assert results[0] == results[1]
    # The copy in the location that sorts first is kept whole, parsed row and raw alike.
    assert results[0][2].endswith("l1/b-mallory.json")
    assert results[0][1] == "8.8.8.8"
    assert results[0][3] == "8.8.8.8"


def test_file_that_failed_whole_is_read_again(tmp_path, new_database):
    names = _write_files(tmp_path / "logs")
    Path(names[1]).write_bytes(b"\x1f\x8b\x08 truncated")
    store = Store.open(new_database())
    first = ingest(store, LocalTrail(tmp_path / "logs").objects())
    second = ingest(store, LocalTrail(tmp_path / "logs").objects())
    assert (first.files_failed, first.skipped) == (1, 0)
    # The broken file is not marked as read, so every run reports it again.
    assert (second.files_failed, second.files) == (1, 1)
    assert second.skipped == len(names) - 1
    assert [(row.location, row.record_index) for row in store.quarantined()] == [
        (names[1], -1)]
    assert store.log_file_count() == len(names) - 1


def _duplicated_event_files(folder: Path) -> dict[str, Path]:
    """Write two identical files with an approved CreateImage and a third whose
    record has the same eventID but names the root user from a public address."""
    when = T0 + timedelta(hours=3)
    real = trail.create_image(BUILD, when, "ami-0000000000000a004", ip="10.20.0.5",
                              agent=PACKER)
    forged = json.loads(json.dumps(real))
    forged["userIdentity"] = trail.root_identity()
    forged["sourceIPAddress"] = "172.64.1.1"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"a-real": folder / "a-real.json", "m-forged": folder / "m-forged.json",
             "z-copy": folder / "z-copy.json"}
    paths["a-real"].write_bytes(trail.log_file([real]))
    paths["z-copy"].write_bytes(trail.log_file([real]))
    paths["m-forged"].write_bytes(trail.log_file([forged]))
    return paths


def test_duplicated_event_kept_from_first_location_in_any_order(tmp_path, new_database):
    paths = _duplicated_event_files(tmp_path / "logs")
    outcomes = set()
    for order in (["a-real", "m-forged", "z-copy"], ["z-copy", "m-forged", "a-real"],
                  ["m-forged", "z-copy", "a-real"]):
        store = Store.open(new_database())
        for name in order:
            ingest(store, LocalTrail(paths[name]).objects())
        (event,) = store.events()
        outcomes.add((event.origin.location, event.principal.id, event.source_ip))
        # The stored file row takes the first location of its content, so a later
        # run skips both copies without reading them.
        again = ingest(store, LocalTrail(tmp_path / "logs").objects())
        assert (again.skipped, again.files) == (3, 0)
        store.close()
    assert outcomes == {(str(paths["a-real"]), BUILD["arn"], "10.20.0.5")}


def test_duplicated_event_same_however_the_path_is_typed(tmp_path, new_database,
                                                         monkeypatch):
    paths = _duplicated_event_files(tmp_path / "logs")
    monkeypatch.chdir(tmp_path / "logs")
    store = Store.open(new_database())
    ingest(store, LocalTrail("z-copy.json").objects())
    ingest(store, LocalTrail(paths["m-forged"]).objects())
    ingest(store, LocalTrail("./a-real.json").objects())
    (event,) = store.events()
    assert event.origin.location == str(paths["a-real"])
    assert event.principal.id == BUILD["arn"]


def test_conflicting_copy_of_an_event_is_logged(tmp_path, new_database, caplog):
    paths = _duplicated_event_files(tmp_path / "logs")
    store = Store.open(new_database())
    ingest(store, LocalTrail(paths["z-copy"]).objects())
    ingest(store, LocalTrail(paths["a-real"]).objects())
    # The same record again is an ordinary duplicate delivery.
    assert "conflicting copies" not in caplog.text
    ingest(store, LocalTrail(paths["m-forged"]).objects())
    (line,) = [r.getMessage() for r in caplog.records if "conflicting copies" in r.getMessage()]
    assert str(paths["m-forged"]) in line
    assert str(paths["a-real"]) in line
    assert "principal_id, source_ip" in line


def test_conflicting_copies_in_one_file_logged(tmp_path, new_database, caplog):
    when = T0 + timedelta(hours=3)
    real = trail.create_image(BUILD, when, "ami-0000000000000a005", ip="10.20.0.5",
                              agent=PACKER)
    forged = dict(real, sourceIPAddress="172.64.1.1")
    path = tmp_path / "both.json"
    path.write_bytes(trail.log_file([real, forged, real]))
    store = Store.open(new_database())
    ingest(store, LocalTrail(path).objects())
    lines = [r.getMessage() for r in caplog.records if "conflicting copies" in r.getMessage()]
    # Only the copy that differs is reported, against the first copy.
    assert len(lines) == 1
    assert f"{path} #1 differs from {path} #0 in source_ip" in lines[0]
    (event,) = store.events()
    assert event.source_ip == "10.20.0.5"


def test_duplicated_event_same_through_links_and_dots(tmp_path, new_database, monkeypatch):
    paths = _duplicated_event_files(tmp_path / "logs")
    (tmp_path / "linked").symlink_to(tmp_path / "logs")
    (tmp_path / "logs" / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    store = Store.open(new_database())
    for typed in ("linked/z-copy.json", "logs/sub/../m-forged.json",
                  f"/{tmp_path}/logs//a-real.json"):
        ingest(store, LocalTrail(typed).objects())
    (event,) = store.events()
    assert event.origin.location == str(paths["a-real"].resolve())
    assert event.principal.id == BUILD["arn"]
    assert store.log_file_count() == 2


def test_empty_path_is_not_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_files(tmp_path / "logs")
    with pytest.raises(SourceError) as caught:
        list(LocalTrail("").objects())
    assert "empty path" in str(caught.value)


def test_quarantine_follows_the_kept_copy(tmp_path, new_database):
    records = trail.noise(T0, 3)
    del records[1]["eventTime"]
    folder = tmp_path / "logs"
    folder.mkdir()
    for name in ("z.json", "a.json"):
        (folder / name).write_bytes(trail.log_file(records))
    results = []
    for order in (["z.json", "a.json"], ["a.json", "z.json"]):
        store = Store.open(new_database())
        for name in order:
            ingest(store, LocalFolder(folder / name).objects())
        with store.engine.connect() as connection:
            files = connection.exec_driver_sql("SELECT location FROM log_files").all()
        quarantined = [(Path(row.location).name, row.record_index, row.field)
                       for row in store.quarantined()]
        results.append(([Path(location).name for (location,) in files], quarantined))
        store.close()
    assert results[0] == results[1]
    assert results[0] == (["a.json"], [("a.json", 1, "eventTime")])
