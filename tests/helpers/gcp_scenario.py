"""One GCP project as the scenario tests see it: its inventory in the stand-in, its
exported audit logs under tests/data/gcp/audit-logs, a policy and a configuration.

Images of project `shop-prod` and what the logs record about them:

- web-v41 (family web): inserted by the Packer service account, impersonated by a
  release manager, from `gce-internal-ip`; the family's head before web-v42;
- web-v42 (family web, watched): inserted by an unlisted service account; its last
  entry sits in a late appendix shard; it heads the family now;
- tools-1: inserted by a user account from the public address 203.0.113.9;
- base-shared: inserted by Packer, then shared with allAuthenticatedUsers through a
  setIamPolicy entry delivered by Pub/Sub push and again in `gcloud logging read`
  output;
- ci-1: inserted through the beta API by a CI service account that the policy names
  by its unique id;
- denied-1: the only entry naming it is a PERMISSION_DENIED insert;
- orphan-1: no entry names it.

Artifact Registry: `europe-west1/apps/api` was pushed by the CI account and its
Docker-PutManifest entry is in a Data Access log; `us-central1/apps/web` has no
Data Access log at all.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.helpers.gcp_standin import GcpStandIn

DATA = Path(__file__).parents[1] / "data" / "gcp"
LOGS = DATA / "audit-logs"
PROJECT = "shop-prod"
DIGEST_US = "sha256:" + "a" * 64
DIGEST_EU = "sha256:" + "b" * 64
US_IMAGE = f"us-central1-docker.pkg.dev/{PROJECT}/apps/web@{DIGEST_US}"
EU_IMAGE = f"europe-west1-docker.pkg.dev/{PROJECT}/apps/api@{DIGEST_EU}"

# name: (id, creationTimestamp, family, deprecation state)
IMAGES = {
    "web-v40": ("1000", "2025-12-20T09:00:00.000-08:00", "web", "DEPRECATED"),
    "web-v41": ("1001", "2026-01-01T02:05:00.200-08:00", "web", None),
    "base-shared": ("1004", "2026-01-01T02:20:00.300-08:00", None, None),
    "ci-1": ("1007", "2026-01-01T02:40:00.500-08:00", None, None),
    "orphan-1": ("1006", "2026-01-01T16:00:00.000-08:00", None, None),
    "tools-1": ("1003", "2026-01-02T01:10:00.900-08:00", None, None),
    "denied-1": ("1005", "2026-01-02T01:31:00.000-08:00", None, None),
    "web-v42": ("1002", "2026-01-02T01:50:00.500-08:00", "web", None),
}

POLICY = {
    "version": 1,
    "internal_networks": ["10.0.0.0/8"],
    "builders": [
        {"name": "packer", "platforms": ["gcp"],
         "principals": ["packer@shop-prod.iam.gserviceaccount.com"]},
        # The CI account is named by its unique id, not its email.
        {"name": "ci", "platforms": ["gcp"], "principals": ["112233445566778899001"]},
    ],
}


def ref(name: str) -> str:
    return f"projects/{PROJECT}/global/images/{name}"


def populate(standin: GcpStandIn) -> None:
    """Load the project's images and Docker images into the stand-in."""
    for name, (image_id, created, family, deprecated) in IMAGES.items():
        image = {
            "kind": "compute#image", "id": image_id, "name": name,
            "creationTimestamp": created, "status": "READY",
            "selfLink": f"https://compute.example.invalid/compute/v1/{ref(name)}",
            "sourceDisk": f"projects/{PROJECT}/zones/us-central1-a/disks/{name}-build",
            "sourceType": "RAW", "archiveSizeBytes": "2147483648", "diskSizeGb": "10",
            "labelFingerprint": "42WmSpB8rSM=", "labels": {"built-by": "packer"},
            "storageLocations": ["us"],
        }
        if family:
            image["family"] = family
        if deprecated:
            image["deprecated"] = {"state": deprecated,
                                   "replacement": f"https://compute.example.invalid/"
                                                  f"compute/v1/{ref('web-v41')}"}
        standin.add_image(PROJECT, image)
    for location, repository, image, digest, tags, uploaded in (
            ("us-central1", "apps", "web", DIGEST_US, ["v3", "latest"],
             "2026-01-02T10:00:00.123456Z"),
            ("europe-west1", "apps", "api", DIGEST_EU, ["1.4.0"],
             "2026-01-02T11:15:00.250Z")):
        standin.add_docker_image(PROJECT, location, repository, {
            "name": f"projects/{PROJECT}/locations/{location}/repositories/{repository}/"
                    f"dockerImages/{image}@{digest}",
            "uri": f"{location}-docker.pkg.dev/{PROJECT}/{repository}/{image}@{digest}",
            "tags": tags, "imageSizeBytes": "52428800", "uploadTime": uploaded,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "updateTime": uploaded,
        })


def write_config(folder: Path, standin: GcpStandIn, database: str | None = None,
                 logs: Path = LOGS) -> Path:
    """Write the policy and a configuration with a `gcp:` section; return its path."""
    (folder / "policy.yaml").write_text(yaml.safe_dump(POLICY))
    config = {
        "policy": "policy.yaml",
        "workers": 1,
        "gcp": {
            "api": {
                "projects": [PROJECT], "credentials": "anonymous",
                "compute_endpoint": standin.url,
                "artifact_registry_endpoint": standin.url,
                "ca_bundle": str(standin.ca_path), "watched_families": ["web"],
                "artifact_registry_locations": ["us-central1", "europe-west1"],
            },
            "audit_logs": [{"path": str(logs)}],
        },
    }
    if database:
        config["database"] = database
    path = folder / "imageprov.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
