"""Listing local trail folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from imageprov.errors import SourceError
from imageprov.sources import files
from imageprov.sources.aws.trail_locations import LocalTrail, account_from_key


def test_unlistable_folder_becomes_failing_object(tmp_path, monkeypatch):
    (tmp_path / "a.json").write_text('{"Records": []}')
    real_walk = files.os.walk

    def walk(top, onerror=None):
        error = PermissionError(13, "Permission denied")
        error.filename = str(tmp_path / "locked")
        onerror(error)
        yield from real_walk(top, onerror=onerror)

    monkeypatch.setattr(files.os, "walk", walk)
    objects = list(LocalTrail(tmp_path).objects())
    assert [o.location for o in objects] == [str(tmp_path / "locked"), str(tmp_path / "a.json")]
    with pytest.raises(SourceError, match="cannot list folder"):
        objects[0].load()
    assert objects[1].load() == b'{"Records": []}'


@pytest.mark.parametrize(
    ("key", "account"),
    [("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/30/f.json.gz", "111122223333"),
     ("p/AWSLogs/o-a1b2c3d4e5/444455556666/CloudTrail/eu-west-1/f.json.gz",
      "444455556666"),
     ("logs/f.json.gz", None)],
)
def test_account_from_key(key, account):
    assert account_from_key(key) == account


def test_fifo_and_device_links_are_not_listed(tmp_path, caplog):
    import os

    (tmp_path / "good.json").write_text('{"Records": []}')
    os.mkfifo(tmp_path / "pipe.json")
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    assert [o.location for o in LocalTrail(tmp_path).objects()] == [str(tmp_path / "good.json")]
    assert f"skipped {tmp_path / 'pipe.json'}: not a regular file" in caplog.text
    assert f"skipped {tmp_path / 'zero.json'}: not a regular file" in caplog.text


def test_folder_sorts_before_longer_sibling(tmp_path):
    # Plain string order would put `a-c.json` first, because "-" sorts before "/".
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.json").write_text('{"Records": []}')
    (tmp_path / "a-c.json").write_text('{"Records": [{}]}')
    (tmp_path / "0.json").write_text("{}")
    objects = list(LocalTrail(tmp_path).objects())
    assert [o.location for o in objects] == [
        str(tmp_path / "0.json"), str(tmp_path / "a" / "b.json"), str(tmp_path / "a-c.json")]
    assert objects[2].load() == b'{"Records": [{}]}'


def test_one_file_listed_by_name(tmp_path):
    (tmp_path / "one.json.gz").write_bytes(b"\x1f\x8b")
    objects = list(LocalTrail(tmp_path / "one.json.gz").objects())
    assert [(o.location, o.load()) for o in objects] == [
        (str(tmp_path / "one.json.gz"), b"\x1f\x8b")]


def _bad_paths(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.json")
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    return [(tmp_path / "missing.json", "no such file or folder"),
            (tmp_path / "missing" / "below.json", "no such file or folder"),
            (tmp_path / "pipe.json", "not a regular file or folder"),
            (tmp_path / "zero.json", "not a regular file or folder"),
            (Path("/dev/zero"), "not a regular file or folder")]


def test_bad_path_raises_with_reason(tmp_path):
    for path, reason in _bad_paths(tmp_path):
        with pytest.raises(SourceError) as raised:
            list(LocalTrail(path).objects())
        assert str(raised.value) == f"file:{path}: {reason}"


def test_bad_path_quarantined_when_asked(tmp_path):
    for path, reason in _bad_paths(tmp_path):
        objects = list(LocalTrail(path, quarantine_bad_path=True).objects())
        assert [o.location for o in objects] == [str(path)]
        with pytest.raises(SourceError) as raised:
            objects[0].load()
        assert str(raised.value) == f"{path}: {reason}"


class _Listing:
    """A stand-in for the ListObjectsV2 paginator of an S3 client, over fixed keys,
    with `Delimiter="/"` folders as S3 returns them."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = sorted(keys)

    def get_paginator(self, name: str) -> "_Listing":
        assert name == "list_objects_v2"
        return self

    def paginate(self, Bucket: str, Prefix: str, Delimiter: str | None = None,
                 StartAfter: str | None = None):
        keys = [k for k in self.keys if k.startswith(Prefix)
                and (StartAfter is None or k > StartAfter)]
        if Delimiter is None:
            return [{"Contents": [{"Key": k} for k in keys]}]
        folders = sorted({Prefix + k[len(Prefix):].split("/", 1)[0] + "/"
                          for k in keys if "/" in k[len(Prefix):]})
        return [{"CommonPrefixes": [{"Prefix": f} for f in folders]}]


def test_deep_trail_prefix_found():
    from imageprov.sources.aws.trail_locations import S3Trail

    deep = ("security/prod/cloudtrail/AWSLogs/o-a1b2c3d4e5/111122223333/CloudTrail/"
            "us-east-1/")
    trail = S3Trail(_Listing([deep + "2026/11/30/f.json.gz"]), "bucket")
    assert trail.folders() == [deep]


def test_folders_past_search_depth_warned(caplog):
    from imageprov.sources.aws import trail_locations

    deep = "/".join(f"d{i}" for i in range(12)) + "/AWSLogs/1/CloudTrail/us-east-1/"
    trail = trail_locations.S3Trail(_Listing([deep + "2026/11/30/f.json.gz"]), "bucket")
    assert trail.folders() == [""]
    assert "1 folders 10 levels below the prefix were not searched" in caplog.text


def test_relisting_starts_a_day_before_checkpoint():
    from imageprov.sources.aws.trail_locations import _listing_start

    folder = "AWSLogs/1/CloudTrail/us-east-1/"
    assert _listing_start(folder, folder + "2026/03/01/x.json.gz") == folder + "2026/02/28/"
    assert _listing_start(folder, None) is None
    # Keys outside the dated layout keep the checkpoint itself.
    assert _listing_start("logs/", "logs/x.json") == "logs/x.json"
    assert _listing_start(folder, folder + "0001/01/01/x.json.gz") == (
        folder + "0001/01/01/x.json.gz")


def test_reread_days_reach_files_delivered_late():
    from imageprov.sources.aws.trail_locations import S3Trail

    folder = "AWSLogs/111122223333/CloudTrail/us-east-1/"
    late = folder + "2026/02/26/late.json.gz"
    keys = [late, folder + "2026/03/01/last.json.gz"]
    checkpoint = folder + "2026/03/01/last.json.gz"

    def listed(days: int) -> list[str]:
        trail = S3Trail(_Listing(keys), "bucket", start_after=lambda _name: checkpoint,
                        reread_days=days)
        return [item.location for item in trail.objects() if not item.read_before]

    assert "s3://bucket/" + late not in listed(1)
    assert "s3://bucket/" + late in listed(3)


def test_reread_checked_and_rounded_up():
    from datetime import timedelta

    import pydantic

    from imageprov.config import TrailLocation
    from imageprov.cycle import _whole_days

    location = TrailLocation(s3_bucket="trail", reread="36h")
    assert _whole_days(location.reread) == 2
    assert _whole_days(TrailLocation(s3_bucket="trail").reread) == 1
    with pytest.raises(pydantic.ValidationError, match="longer than the maximum"):
        TrailLocation(s3_bucket="trail", reread=timedelta(days=400))


def test_stop_ends_region_folder_search():
    import threading

    from imageprov.sources.aws.trail_locations import S3Trail

    keys = [f"AWSLogs/{account:012d}/CloudTrail/us-east-1/2026/11/30/f.json.gz"
            for account in range(50)]
    stop = threading.Event()

    class _Stopping(_Listing):
        """Sets the stop event at the first listing, as a signal would."""

        calls = 0

        def paginate(self, **options):
            type(self).calls += 1
            stop.set()
            return super().paginate(**options)

    trail = S3Trail(_Stopping(keys), "bucket", stop=stop)
    assert list(trail.objects()) == []
    # Without the stop, the search lists the top, AWSLogs/, each of the 50 account
    # folders and each CloudTrail folder below them.
    assert _Stopping.calls == 1


def test_reread_rejected_without_bucket():
    import pydantic

    from imageprov.config import TrailLocation

    with pytest.raises(pydantic.ValidationError, match="reread applies to s3_bucket"):
        TrailLocation(path="logs", reread="3d")
