"""Times the gate computes from an image's creation time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from imageprov.api.gate import _later


def test_later_adds_a_delay():
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    assert _later(start, timedelta(hours=1)) == datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def test_later_stops_at_the_last_time():
    # A registry image's config may claim any creation time.
    start = datetime(9999, 12, 31, 23, 30, tzinfo=UTC)
    assert _later(start, timedelta(hours=1)) == datetime.max.replace(tzinfo=UTC)
