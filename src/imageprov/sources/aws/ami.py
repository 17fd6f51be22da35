"""AMIs owned by the configured accounts, from EC2 DescribeImages or its saved output."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from imageprov.errors import SourceError
from imageprov.model import Image, ImageKind, Platform, ami_arn

logger = logging.getLogger(__name__)


def _created(value: Any) -> datetime | None:
    # EC2 writes CreationDate in UTC; a value without an offset is read as UTC.
    if isinstance(value, str) and value:
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            logger.warning("AMI CreationDate %r is not ISO 8601; left empty", value)
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def _flag(value: Any, field: str) -> bool:
    """Read a boolean field, which saved or hand-edited output may carry as text."""
    if value is None or isinstance(value, bool):
        return value is True
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    # A value such as 1 or "yes" would otherwise read as false and hide a public AMI.
    raise ValueError(f"{field}: expected true or false, got {value!r}")


def image_from_description(
    described: dict[str, Any], region: str, origin: str, account: str | None = None
) -> Image:
    """Build an `Image` from one item of DescribeImages `Images`."""
    if not isinstance(described, dict):
        raise SourceError(origin, f"image entry is not an object: {described!r:.100}")
    owner = described.get("OwnerId") or account
    image_id = described.get("ImageId")
    if not isinstance(image_id, str) or not isinstance(owner, str):
        raise SourceError(origin, f"image without ImageId or OwnerId: {described!r:.200}")
    tags = {
        str(tag.get("Key")): str(tag.get("Value", ""))
        for tag in described.get("Tags") or []
        if isinstance(tag, dict) and "Key" in tag
    }
    name = described.get("Name")
    return Image(
        ref=ami_arn(region, owner, image_id),
        platform=Platform.AWS,
        kind=ImageKind.AMI,
        account=owner,
        region=region,
        native_id=image_id,
        names=(name,) if isinstance(name, str) and name else (),
        tags=tags,
        created=_created(described.get("CreationDate")),
        state=_text(described.get("State")),
        public=_flag(described.get("Public"), "Public"),
        source_image=_text(described.get("SourceImageId")),
        source_region=_text(described.get("SourceImageRegion")),
        inventory_source=origin,
    )


class AmiInventory:
    """The AMIs one account owns in one region, through a boto3 EC2 client.

    Disabled and deprecated AMIs are included: DescribeImages hides both unless asked,
    and a disabled implant can be enabled again.
    """

    def __init__(self, client: Any, region: str, owners: list[str]) -> None:
        self.client = client
        self.region = region
        self.owners = owners or ["self"]
        self.name = f"ec2:{region}"

    def images(self) -> Iterator[Image]:
        paginator = self.client.get_paginator("describe_images")
        pages = paginator.paginate(
            Owners=self.owners, IncludeDeprecated=True, IncludeDisabled=True,
            PaginationConfig={"PageSize": 500},
        )
        try:
            for page in pages:
                for described in page.get("Images", []):
                    yield image_from_description(described, self.region, self.name)
        except (ClientError, BotoCoreError) as error:
            raise SourceError(self.name, f"DescribeImages failed: {error}") from error


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def images_from_saved_output(
    document: Any, region: str, origin: str, account: str | None = None,
    skipped: list[int] | None = None,
) -> Iterator[Image]:
    """Read the JSON that `aws ec2 describe-images` prints.

    An entry that cannot be read is logged with its index and left out, and the
    index is added to `skipped`. The others are read.
    """
    if not isinstance(document, dict) or not isinstance(document.get("Images"), list):
        raise SourceError(origin, 'expected the output of describe-images: {"Images": [...]}')
    for index, described in enumerate(document["Images"]):
        try:
            yield image_from_description(described, region, origin, account)
        except (SourceError, ValueError, TypeError) as error:
            logger.error("%s: Images[%d] left out: %s", origin, index, error)
            if skipped is not None:
                skipped.append(index)
