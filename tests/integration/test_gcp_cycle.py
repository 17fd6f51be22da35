"""The whole cycle on GCP: the stand-in serves Compute and Artifact Registry through
the real client libraries, and the project's exported audit logs are read from a
folder in the Cloud Storage sink layout, with Pub/Sub push and gcloud output beside.

One cycle runs per module; each test checks one scenario of its verdicts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imageprov import cycle
from imageprov.config import load_config
from imageprov.model import (
    DISPLACED_TAG,
    FAMILY_TAG,
    HEADS_FAMILY_TAG,
    Flag,
    Image,
    PrincipalKind,
    VerdictStatus,
)
from imageprov.policy import load_policy
from imageprov.store import Store
from tests.helpers import gcp_scenario as scenario
from tests.helpers.gcp_scenario import EU_IMAGE, PROJECT, US_IMAGE, ref
from tests.helpers.gcp_standin import GcpStandIn

NOW = datetime(2026, 2, 1, tzinfo=UTC)


class Scan:
    def __init__(self, store: Store, summary: cycle.CycleSummary, requests: list[str]):
        self.store = store
        self.summary = summary
        self.requests = requests
        self.verdicts = store.current_verdicts()
        self.images: dict[str, Image] = {image.ref: image for image in store.images()}


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    folder = tmp_path_factory.mktemp("gcp-cycle")
    with GcpStandIn() as standin:
        scenario.populate(standin)
        config = load_config(scenario.write_config(folder, standin))
        policy, text = load_policy(config.policy)
        store = Store.open(f"sqlite:///{folder / 'gcp.db'}")
        summary = cycle.run_cycle(config, store, policy, text, now=NOW)
        yield Scan(store, summary, list(standin.requests))
        store.close()


def test_cycle_reads_every_source(scan):
    assert scan.summary.sources_failed == []
    assert scan.summary.images == len(scenario.IMAGES) + 2
    assert scan.summary.logs.files == 6
    assert scan.summary.logs.problems == 0


def test_inventory_pages_and_resolves_family(scan):
    assert f"/compute/v1/projects/{PROJECT}/global/images?maxResults=500" in scan.requests
    assert f"/compute/v1/projects/{PROJECT}/global/images/family/web" in scan.requests
    assert any(path.startswith(f"/v1/projects/{PROJECT}/locations/europe-west1/"
                               "repositories/apps/dockerImages") for path in scan.requests)


def test_image_fields_from_inventory(scan):
    image = scan.images[ref("web-v42")]
    assert image.native_id == "1002"
    assert image.account == PROJECT
    assert image.region == "global"
    # 01:50:00.5 at -08:00 is 09:50:00.5 UTC.
    assert image.created == datetime(2026, 1, 2, 9, 50, 0, 500000, tzinfo=UTC)
    assert image.tags[FAMILY_TAG] == "web"
    assert image.tags[HEADS_FAMILY_TAG] == "web"
    assert image.tags[DISPLACED_TAG] == ref("web-v41")
    assert image.tags["built-by"] == "packer"
    assert scan.images[ref("web-v40")].state == "DEPRECATED"
    assert HEADS_FAMILY_TAG not in scan.images[ref("web-v41")].tags


def test_packer_service_account_insert_approved(scan):
    verdict = scan.verdicts[ref("web-v41")]
    assert verdict.status is VerdictStatus.APPROVED
    assert verdict.rule == "packer"
    assert verdict.actor == "packer@shop-prod.iam.gserviceaccount.com"
    # The last entry of the operation decides, not the first.
    assert verdict.event_id == "-1a2b3c4d5e2"
    assert verdict.flags == ()


def test_impersonation_chain_kept(scan):
    event = next(e for e in scan.store.events() if e.event_id == "-1a2b3c4d5e2")
    assert event.principal.kind is PrincipalKind.SERVICE_ACCOUNT
    assert event.principal.chain == ("release-manager@example.com",)
    assert event.principal.account == PROJECT
    assert event.source_ip == "gce-internal-ip"


def test_user_from_public_address_flagged(scan):
    verdict = scan.verdicts[ref("tools-1")]
    assert verdict.status is VerdictStatus.FLAGGED
    assert Flag.UNEXPECTED_ACTOR in verdict.flags
    assert Flag.EXTERNAL_NETWORK in verdict.flags
    assert verdict.actor == "alice@example.com"
    assert verdict.source_ip == "81.2.69.142"
    assert "called from public address 81.2.69.142" in verdict.reason


def test_unlisted_account_takes_over_family(scan):
    verdict = scan.verdicts[ref("web-v42")]
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.flags == (Flag.UNEXPECTED_ACTOR, Flag.FAMILY_TAKEOVER)
    assert verdict.actor == "contractor@shop-prod.iam.gserviceaccount.com"
    # The last entry came in a late appendix shard.
    assert verdict.event_id == "-2b3c4d5e6f4"
    assert "newest image of watched family web" in verdict.reason
    assert f"it displaced {ref('web-v41')}" in verdict.reason
    # An internal address is no external network.
    assert Flag.EXTERNAL_NETWORK not in verdict.flags


def test_set_iam_policy_all_authenticated_users_public(scan):
    verdict = scan.verdicts[ref("base-shared")]
    assert verdict.status is VerdictStatus.FLAGGED
    assert Flag.PUBLIC in verdict.flags
    assert "allAuthenticatedUsers" in verdict.reason
    # The group grant is a share the policy's share_targets does not list.
    assert Flag.SHARED in verdict.flags
    assert "group:builders@example.com" in verdict.reason


def test_set_iam_policy_stored_once(scan):
    # Pub/Sub push and gcloud output deliver the same entry.
    shares = [e for e in scan.store.events() if e.action.endswith("images.setIamPolicy")]
    assert len(shares) == 1
    assert shares[0].shared_with == ("allAuthenticatedUsers", "group:builders@example.com")


def test_unique_id_alias_approves_beta_insert(scan):
    verdict = scan.verdicts[ref("ci-1")]
    assert verdict.status is VerdictStatus.APPROVED
    assert verdict.rule == "ci"
    # `private` is not an address and not external.
    assert verdict.source_ip == "private"


def test_permission_denied_insert_attributes_nothing(scan):
    verdict = scan.verdicts[ref("denied-1")]
    assert verdict.status is VerdictStatus.UNATTRIBUTED
    assert verdict.event_id is None
    denied = [e for e in scan.store.events() if e.target == "1005"]
    assert [e.error_code for e in denied] == ["PERMISSION_DENIED"]


def test_image_without_entry_unattributed(scan):
    verdict = scan.verdicts[ref("orphan-1")]
    assert verdict.status is VerdictStatus.UNATTRIBUTED
    assert verdict.rule == "no-creation-event"
    assert f"audit logs read for {PROJECT}/global" in verdict.reason


def test_docker_image_without_data_access_log(scan):
    verdict = scan.verdicts[US_IMAGE]
    assert verdict.status is VerdictStatus.UNATTRIBUTED
    assert "no Artifact Registry Data Access log has been read" in verdict.reason
    assert "DATA_WRITE" in verdict.reason
    assert scan.images[US_IMAGE].names == ("latest", "v3")


def test_docker_put_manifest_attributes_push(scan):
    verdict = scan.verdicts[EU_IMAGE]
    assert verdict.status is VerdictStatus.APPROVED
    assert verdict.rule == "ci"
    assert verdict.event_id == "1x2y3z4a5b6c"


def test_first_entry_alone_never_attributes(scan):
    first = next(e for e in scan.store.events() if e.event_id == "-2b3c4d5e6f3")
    assert first.error_code == "incomplete-operation"
    assert not first.succeeded


def test_inventory_reads_iam_policies(tmp_path: Path):
    with GcpStandIn() as standin:
        scenario.populate(standin)
        standin.iam_policies[(PROJECT, "orphan-1")] = {
            "bindings": [{"role": "roles/compute.imageUser", "members": ["allUsers"]}],
            "etag": "BwYd8zJ1N2E="}
        config = load_config(scenario.write_config(tmp_path, standin,
                                                   logs=scenario.DATA / "malformed"))
        api = config.gcp.api.model_copy(update={"iam_policies": True})
        config = config.model_copy(update={"gcp": config.gcp.model_copy(update={"api": api})})
        policy, text = load_policy(config.policy)
        store = Store.open(f"sqlite:///{tmp_path / 'iam.db'}")
        cycle.run_cycle(config, store, policy, text, now=NOW)
        requests = list(standin.requests)
    verdict = store.current_verdicts()[ref("orphan-1")]
    store.close()
    assert f"/compute/v1/projects/{PROJECT}/global/images/orphan-1/getIamPolicy" in requests
    assert verdict.status is VerdictStatus.UNATTRIBUTED
    assert verdict.flags == (Flag.PUBLIC,)
    assert "as the inventory read it" in verdict.reason


def test_denied_call_named_in_reason(scan):
    verdict = scan.verdicts[ref("denied-1")]
    assert ("calls that did not complete name it: v1.compute.images.insert by "
            "intruder@example.net (PERMISSION_DENIED)") in verdict.reason
