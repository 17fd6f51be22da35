"""Images of one Azure Container Registry, through `azure-containerregistry`.

Every repository (`list_repository_names`) and every manifest in it
(`list_manifest_properties`), untagged manifests included, since a moved tag leaves
the old image as an untagged digest. The SDK follows the `Link` header pages and
exchanges the AAD token for a registry token itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError

from imageprov.errors import SourceError
from imageprov.model import Image, ImageKind, Platform, container_ref
from imageprov.sources.azure.activity import SCOPE_REGION

logger = logging.getLogger(__name__)


def manifest_image(manifest: Any, registry: str, account: str, origin: str) -> Image:
    """Build an `Image` from one `ArtifactManifestProperties`."""
    digest = manifest.digest
    repository = manifest.repository_name
    if not isinstance(digest, str) or not isinstance(repository, str):
        raise SourceError(origin, f"manifest without a digest or repository: {manifest!r:.200}")
    created = manifest.created_on
    if isinstance(created, datetime) and created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return Image(
        ref=container_ref(registry, repository.lower(), digest.lower()),
        platform=Platform.AZURE, kind=ImageKind.CONTAINER, account=account,
        region=SCOPE_REGION, native_id=digest.lower(), digest=digest.lower(),
        registry=registry, repository=repository.lower(),
        names=tuple(sorted(manifest.tags or ())), created=created,
        inventory_source=origin,
    )


class AcrInventory:
    """Every manifest of every repository in one registry.

    `account` is the subscription the registry belongs to, where it is configured,
    else the login server; ACR events use the same value for their scope.
    """

    def __init__(self, client: Any, login_server: str, account: str | None = None) -> None:
        self.client = client
        self.registry = login_server.lower()
        self.account = (account or self.registry).lower()
        self.name = f"acr:{self.registry}"

    def images(self) -> Iterator[Image]:
        try:
            for repository in self.client.list_repository_names():
                yield from self._repository(repository)
        except AzureError as error:
            raise SourceError(self.name, f"listing repositories failed: {error.message}"
                              ) from error

    def _repository(self, repository: str) -> Iterator[Image]:
        try:
            for manifest in self.client.list_manifest_properties(repository):
                yield manifest_image(manifest, self.registry, self.account, self.name)
        except ResourceNotFoundError:
            # A repository deleted between the two listings is no longer inventory.
            logger.info("repository %s disappeared during inventory", repository)
