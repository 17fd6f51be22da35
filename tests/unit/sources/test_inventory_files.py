"""Saved describe-images output with odd or broken entries."""

from __future__ import annotations

from datetime import UTC, datetime

from imageprov.sources.aws import ami, ecr


def test_bad_ami_entries_left_out(caplog):
    document = {"Images": [
        {"ImageId": "ami-1", "OwnerId": "111122223333", "CreationDate":
         "2026-11-30T08:00:00", "Public": "false", "State": 5},
        "not an image",
        {"OwnerId": "111122223333"},
        {"ImageId": "ami-2", "OwnerId": "111122223333", "Public": "true"},
    ]}
    images = list(ami.images_from_saved_output(document, "us-east-1", "file:x.json"))
    assert [i.native_id for i in images] == ["ami-1", "ami-2"]
    assert images[0].created == datetime(2026, 11, 30, 8, tzinfo=UTC)
    assert images[0].public is False
    assert images[0].state is None
    assert images[1].public is True
    assert "Images[1] left out" in caplog.text
    assert "Images[2] left out" in caplog.text


def test_public_that_is_not_a_boolean_left_out(caplog):
    document = {"Images": [
        {"ImageId": "ami-1", "OwnerId": "111122223333", "Public": 1},
        {"ImageId": "ami-2", "OwnerId": "111122223333", "Public": "yes"},
        {"ImageId": "ami-3", "OwnerId": "111122223333", "Public": True},
    ]}
    skipped: list[int] = []
    images = list(ami.images_from_saved_output(document, "us-east-1", "file:x.json",
                                               skipped=skipped))
    assert [i.native_id for i in images] == ["ami-3"]
    assert skipped == [0, 1]
    assert "Images[0] left out: Public: expected true or false, got 1" in caplog.text


def test_bad_ecr_entries_left_out(caplog):
    base = {"registryId": "111122223333", "repositoryName": "app"}
    document = {"imageDetails": [
        {**base, "imageDigest": "sha256:" + "a" * 64, "imageTags": "latest",
         "imagePushedAt": "2026-11-30T08:00:00"},
        {**base, "imageDigest": "sha256:" + "b" * 64, "imagePushedAt": 99999999999999999},
        7,
    ]}
    images = list(ecr.images_from_saved_output(document, "us-east-1", "file:e.json"))
    assert [i.names for i in images] == [("latest",)]
    assert images[0].created == datetime(2026, 11, 30, 8, tzinfo=UTC)
    assert "imageDetails[1] left out" in caplog.text
    assert "imageDetails[2] left out" in caplog.text
