"""GCP inventories against the stand-in: paging, family heads and failures."""

from __future__ import annotations

import pytest
from google.auth.credentials import AnonymousCredentials

from imageprov.errors import SourceError
from imageprov.model import DISPLACED_TAG, HEADS_FAMILY_TAG
from imageprov.sources.gcp import artifact_registry, clients, compute
from tests.helpers.gcp_standin import GcpStandIn


def _image(number: int, family: str | None = "web", deprecated: str | None = None) -> dict:
    image = {"id": str(5000 + number), "name": f"web-{number}", "status": "READY",
             "creationTimestamp": f"2026-02-{number + 1:02d}T10:00:00.000-07:00",
             "diskSizeGb": "10"}
    if family:
        image["family"] = family
    if deprecated:
        image["deprecated"] = {"state": deprecated}
    return image


@pytest.fixture
def standin():
    with GcpStandIn() as server:
        yield server


def _images_client(standin: GcpStandIn):
    return clients.images_client(AnonymousCredentials(), standin.url, standin.ca_path)


def test_compute_pages_through_tokens(standin, monkeypatch):
    monkeypatch.setattr(compute, "PAGE_SIZE", 3)
    for number in range(8):
        standin.add_image("p", _image(number, family=None))
    images = list(compute.ComputeImageInventory(_images_client(standin), "p", []).images())
    assert [image.native_id for image in images] == [str(5000 + n) for n in range(8)]
    assert standin.requests == [
        "/compute/v1/projects/p/global/images?maxResults=3",
        "/compute/v1/projects/p/global/images?pageToken=3&maxResults=3",
        "/compute/v1/projects/p/global/images?pageToken=6&maxResults=3",
    ]


def test_deprecated_newest_leaves_older_head(standin):
    standin.add_image("p", _image(1))
    standin.add_image("p", _image(2))
    standin.add_image("p", _image(3, deprecated="DEPRECATED"))
    images = {image.names[0]: image for image in compute.ComputeImageInventory(
        _images_client(standin), "p", ["web"]).images()}
    assert images["web-2"].tags[HEADS_FAMILY_TAG] == "web"
    assert images["web-2"].tags[DISPLACED_TAG] == "projects/p/global/images/web-1"
    assert HEADS_FAMILY_TAG not in images["web-3"].tags
    assert images["web-3"].state == "DEPRECATED"


def test_family_without_launchable_image_skipped(standin):
    standin.add_image("p", _image(1, deprecated="OBSOLETE"))
    images = list(compute.ComputeImageInventory(_images_client(standin), "p",
                                                ["web", "db"]).images())
    assert len(images) == 1
    assert HEADS_FAMILY_TAG not in images[0].tags
    assert "/compute/v1/projects/p/global/images/family/db" in standin.requests


def test_compute_failure_is_source_error(standin):
    client = clients.images_client(AnonymousCredentials(), standin.url + "/missing",
                                   standin.ca_path)
    with pytest.raises(SourceError, match="images.list failed"):
        list(compute.ComputeImageInventory(client, "p", []).images())


def test_untrusted_certificate_rejected(standin):
    # Without the stand-in's CA the client verifies against the system store.
    client = clients.images_client(AnonymousCredentials(), standin.url, None)
    with pytest.raises(SourceError, match="CERTIFICATE_VERIFY_FAILED"):
        list(compute.ComputeImageInventory(client, "p", []).images())


def test_docker_images_page_and_split(standin, monkeypatch):
    monkeypatch.setattr(artifact_registry, "PAGE_SIZE", 1)
    for digit in "12":
        digest = "sha256:" + digit * 64
        standin.add_docker_image("p", "us", "r", {
            "name": f"projects/p/locations/us/repositories/r/dockerImages/team%2Fapp@{digest}",
            "uri": f"us-docker.pkg.dev/p/r/team/app@{digest}", "tags": [f"v{digit}"],
            "imageSizeBytes": "1024", "uploadTime": "2026-02-01T10:00:00.5Z"})
    client = clients.artifact_registry_client(AnonymousCredentials(), standin.url,
                                              standin.ca_path)
    images = list(artifact_registry.ArtifactRegistryInventory(client, "p", "us").images())
    assert [image.digest for image in images] == ["sha256:" + "1" * 64, "sha256:" + "2" * 64]
    assert images[0].registry == "us-docker.pkg.dev"
    assert images[0].repository == "p/r/team/app"
    assert images[0].ref == "us-docker.pkg.dev/p/r/team/app@sha256:" + "1" * 64
    assert images[0].names == ("v1",)
    assert any("pageToken=1" in path and "dockerImages" in path for path in standin.requests)


def test_registry_unreachable_is_source_error(standin):
    client = clients.artifact_registry_client(AnonymousCredentials(), standin.url, None)
    with pytest.raises(SourceError, match="Artifact Registry listing failed: SSLError"):
        list(artifact_registry.ArtifactRegistryInventory(client, "p", "us").images())
