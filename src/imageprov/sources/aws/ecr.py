"""ECR images, from DescribeRepositories and DescribeImages or their saved output."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from imageprov.errors import SourceError

logger = logging.getLogger(__name__)
from imageprov.model import Image, ImageKind, Platform, container_ref


def registry_host(registry_id: str, region: str) -> str:
    return f"{registry_id}.dkr.ecr.{region}.amazonaws.com"


def _pushed(value: Any) -> datetime | None:
    # ECR reports push times in UTC; text without an offset is read as UTC.
    if isinstance(value, str) and value:
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"push time {value!r} is out of range") from None
    return None


def image_from_detail(detail: dict[str, Any], region: str, origin: str) -> Image:
    """Build an `Image` from one ECR `imageDetails` item."""
    if not isinstance(detail, dict):
        raise SourceError(origin, f"image detail is not an object: {detail!r:.100}")
    registry_id = detail.get("registryId")
    repository = detail.get("repositoryName")
    digest = detail.get("imageDigest")
    if not all(isinstance(v, str) and v for v in (registry_id, repository, digest)):
        raise SourceError(
            origin, f"image detail without registryId, repositoryName or imageDigest: "
                    f"{detail!r:.200}")
    host = registry_host(registry_id, region)
    try:
        pushed = _pushed(detail.get("imagePushedAt"))
    except ValueError:
        raise SourceError(origin, f"invalid imagePushedAt {detail.get('imagePushedAt')!r}") from None
    return Image(
        ref=container_ref(host, repository, digest),
        platform=Platform.AWS,
        kind=ImageKind.CONTAINER,
        account=registry_id,
        region=region,
        native_id=digest,
        digest=digest,
        registry=host,
        repository=repository,
        names=_tags(detail.get("imageTags")),
        created=pushed,
        state=detail.get("imageStatus") if isinstance(detail.get("imageStatus"), str)
        else None,
        inventory_source=origin,
    )


class EcrInventory:
    """Every image of every repository in one registry, through a boto3 ECR client."""

    def __init__(self, client: Any, region: str, registry_ids: list[str]) -> None:
        self.client = client
        self.region = region
        self.registry_ids = registry_ids
        self.name = f"ecr:{region}"

    def _repository_pages(self) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("describe_repositories")
        if not self.registry_ids:
            yield from paginator.paginate(PaginationConfig={"PageSize": 1000})
        for registry_id in self.registry_ids:
            yield from paginator.paginate(
                registryId=registry_id, PaginationConfig={"PageSize": 1000}
            )

    def images(self) -> Iterator[Image]:
        try:
            for page in self._repository_pages():
                for repository in page.get("repositories", []):
                    yield from self._repository_images(repository)
        except (ClientError, BotoCoreError) as error:
            raise SourceError(self.name, f"ECR inventory failed: {error}") from error

    def _filter(self) -> dict[str, str]:
        # A moved tag leaves the old image as an untagged digest, and archived images
        # are hidden by default, so ask for both where the API model defines them.
        wanted = {"tagStatus": "ANY"}
        shape = self.client.meta.service_model.operation_model("DescribeImages")
        members = shape.input_shape.members["filter"].members
        if "imageStatus" in members and "ANY" in (members["imageStatus"].enum or []):
            wanted["imageStatus"] = "ANY"
        return wanted

    def _repository_images(self, repository: dict[str, Any]) -> Iterator[Image]:
        paginator = self.client.get_paginator("describe_images")
        pages = paginator.paginate(
            registryId=repository["registryId"],
            repositoryName=repository["repositoryName"],
            filter=self._filter(),
            PaginationConfig={"PageSize": 1000},
        )
        try:
            for page in pages:
                for detail in page.get("imageDetails", []):
                    yield image_from_detail(detail, self.region, self.name)
        except ClientError as error:
            # A repository deleted between the two listings is no longer inventory.
            if error.response.get("Error", {}).get("Code") != "RepositoryNotFoundException":
                raise SourceError(self.name, f"DescribeImages failed for repository "
                                             f"{repository['repositoryName']}: {error}"
                                  ) from error
            logger.info("repository %s disappeared during inventory",
                        repository["repositoryName"])


def _tags(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(sorted(tag for tag in value or () if isinstance(tag, str)))


def images_from_saved_output(document: Any, region: str, origin: str,
                             skipped: list[int] | None = None) -> Iterator[Image]:
    """Read the JSON that `aws ecr describe-images` prints.

    An entry that cannot be read is logged with its index and left out, and the
    index is added to `skipped`. The others are read.
    """
    if not isinstance(document, dict) or not isinstance(document.get("imageDetails"), list):
        raise SourceError(
            origin, 'expected the output of ecr describe-images: {"imageDetails": [...]}'
        )
    for index, detail in enumerate(document["imageDetails"]):
        try:
            yield image_from_detail(detail, region, origin)
        except (SourceError, ValueError, TypeError) as error:
            logger.error("%s: imageDetails[%d] left out: %s", origin, index, error)
            if skipped is not None:
                skipped.append(index)
