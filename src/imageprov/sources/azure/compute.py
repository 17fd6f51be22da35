"""Managed images and Compute Gallery image versions of one subscription.

Listed through `azure-mgmt-compute`: `images.list()` for managed images, and
`galleries.list()`, `gallery_images.list_by_gallery()` and
`gallery_image_versions.list_by_gallery_image()` for versions. The SDK pages
through `nextLink` itself. Ids are kept in the canonical lower case of
`resource_ids`, which is also how the Activity Log events name them.

ARM returns no creation time for a managed image (its `systemData`, where the API
fills it, is used); a gallery version has `publishingProfile.publishedDate`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError

from imageprov.errors import SourceError
from imageprov.model import Image, ImageKind, Platform
from imageprov.sources.azure.activity import SCOPE_REGION
from imageprov.sources.azure.resource_ids import canonical, resource_group_of

logger = logging.getLogger(__name__)


def _aware(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def _source_of(profile: Any) -> str | None:
    source = getattr(profile, "source", None)
    for name in ("id", "virtual_machine_id"):
        value = getattr(source, name, None)
        if isinstance(value, str) and value:
            return canonical(value)
    return None


def managed_image(image: Any, subscription: str, origin: str) -> Image:
    """Build an `Image` from one `azure.mgmt.compute` managed image model."""
    if not isinstance(image.id, str) or not image.id:
        raise SourceError(origin, f"managed image without an id: {image.name!r}")
    source_vm = getattr(image.source_virtual_machine, "id", None)
    created = _aware(getattr(getattr(image, "system_data", None), "created_at", None))
    return Image(
        ref=canonical(image.id), platform=Platform.AZURE, kind=ImageKind.MANAGED_IMAGE,
        account=subscription, region=SCOPE_REGION, native_id=canonical(image.id),
        names=(image.name,) if image.name else (), tags=dict(image.tags or {}),
        created=created, state=image.provisioning_state,
        source_image=canonical(source_vm) if source_vm else None,
        inventory_source=origin,
    )


def gallery_version(version: Any, subscription: str, origin: str) -> Image:
    """Build an `Image` from one gallery image version model."""
    if not isinstance(version.id, str) or not version.id:
        raise SourceError(origin, f"gallery image version without an id: {version.name!r}")
    publishing = version.publishing_profile
    created = _aware(getattr(publishing, "published_date", None)) or _aware(
        getattr(getattr(version, "system_data", None), "created_at", None))
    parts = canonical(version.id).split("/")
    # .../galleries/<gallery>/images/<definition>/versions/<version>
    name = "/".join(parts[-5::2]) if len(parts) >= 6 else version.name
    return Image(
        ref=canonical(version.id), platform=Platform.AZURE,
        kind=ImageKind.GALLERY_IMAGE_VERSION, account=subscription, region=SCOPE_REGION,
        native_id=canonical(version.id), names=(name,), tags=dict(version.tags or {}),
        created=created, state=version.provisioning_state,
        source_image=_source_of(version.storage_profile), inventory_source=origin,
    )


class ComputeInventory:
    """Every managed image and gallery image version in one subscription."""

    def __init__(self, client: Any, subscription: str, managed_images: bool = True,
                 gallery_versions: bool = True) -> None:
        self.client = client
        self.subscription = subscription.lower()
        self.managed_images = managed_images
        self.gallery_versions = gallery_versions
        self.name = f"azure-compute:{self.subscription}"

    def images(self) -> Iterator[Image]:
        try:
            if self.managed_images:
                for image in self.client.images.list():
                    yield managed_image(image, self.subscription, self.name)
            if self.gallery_versions:
                for gallery in self.client.galleries.list():
                    yield from self._gallery(gallery)
        except AzureError as error:
            raise SourceError(self.name, f"listing images failed: {error.message}") from error

    def _gallery(self, gallery: Any) -> Iterator[Image]:
        group = resource_group_of(gallery.id or "")
        if group is None:
            raise SourceError(self.name, f"gallery id without a resource group: {gallery.id!r}")
        try:
            for definition in self.client.gallery_images.list_by_gallery(group, gallery.name):
                versions = self.client.gallery_image_versions.list_by_gallery_image(
                    group, gallery.name, definition.name)
                for version in versions:
                    yield gallery_version(version, self.subscription, self.name)
        except ResourceNotFoundError:
            # A gallery deleted between the listings is no longer inventory.
            logger.info("gallery %s disappeared during inventory", gallery.id)
