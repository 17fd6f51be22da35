"""The Azure resources of the scenario tests, served by the ARM and ACR stand-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import DATA
from tests.helpers.azure_standin import (
    AzureState,
    acr_manifest,
    gallery,
    gallery_image,
    gallery_version,
    managed_image,
)

SUBSCRIPTION = "5f0c2a1e-0b7d-4c1a-9e33-0a7c2d4b6e10"
REGISTRY = "contosoacr.azurecr.io"
TOKEN_ENV = "IMAGEPROV_TEST_AZURE_TOKEN"
AZURE = DATA / "azure"

_SUB = f"/subscriptions/{SUBSCRIPTION}"
GALLERY_VERSION = (f"{_SUB}/resourcegroups/rg-gallery/providers/microsoft.compute/"
                   "galleries/corpgallery/images/ubuntu-base/versions/1.0.0")
MANAGED_IMAGE = f"{_SUB}/resourcegroups/rg-images/providers/microsoft.compute/images/img-web"
IMPORTED = f"{REGISTRY}/payments/api@sha256:{'a' * 64}"
PUSHED = f"{REGISTRY}/payments/api@sha256:{'b' * 64}"
UNKNOWN = f"{REGISTRY}/payments/api@sha256:{'c' * 64}"


def state() -> AzureState:
    """Return the stand-in's resources: two compute images, three ACR manifests."""
    # One item a page, so that every list is paged.
    served = AzureState(page_size=1)
    served.managed_images[SUBSCRIPTION] = [
        managed_image(SUBSCRIPTION, "RG-Images", "img-web", source_vm="vm-web"),
        managed_image(SUBSCRIPTION, "RG-Images", "img-old"),
    ]
    corp = gallery(SUBSCRIPTION, "rg-gallery", "corpGallery")
    served.galleries[SUBSCRIPTION] = [corp]
    definition = gallery_image(corp["id"], "ubuntu-base")
    served.gallery_images[corp["id"].lower()] = [definition]
    served.versions[definition["id"].lower()] = [
        gallery_version(definition["id"], "1.0.0", "2026-11-30T08:31:40.1234567+00:00")]
    served.repositories["payments/api"] = [
        acr_manifest(f"sha256:{'a' * 64}", ["v2"], "2026-11-30T09:40:11.1234567Z"),
        acr_manifest(f"sha256:{'b' * 64}", ["v3"], "2026-11-30T10:05:00.1234567Z"),
        acr_manifest(f"sha256:{'c' * 64}", [], "2026-11-01T00:00:00Z"),
    ]
    served.repositories["base/runtime"] = [
        acr_manifest(f"sha256:{'d' * 64}", ["latest"], "2026-11-01T00:00:00Z")]
    return served


def config(url: str, ca: Path, policy: Path, activity: Path | None = None,
           acr_events: Path | None = None) -> dict[str, Any]:
    """Return an imageprov configuration whose `azure:` section points at the stand-in."""
    azure: dict[str, Any] = {
        "arm_endpoint": url,
        "ca_bundle": str(ca),
        "credential": {"kind": "static_token", "token_env": TOKEN_ENV},
        "subscriptions": [{"id": SUBSCRIPTION}],
        "registries": [{"login_server": REGISTRY, "endpoint": url,
                        "subscription": SUBSCRIPTION}],
        "activity_logs": [{"path": str(activity or AZURE / "activity")}],
        "acr_events": [{"path": str(acr_events or AZURE / "acr"),
                        "subscription": SUBSCRIPTION}],
    }
    return {"policy": str(policy), "workers": 1, "azure": azure}
