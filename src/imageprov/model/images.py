"""Images as an inventory reports them, whatever the cloud."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Platform(StrEnum):
    AWS = "aws"
    AZURE = "azure"
    GCP = "gcp"
    OCI = "oci"


class ImageKind(StrEnum):
    AMI = "ami"
    CONTAINER = "container"
    MANAGED_IMAGE = "managed-image"
    GALLERY_IMAGE_VERSION = "gallery-image-version"
    COMPUTE_IMAGE = "compute-image"


# Keys of `Image.tags` that an inventory derives instead of copying from the cloud.
# GCP label keys allow only lowercase letters, digits, `_` and `-`, so no label can
# take one of these names.
FAMILY_TAG = "imageprov:family"
HEADS_FAMILY_TAG = "imageprov:heads-family"
DISPLACED_TAG = "imageprov:displaced"


def compute_image_ref(project: str, name: str) -> str:
    """Return `projects/PROJECT/global/images/NAME`, the identifier of a GCP image."""
    return f"projects/{project}/global/images/{name}"


def ami_arn(region: str, account: str, image_id: str) -> str:
    """Return the ARN that names an AMI, the identifier used in verdicts."""
    return f"arn:aws:ec2:{region}:{account}:image/{image_id}"


def container_ref(registry: str, repository: str, digest: str) -> str:
    """Return `registry/repository@digest`, the identifier of a container image."""
    return f"{registry}/{repository}@{digest}"


class Image(BaseModel):
    """One image that exists now, as an inventory source reported it.

    `native_id` is the cloud's own id (an AMI id, a manifest digest, the numeric id
    of a GCP image); `ref` is the identifier unique across clouds that verdicts and
    the CLI use. `tags` contains the cloud's tags or labels, and for a GCP image the
    derived facts under the `imageprov:` keys above: its family, the watched family
    it heads now, and the image it displaced as that family's head.
    """

    model_config = ConfigDict(frozen=True)

    ref: str
    platform: Platform
    kind: ImageKind
    account: str
    region: str
    native_id: str
    digest: str | None = None
    registry: str | None = None
    repository: str | None = None
    names: tuple[str, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)
    created: datetime | None = None
    state: str | None = None
    public: bool = False
    source_image: str | None = None
    source_region: str | None = None
    inventory_source: str = ""
