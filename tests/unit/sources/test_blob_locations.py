"""Where a read of Activity Log export blobs starts again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from imageprov.sources.azure.blob_locations import reread_from

FOLDER = "resourceId=/SUBSCRIPTIONS/5F0C2A1E-0B7D-4C1A-9E33-0A7C2D4B6E10"


def test_reread_starts_hours_before_checkpoint():
    checkpoint = f"{FOLDER}/y=2026/m=11/d=30/h=01/m=00/PT1H.json"
    assert reread_from(FOLDER, checkpoint, timedelta(hours=3)) == (
        f"{FOLDER}/y=2026/m=11/d=29/h=22/")


@pytest.mark.parametrize("hour", ["y=0001/m=01/d=01/h=00", "y=2026/m=13/d=01/h=00",
                                  "y=2026/m=02/d=30/h=00", "y=2026/m=11/d=30/h=24"])
def test_reread_of_impossible_hour_lists_all(hour):
    checkpoint = f"{FOLDER}/{hour}/m=00/PT1H.json"
    assert reread_from(FOLDER, checkpoint, timedelta(hours=3)) is None
