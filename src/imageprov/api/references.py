"""Image references as a launch names them: what kind each is and what to look up.

- An EC2 image ARN, an Azure resource id (`/subscriptions/...`) or a GCP image path
  (`projects/P/global/images/NAME`) is looked up as a stored ref, unchanged.
- A bare AMI id (`ami-...`) is looked up by native id among machine images.
- A bare digest (`sha256:...`) is looked up among container images.
- A container reference by digest (`registry/repository@sha256:...`, with or
  without a tag before the `@`) names the image by digest; the tag is ignored,
  as a container runtime ignores it.
- A container reference by tag (`registry/repository:tag`, `latest` when no tag
  is given) is resolved to the digest the tag names now.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

MAX_LENGTH = 1024
# Every form of reference is written in visible ASCII.
VISIBLE_PATTERN = r"^[\x21-\x7e]+$"
_VISIBLE = re.compile(VISIBLE_PATTERN)

_AMI_ID = re.compile(r"^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
_GCP_IMAGE = re.compile(r"^projects/[^/]+/global/images/[^/]+$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_REGISTRY = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]+)?$")
# Docker Hub is the registry of a name without one, and `library/` its namespace
# of official images.
DEFAULT_REGISTRY = "docker.io"


class InvalidReference(ValueError):
    """A requested image is not an image reference of any known form."""


class ReferenceKind(StrEnum):
    REF = "ref"
    AMI_ID = "ami-id"
    DIGEST = "digest"
    CONTAINER_DIGEST = "container-digest"
    CONTAINER_TAG = "container-tag"


@dataclass(frozen=True)
class Reference:
    """A parsed image reference; `lookup` is the ref, id or digest to find."""

    text: str
    kind: ReferenceKind
    lookup: str
    registry: str | None = None
    repository: str | None = None
    tag: str | None = None

    @property
    def tag_name(self) -> str:
        """`registry/repository:tag` for a reference by tag."""
        return f"{self.registry}/{self.repository}:{self.tag}"


def parse_reference(text: str) -> Reference:
    """Classify a requested image reference.

    Raises:
        InvalidReference: the text is empty, too long, holds whitespace or control
            characters, or is malformed as a container reference.
    """
    if not text:
        raise InvalidReference("the image reference is empty")
    if len(text) > MAX_LENGTH:
        raise InvalidReference(
            f"the image reference is {len(text)} characters long; at most "
            f"{MAX_LENGTH} are accepted")
    if not _VISIBLE.fullmatch(text):
        raise InvalidReference(
            f"the image reference {text!r} contains whitespace, control characters or "
            "characters outside ASCII")
    if text.lower().startswith("/subscriptions/"):
        # Azure resource ids compare without case; they are stored lower-cased.
        return Reference(text, ReferenceKind.REF, "/" + text.strip("/").lower())
    if text.startswith("arn:") or _GCP_IMAGE.fullmatch(text):
        return Reference(text, ReferenceKind.REF, text)
    if _AMI_ID.fullmatch(text.lower()):
        # EC2 writes AMI ids in lower case and matches them without case.
        return Reference(text, ReferenceKind.AMI_ID, text.lower())
    if _DIGEST.fullmatch(text):
        return Reference(text, ReferenceKind.DIGEST, text.lower())
    return _container(text)


def _container(text: str) -> Reference:
    name, _, digest = text.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise InvalidReference(f"{text!r}: {digest!r} is not a digest such as sha256:<hex>")
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidReference(f"{text!r}: {tag!r} is not a valid tag")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
        if not _REGISTRY.fullmatch(registry):
            raise InvalidReference(f"{text!r}: {registry!r} is not a registry host")
    else:
        registry, repository = DEFAULT_REGISTRY, name if rest else f"library/{name}"
    if not all(_PATH_COMPONENT.fullmatch(part) for part in repository.split("/")):
        raise InvalidReference(
            f"{text!r}: {repository!r} is not a repository name (lowercase letters, "
            "digits and separators)")
    if digest:
        ref = f"{registry}/{repository}@{digest.lower()}"
        return Reference(text, ReferenceKind.CONTAINER_DIGEST, ref, registry, repository)
    return Reference(text, ReferenceKind.CONTAINER_TAG, f"{registry}/{repository}",
                     registry, repository, tag or "latest")
