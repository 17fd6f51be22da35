"""Records that the database cannot hold lose only themselves, on every backend."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imageprov.ingest import ingest
from imageprov.sources.files import LocalFolder
from imageprov.store import Store
from tests.helpers import trail

T0 = datetime(2026, 11, 3, 6, 0, tzinfo=UTC)
BUILD = trail.role_identity("ImageBuild", "packer-9", path="/build/")


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_nul_characters_quarantine_their_record_only(database_url: str, tmp_path: Path):
    good = trail.create_image(BUILD, T0, "ami-0000000000000b001", ip="10.20.0.5")
    with_nul = trail.create_image(BUILD, T0 + timedelta(minutes=1), "ami-0000000000000b002",
                                  ip="10.20.0.5", agent="Packer/1\x00evil")
    other = trail.noise(T0 + timedelta(minutes=2), 1)[0]
    other["awsRegion"] = "us-east-1\x00"
    bad_time = trail.noise(T0 + timedelta(minutes=3), 1)[0]
    bad_time["eventTime"] = "2026-11-03T06:00:00\x00Z"
    path = tmp_path / "logs" / "nul.json"
    path.parent.mkdir()
    path.write_bytes(trail.log_file([good, with_nul, other, bad_time]))

    store = Store.open(database_url)
    try:
        summary = ingest(store, LocalFolder(path.parent).objects())
        assert summary.files_failed == 0
        assert summary.new_events == 1
        events = store.events()
        assert [event.target for event in events] == ["ami-0000000000000b001"]
        problems = {(row.record_index, row.field): row.error
                    for row in store.quarantined()}
        assert (1, "userAgent") in problems
        assert "user_agent contains a NUL character" in problems[(1, "userAgent")]
        assert (3, "eventTime") in problems
        assert "\x00" not in problems[(3, "eventTime")]
        assert (trail.ACCOUNT, "us-east-1\ufffd") in store.coverage()

        # The next file is stored as usual: nothing was left half written.
        later = tmp_path / "logs" / "later.json"
        later.write_bytes(trail.log_file([
            trail.create_image(BUILD, T0 + timedelta(hours=1), "ami-0000000000000b003",
                               ip="10.20.0.5")]))
        again = ingest(store, LocalFolder(path.parent).objects())
        assert (again.skipped, again.new_events) == (1, 1)
    finally:
        store.close()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_nul_from_an_envelope_quarantines_the_event(database_url: str, tmp_path: Path):
    detail = trail.create_image(BUILD, T0, "ami-0000000000000b004", ip="10.20.0.5")
    del detail["recipientAccountId"]
    detail["userIdentity"].pop("accountId", None)
    envelope = {"version": "0", "id": "e-1", "detail-type": "AWS API Call via CloudTrail",
                "source": "aws.ec2", "account": f"{trail.ACCOUNT}\x00", "time": detail["eventTime"],
                "region": "us-east-1", "resources": [], "detail": detail}
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a-good.json").write_bytes(trail.log_file([
        trail.create_image(BUILD, T0, "ami-0000000000000b005", ip="10.20.0.5")]))
    (folder / "b-envelope.json").write_text(json.dumps(envelope))
    store = Store.open(database_url)
    try:
        summary = ingest(store, LocalFolder(folder).objects())
        assert summary.new_events == 1
        assert [event.target for event in store.events()] == ["ami-0000000000000b005"]
        (problem,) = store.quarantined()
        assert problem.location.endswith("b-envelope.json")
        assert "contains a NUL character" in problem.error
        assert store.log_file_count() == 2
    finally:
        store.close()


AZURE_ACTIVITY = (Path(__file__).parents[1] / "data" / "azure" / "activity"
                  / "resourceId=" / "SUBSCRIPTIONS" / "5F0C2A1E-0B7D-4C1A-9E33-0A7C2D4B6E10"
                  / "y=2026" / "m=11" / "d=30" / "h=09" / "m=00" / "PT1H.json")


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_overlong_principal_quarantines_its_event(database_url: str, tmp_path: Path):
    folder = tmp_path / "logs"
    folder.mkdir()
    # The managed identity's resource id becomes the principal's id.
    text = AZURE_ACTIVITY.read_text()
    assert "aib-builder" in text
    (folder / "a-activity.json").write_text(text.replace("aib-builder", "aib-" + "y" * 600))
    (folder / "b-trail.json").write_bytes(trail.log_file([
        trail.create_image(BUILD, T0, "ami-0000000000000b021", ip="10.20.0.5")]))
    store = Store.open(database_url)
    try:
        summary = ingest(store, LocalFolder(folder).objects())
        assert "ami-0000000000000b021" in [event.target for event in store.events()]
        problems = [row for row in store.quarantined() if row.field == "principal.id"]
        assert len(problems) == 1
        assert problems[0].location.endswith("a-activity.json")
        assert "more than the 512 the database stores" in problems[0].error
        assert max(len(event.principal.id) for event in store.events()) <= 512
        assert store.log_file_count() == 2
        assert summary.files_failed == 0
    finally:
        store.close()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize(("field", "limit"), [("awsRegion", 64),
                                              ("recipientAccountId", 128)])
def test_overlong_scope_quarantines_its_record(database_url: str, tmp_path: Path,
                                               field: str, limit: int):
    good = trail.create_image(BUILD, T0, "ami-0000000000000b011", ip="10.20.0.5")
    long = trail.noise(T0 + timedelta(minutes=1), 2)
    long[0][field] = "r" * (limit + 1)
    long[1][field] = "r" * limit if field == "awsRegion" else "1" * limit
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a-good.json").write_bytes(trail.log_file([good]))
    (folder / "b-long.json").write_bytes(trail.log_file(long))

    store = Store.open(database_url)
    try:
        summary = ingest(store, LocalFolder(folder).objects(), batch_files=10)
        assert summary.files_failed == 0
        assert summary.records == 2
        assert [event.target for event in store.events()] == ["ami-0000000000000b011"]
        problems = [(row.record_index, row.field, row.error) for row in store.quarantined()]
        assert problems == [(0, field, f"value of {limit + 1} characters is longer than "
                                       f"{limit}, the most the store keeps")]
        assert store.log_file_count() == 2
    finally:
        store.close()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_spans_at_calendar_ends_merge(database_url: str, tmp_path: Path):
    records = trail.noise(T0, 4)
    records[1]["eventTime"] = "9999-12-31T23:59:58Z"
    records[2]["eventTime"] = "9999-12-31T23:59:59Z"
    records[3]["eventTime"] = "0001-01-01T00:00:00Z"
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a.json").write_bytes(trail.log_file(records[:2]))
    (folder / "b.json").write_bytes(trail.log_file(records[2:3]))
    (folder / "c.json").write_bytes(trail.log_file(records[3:]))

    store = Store.open(database_url)
    try:
        summary = ingest(store, LocalFolder(folder).objects())
        assert summary.records == 4
        # The span of b.json starts a second after that of a.json ends, so the two
        # join, and joining them must not step past the end of year 9999.
        spans = store.coverage()[(trail.ACCOUNT, trail.REGION)]
        assert [(first.year, last.year) for first, last in spans] == [
            (1, 1), (2026, 9999)]
        assert spans[-1][1] == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    finally:
        store.close()
