"""Artifact Registry Docker images of the configured projects and locations.

Each Docker image is named by its URI, `LOCATION-docker.pkg.dev/PROJECT/REPO/IMAGE@
sha256:...`: the registry is the host, the repository is `PROJECT/REPO/IMAGE`, and the
digest is the native id, as the Docker-PutManifest audit entries name them.
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
from imageprov.model import Image, ImageKind, Platform, container_ref

logger = logging.getLogger(__name__)

PAGE_SIZE = 1000


def _time(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def image_of(docker_image: Any, project: str, location: str, origin: str) -> Image:
    """Build an `Image` from one `artifactregistry_v1.DockerImage`.

    Raises:
        SourceError: the URI is not `HOST/PROJECT/REPO/IMAGE@sha256:...`.
    """
    uri = docker_image.uri
    path, _, digest = uri.partition("@")
    host, _, repository = path.partition("/")
    if not digest.startswith("sha256:") or repository.count("/") < 2:
        raise SourceError(origin, f"Docker image URI {uri!r} is not "
                                  "HOST/PROJECT/REPOSITORY/IMAGE@sha256:DIGEST")
    return Image(
        ref=container_ref(host, repository, digest),
        platform=Platform.GCP,
        kind=ImageKind.CONTAINER,
        account=project,
        region=location,
        native_id=digest,
        digest=digest,
        registry=host,
        repository=repository,
        names=tuple(sorted(docker_image.tags)),
        created=_time(docker_image.upload_time),
        inventory_source=origin,
    )


class ArtifactRegistryInventory:
    """Every Docker image of every Docker repository in one project and location."""

    def __init__(self, client: Any, project: str, location: str) -> None:
        self.client = client
        self.project = project
        self.location = location
        self.name = f"artifact-registry:{project}/{location}"

    def images(self) -> Iterator[Image]:
        from google.cloud import artifactregistry_v1

        docker = artifactregistry_v1.Repository.Format.DOCKER
        parent = f"projects/{self.project}/locations/{self.location}"
        try:
            repositories = list(self.client.list_repositories(
                request={"parent": parent, "page_size": PAGE_SIZE}))
            for repository in repositories:
                if repository.format_ != docker:
                    continue
                yield from self._repository_images(repository.name)
        except google_errors.GoogleAPICallError as error:
            raise SourceError(self.name, f"Artifact Registry listing failed: {error}"
                              ) from error
        except (RequestException, auth_errors.GoogleAuthError) as error:
            # Connection, TLS and credential failures come from requests and
            # google-auth, not as API call errors.
            raise SourceError(self.name, f"Artifact Registry listing failed: "
                                         f"{type(error).__name__}: {error}") from error
        except google_errors.RetryError as error:
            raise SourceError(self.name, f"Artifact Registry listing timed out: {error}"
                              ) from error

    def _repository_images(self, repository: str) -> Iterator[Image]:
        try:
            pages = self.client.list_docker_images(
                request={"parent": repository, "page_size": PAGE_SIZE})
            for docker_image in pages:
                yield image_of(docker_image, self.project, self.location, self.name)
        except google_errors.NotFound:
            # A repository deleted between the two listings is no longer inventory.
            logger.info("repository %s disappeared during inventory", repository)
