"""Which images count as gone after listings of their inventory source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from imageprov.model import Image, ImageKind, Platform, ami_arn
from imageprov.store import Store

T0 = datetime(2026, 11, 30, 8, tzinfo=UTC)
SOURCE = "ec2:us-east-1"


def _ami(image_id: str) -> Image:
    return Image(ref=ami_arn("us-east-1", "111122223333", image_id), platform=Platform.AWS,
                 kind=ImageKind.AMI, account="111122223333", region="us-east-1",
                 native_id=image_id, inventory_source=SOURCE)


def test_empty_listing_makes_images_gone(database_url):
    store = Store.open(database_url)
    store.save_images([_ami("ami-1"), _ami("ami-2")], T0)
    store.record_listing(SOURCE, T0, 2)
    assert len(store.images()) == 2
    store.record_listing(SOURCE, T0 + timedelta(minutes=5), 0)
    assert store.images() == []
    assert len(store.images(include_gone=True)) == 2
    # A listing that reports the image again brings it back.
    store.save_images([_ami("ami-1")], T0 + timedelta(minutes=10))
    store.record_listing(SOURCE, T0 + timedelta(minutes=10), 1)
    assert [image.native_id for image in store.images()] == ["ami-1"]
    store.close()


def test_listings_ending_out_of_order_keep_images(database_url):
    store = Store.open(database_url)
    images = [_ami("ami-1"), _ami("ami-2")]
    # The later listing ends first, then the earlier one stamps older times.
    store.save_images(images, T0 + timedelta(seconds=3))
    store.record_listing(SOURCE, T0 + timedelta(seconds=3), 2)
    store.save_images(images, T0)
    store.record_listing(SOURCE, T0, 2)
    assert len(store.images()) == 2
    store.close()
