"""Images of an OCI distribution registry: every tagged manifest, by digest.

Each repository of the catalog (or of the configured list) is read tag by tag. A
tag's manifest is an image (Docker schema 2 or OCI) or an index (OCI index or
Docker manifest list). An index is an image of its own, and so is each platform
manifest it lists, because either digest can be pulled and run. The config blob
gives `created`, `author`, `history` and the labels, and the manifest its
annotations. Tags that hold signatures, attestations and referrer indexes
(`sha256-<hex>`, `.sig`, `.att`, `.sbom`) and manifests that name a `subject`
are evidence about other images, not images.

NOTE: a digest that no tag points at any longer is not listed, because the
distribution API has no listing of untagged manifests; its stored image and
verdict stay as last seen.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from imageprov.model import Image, ImageKind, Platform, container_ref
from imageprov.sources.oci.registry import (
    DIGEST,
    IMAGE_MANIFESTS,
    INDEXES,
    Manifest,
    RegistryClient,
    RegistryError,
)

logger = logging.getLogger(__name__)

# Tags kept by cosign and by the referrers tag schema, derived from a digest.
EVIDENCE_TAG = re.compile(r"^sha256-[0-9a-f]{64}(\.(sig|att|sbom))?$")
LABEL_PREFIX = "org.opencontainers.image."
# BuildKit lists its attestation manifests in the index under this platform.
_ATTESTATION_PLATFORM = ("unknown", "unknown")
MAX_HISTORY = 50
MAX_VALUE = 1000


class RegistryInventory:
    """Every tagged image of one registry, through a `RegistryClient`.

    `registry` is the name images are filed under, the host and port clients pull
    from. `repositories` limits the inventory to those listed, for registries
    whose catalog is turned off.
    """

    def __init__(self, client: RegistryClient, registry: str,
                 repositories: list[str] | None = None) -> None:
        self.client = client
        self.registry = registry
        self.repositories = repositories or []
        self.name = f"registry:{registry}"

    def images(self) -> Iterator[Image]:
        repositories = self.repositories or list(self.client.repositories())
        for repository in repositories:
            yield from self._repository_images(repository)

    def _repository_images(self, repository: str) -> Iterator[Image]:
        tags: dict[str, list[str]] = {}
        manifests: dict[str, Manifest] = {}
        for tag in self.client.tags(repository):
            if EVIDENCE_TAG.match(tag):
                continue
            manifest = self.client.manifest(repository, tag)
            if manifest is None:
                # The tag was deleted between the listing and the fetch.
                continue
            tags.setdefault(manifest.digest, []).append(tag)
            manifests[manifest.digest] = manifest
        # A platform manifest may be tagged as well as listed in an index; it is
        # one image either way.
        parents: dict[str, tuple[str, str]] = {}
        for manifest in list(manifests.values()):
            if _is_index(manifest):
                for digest, platform in self._children(repository, manifest, manifests):
                    parents.setdefault(digest, (manifest.digest, platform))
        for digest in sorted(manifests):
            manifest = manifests[digest]
            if "subject" in manifest.document:
                continue
            if _is_index(manifest):
                details = {"media_type": manifest.media_type}
            elif manifest.media_type in IMAGE_MANIFESTS or "config" in manifest.document:
                details = self._details(repository, manifest)
            else:
                logger.warning("%s: %s@%s has unsupported media type %r, left out",
                               self.name, repository, digest, manifest.media_type)
                continue
            if digest in parents:
                details["index"], details["platform"] = parents[digest]
            yield self._image(repository, manifest, sorted(tags.get(digest, [])), details)

    def _children(self, repository: str, index: Manifest,
                  manifests: dict[str, Manifest]) -> Iterator[tuple[str, str]]:
        """Fetch the platform manifests of an index into `manifests`; yield each
        digest with its platform text."""
        for item in index.document.get("manifests") or ():
            if not isinstance(item, dict) or not isinstance(item.get("digest"), str):
                continue
            platform = item.get("platform") if isinstance(item.get("platform"), dict) else {}
            if (platform.get("os"), platform.get("architecture")) == _ATTESTATION_PLATFORM:
                continue
            digest = item["digest"]
            if not DIGEST.match(digest):
                logger.warning("%s: index %s lists unsupported digest %r", self.name,
                               index.digest, digest)
                continue
            if digest not in manifests:
                child = self.client.manifest(repository, digest)
                if child is None:
                    logger.warning("%s: index %s@%s lists %s, which the registry lacks",
                                   self.name, repository, index.digest, digest)
                    continue
                if _is_index(child):
                    # Nested indexes are not followed, so a loop of indexes ends here.
                    logger.warning("%s: index %s@%s lists another index %s, not read",
                                   self.name, repository, index.digest, digest)
                    continue
                manifests[digest] = child
            yield digest, "/".join(str(platform[key]) for key in
                                   ("os", "architecture", "variant") if platform.get(key))

    def _details(self, repository: str, manifest: Manifest) -> dict[str, str]:
        """Read the config blob and annotations into text fields of the image."""
        details = {"media_type": manifest.media_type}
        for key, value in _annotations(manifest.document).items():
            details[f"annotation:{key}"] = value
        config = manifest.document.get("config")
        digest = config.get("digest") if isinstance(config, dict) else None
        if not isinstance(digest, str):
            return details
        try:
            blob = orjson.loads(self.client.blob(repository, digest))
        except orjson.JSONDecodeError:
            logger.warning("%s: config %s of %s@%s is not JSON", self.name, digest,
                           repository, manifest.digest)
            return details
        except RegistryError as error:
            if error.status != 404:
                raise
            logger.warning("%s: config %s of %s@%s is missing", self.name, digest,
                           repository, manifest.digest)
            return details
        if isinstance(blob, dict):
            details.update(_config_details(blob))
        return details

    def _image(self, repository: str, manifest: Manifest, tags: list[str],
               details: dict[str, str]) -> Image:
        created = _created(details.pop("created", None))
        return Image(
            ref=container_ref(self.registry, repository, manifest.digest),
            platform=Platform.OCI,
            kind=ImageKind.CONTAINER,
            account=self.registry,
            region="",
            native_id=manifest.digest,
            digest=manifest.digest,
            registry=self.registry,
            repository=repository,
            names=tuple(tags),
            tags=details,
            created=created,
            inventory_source=self.name,
        )


def _is_index(manifest: Manifest) -> bool:
    return manifest.media_type in INDEXES or "manifests" in manifest.document


def _annotations(document: dict[str, Any]) -> dict[str, str]:
    annotations = document.get("annotations")
    if not isinstance(annotations, dict):
        return {}
    return {str(k): _text(v) for k, v in annotations.items() if isinstance(v, str)}


def _config_details(blob: dict[str, Any]) -> dict[str, str]:
    details: dict[str, str] = {}
    if isinstance(blob.get("created"), str):
        details["created"] = blob["created"]
    if isinstance(blob.get("author"), str):
        details["author"] = _text(blob["author"])
    for key in ("os", "architecture", "variant"):
        if isinstance(blob.get(key), str):
            details[key] = blob[key]
    settings = blob.get("config") if isinstance(blob.get("config"), dict) else {}
    labels = settings.get("Labels") if isinstance(settings.get("Labels"), dict) else {}
    for key, value in sorted(labels.items()):
        if isinstance(value, str) and str(key).startswith(LABEL_PREFIX):
            details[f"label:{key}"] = _text(value)
    history = blob.get("history") if isinstance(blob.get("history"), list) else []
    steps = [step for step in history if isinstance(step, dict)]
    details["history"] = str(len(steps))
    for position, step in enumerate(steps[-MAX_HISTORY:], max(0, len(steps) - MAX_HISTORY)):
        created_by = step.get("created_by")
        if isinstance(created_by, str) and created_by:
            details[f"history[{position}]"] = _text(created_by)
    return details


def _text(value: str) -> str:
    return value if len(value) <= MAX_VALUE else value[:MAX_VALUE] + "..."


def _created(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        # Builders write up to nine fractional digits; Python reads at most six.
        trimmed = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00"))
        parsed = datetime.fromisoformat(trimmed)
    except ValueError:
        logger.warning("config created time %r is not RFC 3339, left out", value)
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
