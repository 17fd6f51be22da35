"""Compute Engine images of the configured projects, and the heads of watched families.

`images.list` returns a project's own images, deprecated ones included. A family
resolves, when a VM or template names it, to its newest image that is not
deprecated (`images.getFromFamily`), so whoever inserts a newer image into a family
decides what later VMs boot. For each watched family the inventory asks the API which
image that is now and marks it, with the image it displaced, in `Image.tags`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as google_errors
from google.auth import exceptions as auth_errors
from requests import RequestException

from imageprov.errors import SourceError
from imageprov.model import (
    DISPLACED_TAG,
    FAMILY_TAG,
    HEADS_FAMILY_TAG,
    Image,
    ImageKind,
    Platform,
    compute_image_ref,
)
from imageprov.sources.gcp.audit_entries import GLOBAL, PUBLIC_MEMBERS

logger = logging.getLogger(__name__)

# The largest page images.list returns.
PAGE_SIZE = 500


def _created(value: str, origin: str) -> datetime | None:
    # Compute writes local offsets such as -08:00; instants compare in UTC.
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        logger.warning("%s: creationTimestamp %r is not RFC 3339; left empty", origin, value)
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _path(url: str) -> str | None:
    # Image links are full URLs; the path from `projects/` names the image.
    if not url:
        return None
    marker = url.find("projects/")
    return url[marker:] if marker >= 0 else url


def _deprecation(image: Any) -> str | None:
    # An unset `deprecated` is an empty message whose state is "", not None.
    if "deprecated" not in image:
        return None
    state = image.deprecated.state
    return state if state and state != "ACTIVE" else None


def image_of(image: Any, project: str, origin: str) -> Image:
    """Build an `Image` from one `compute_v1.Image` of `project`."""
    labels = {str(key): str(value) for key, value in image.labels.items()}
    if image.family:
        labels[FAMILY_TAG] = image.family
    return Image(
        ref=compute_image_ref(project, image.name),
        platform=Platform.GCP,
        kind=ImageKind.COMPUTE_IMAGE,
        account=project,
        region=GLOBAL,
        native_id=str(image.id),
        names=(image.name,),
        tags=labels,
        created=_created(image.creation_timestamp, origin),
        state=_deprecation(image) or image.status or None,
        # Disks and snapshots are not images; only a copy names a source image.
        source_image=_path(image.source_image),
        inventory_source=origin,
    )


def _displaced(head: Image, family: str, images: list[Image]) -> Image | None:
    """Return the image that headed `family` before `head` was created.

    That is the newest earlier member not deprecated now or, when every earlier one
    is deprecated (an attacker may deprecate the image it displaced), the newest
    earlier member.
    """
    earlier = [
        image for image in images
        if image.tags.get(FAMILY_TAG) == family and image.ref != head.ref
        and image.created is not None and head.created is not None
        and image.created <= head.created
    ]
    active = [image for image in earlier if image.state == "READY"]
    pool = active or earlier
    return max(pool, key=lambda image: (image.created, image.ref), default=None)


class ComputeImageInventory:
    """The images of one project through a `compute_v1.ImagesClient` (REST).

    `families` are the watched family names; for each, `getFromFamily` names the
    image new VMs of the family boot now. A family with no image that can be
    launched is logged and skipped. With `iam_policies`, each image's IAM policy is
    read (one call per image) and an image granted to allUsers or
    allAuthenticatedUsers is public, whatever the audit logs read so far show.
    """

    def __init__(self, client: Any, project: str, families: list[str],
                 iam_policies: bool = False) -> None:
        self.client = client
        self.project = project
        self.families = families
        self.iam_policies = iam_policies
        self.name = f"gce:{project}"

    def images(self) -> Iterator[Image]:
        try:
            pages = self.client.list(request={"project": self.project,
                                              "max_results": PAGE_SIZE})
            images = [image_of(item, self.project, self.name) for item in pages]
            heads = {family: self._head(family) for family in self.families}
            if self.iam_policies:
                images = [image.model_copy(update={"public": self._public(image)})
                          for image in images]
        except google_errors.GoogleAPICallError as error:
            raise SourceError(self.name, f"images.list failed: {error}") from error
        except (RequestException, auth_errors.GoogleAuthError) as error:
            # Connection, TLS and credential failures come from requests and
            # google-auth, not as API call errors.
            raise SourceError(self.name, f"images.list failed: {type(error).__name__}: "
                                         f"{error}") from error
        except google_errors.RetryError as error:
            raise SourceError(self.name, f"images.list timed out: {error}") from error
        by_id = {image.native_id: index for index, image in enumerate(images)}
        for family, head_id in sorted(heads.items()):
            position = by_id.get(head_id or "")
            if position is None:
                continue
            head = images[position]
            tags = dict(head.tags)
            heads_now = [*filter(None, tags.get(HEADS_FAMILY_TAG, "").split(",")), family]
            tags[HEADS_FAMILY_TAG] = ",".join(sorted(set(heads_now)))
            displaced = _displaced(head, family, images)
            if displaced is not None:
                tags[DISPLACED_TAG] = displaced.ref + (
                    f" ({displaced.state.lower()} now)" if displaced.state != "READY"
                    and displaced.state else "")
            images[position] = head.model_copy(update={"tags": tags})
        yield from images

    def _public(self, image: Image) -> bool:
        policy = self.client.get_iam_policy(project=self.project, resource=image.names[0])
        return any(member in PUBLIC_MEMBERS
                   for binding in policy.bindings for member in binding.members)

    def _head(self, family: str) -> str | None:
        try:
            head = self.client.get_from_family(project=self.project, family=family)
        except google_errors.NotFound:
            logger.info("%s: family %s has no image that can be launched", self.name,
                        family)
            return None
        return str(head.id)
