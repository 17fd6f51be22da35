"""Event times and type names read from log records."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from imageprov.errors import RecordError
from imageprov.sources.aws.trail_documents import read_document
from imageprov.sources.fields import is_utc_second, json_type, parse_log_time


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-03T06:00:00Z", datetime(2026, 11, 3, 6, 0, tzinfo=UTC)),
    ("2026-11-03 06:00:00", datetime(2026, 11, 3, 6, 0, tzinfo=UTC)),
    ("2026-11-03T07:30:00+01:30", datetime(2026, 11, 3, 6, 0, tzinfo=UTC)),
    ("2026-11-03T06:00:00.123456789Z", datetime(2026, 11, 3, 6, 0, 0, 123456, tzinfo=UTC)),
])
def test_log_time_spellings_read_as_utc(text, expected):
    assert parse_log_time(text, "f.json", 0, "eventTime") == expected


@pytest.mark.parametrize("text", [
    "2026-11-30", "2026-W48-1", "2026-W48-1T06:00:00Z", "20261130T060000Z",
    "2026-11-03T06:00:00\x00Z", "2026-11-03\x0006:00:00Z", "2026-13-03T06:00:00Z",
    "yesterday", "", " 2026-11-03T06:00:00Z", "2026-11-03T06:00:00Z\n",
    "2026-11-03T06:00:00Z\u3000",
])
def test_log_time_without_date_and_time_rejected(text):
    with pytest.raises(RecordError) as caught:
        parse_log_time(text, "f.json", 4, "eventTime")
    assert (caught.value.problem.index, caught.value.problem.field) == (4, "eventTime")
    assert "\x00" not in caught.value.problem.detail


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_log_time_out_of_range_in_utc_rejected(text):
    with pytest.raises(RecordError) as caught:
        parse_log_time(text, "f.json", 0, "eventTime")
    assert "invalid time" in caught.value.problem.detail


def test_long_bad_time_cut_in_message():
    with pytest.raises(RecordError) as caught:
        parse_log_time("x" * 10_000, "f.json", 0, "eventTime")
    assert "(10,000 characters)" in caught.value.problem.detail
    assert len(caught.value.problem.detail) < 200


def test_utc_second_needs_calendar_date_and_clock():
    assert is_utc_second("2026-11-03T06:00:00Z")
    assert not is_utc_second("2026-W48-1T06:00:00Z")
    assert not is_utc_second("2026-02-30T06:00:00Z")
    assert not is_utc_second("2026-11-03T06:00\x0000Z")
    assert is_utc_second("2026-11-03T06:00:00.123Z")
    for tail in ("\x00Z", " is not a timeZ", "+05:00Z", ".\u0663Z", ".Z", "Z\n"):
        assert not is_utc_second("2026-11-03T06:00:00" + tail), tail


def test_week_date_record_quarantined_and_span_kept():
    base = {"eventVersion": "1.08", "eventSource": "s3.amazonaws.com",
            "eventName": "GetObject", "awsRegion": "us-east-1",
            "recipientAccountId": "111122223333"}
    records = [dict(base, eventTime="2026-11-30T06:00:00Z", eventID="a"),
               dict(base, eventTime="2026-W48-1T06:00:00Z", eventID="b"),
               dict(base, eventTime="9999-12-31T23:59:59-05:00", eventID="c")]
    document = read_document(json.dumps({"Records": records}).encode(), "weeks.json")
    assert document.records == 1
    assert [(p.index, p.field) for p in document.problems] == [(1, "eventTime"),
                                                               (2, "eventTime")]
    assert document.spans == {("111122223333", "us-east-1"): ["2026-11-30T06:00:00Z"] * 2}


def test_json_type_names():
    assert [json_type(v) for v in ({}, [], "", 1, 1.5, True, None)] == [
        "object", "array", "string", "number", "number", "boolean", "null"]


def test_record_json_sized_to_its_text():
    import tracemalloc

    import orjson

    from imageprov.sources.fields import record_json

    record = {"eventName": "CreateImage", "requestParameters": {"name": "é" * 600},
              "n": [1, 2.5, None, True]}
    assert record_json(record) == orjson.dumps(record)
    assert record_json(record, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        record, option=orjson.OPT_SORT_KEYS)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        copies = [record_json(record) for _ in range(100)]
        per_copy = (tracemalloc.get_traced_memory()[0] - before) / len(copies)
    finally:
        tracemalloc.stop()
    # The text and a bytes object's header, not the writer's buffer.
    assert per_copy < len(copies[0]) + 200
