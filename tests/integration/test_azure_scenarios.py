"""Azure provenance end to end: the SDK inventory against the ARM and ACR stand-in,
the Activity Log and ACR repository events from files, and the verdicts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from imageprov.config import load_config
from imageprov.cycle import run_cycle
from imageprov.model import Flag, VerdictStatus
from imageprov.policy import load_policy
from imageprov.store import Store
from tests.helpers import azure_scenario as scenario
from tests.helpers.azure_standin import AzureStandIn


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, object]]:
    folder = tmp_path_factory.mktemp("azure")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv(scenario.TOKEN_ENV, "not-a-real-token")
    with AzureStandIn(scenario.state()) as standin:
        path = folder / "imageprov.yaml"
        path.write_text(yaml.safe_dump(scenario.config(
            standin.url, standin.ca, scenario.AZURE / "policy.yaml")))
        config = load_config(path)
        policy, text = load_policy(config.policy)
        store = Store.open(f"sqlite:///{folder / 'imageprov.db'}")
        summary = run_cycle(config, store, policy, text)
        yield store, (summary, standin.state)
    monkeypatch.undo()
    store.close()


def _verdict(store: Store, ref: str):
    return store.current_verdicts()[ref]


def test_inventory_lists_every_azure_image(scanned):
    store, (summary, state) = scanned
    assert summary.sources_failed == []
    refs = {image.ref for image in store.images()}
    assert scenario.GALLERY_VERSION in refs
    assert scenario.MANAGED_IMAGE in refs
    assert {scenario.IMPORTED, scenario.PUSHED, scenario.UNKNOWN} <= refs
    assert len(refs) == 7
    # The SDKs followed nextLink and Link pages and exchanged the token for ACR.
    paths = [path for _, path in state.requests]
    assert any("$skiptoken=1" in path and "/images?" in path for path in paths)
    assert any(path.startswith("/acr/v1/_catalog?last=") for path in paths)
    assert any("/_manifests?last=sha256" in path for path in paths)
    assert state.api_versions
    assert state.token_exchanges > 0
    assert "/oauth2/token" in paths


def test_gallery_version_by_image_builder_approved(scanned):
    store, _ = scanned
    verdict = _verdict(store, scenario.GALLERY_VERSION)
    assert verdict.status is VerdictStatus.APPROVED
    assert verdict.rule == "azure-image-builder"
    # The claims and address came from the Started record of the same operation.
    assert verdict.actor.endswith("/userassignedidentities/aib-builder")
    assert verdict.source_ip == "10.1.2.3"


def test_managed_image_by_unlisted_user_flagged(scanned):
    store, _ = scanned
    verdict = _verdict(store, scenario.MANAGED_IMAGE)
    assert verdict.status is VerdictStatus.FLAGGED
    assert Flag.UNEXPECTED_ACTOR in verdict.flags
    assert Flag.EXTERNAL_NETWORK in verdict.flags
    assert verdict.actor == "mallory@contoso.com"
    assert verdict.source_ip == "81.2.69.160"
    image = store.image(scenario.MANAGED_IMAGE)
    assert image.source_image.endswith("/virtualmachines/vm-web")


def test_acr_import_by_unlisted_service_principal_flagged(scanned):
    store, _ = scanned
    verdict = _verdict(store, scenario.IMPORTED)
    assert verdict.status is VerdictStatus.FLAGGED
    assert Flag.UNEXPECTED_ACTOR in verdict.flags
    assert verdict.actor == "d3c1b5a7-9e8f-4d6c-a2b1-3c4d5e6f7a8b"
    assert "importimage" in verdict.reason


def test_acr_push_in_repository_events_attributed(scanned):
    store, _ = scanned
    verdict = _verdict(store, scenario.PUSHED)
    assert verdict.status is VerdictStatus.APPROVED
    assert verdict.rule == "acr-ci-push"
    assert verdict.event_id == "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d10"
    assert verdict.source_ip == "10.2.0.4"


def test_acr_digest_without_event_unattributed(scanned):
    store, _ = scanned
    verdict = _verdict(store, scenario.UNKNOWN)
    assert verdict.status is VerdictStatus.UNATTRIBUTED
    assert verdict.event_id is None


def test_failed_write_kept_without_attributing(scanned):
    store, _ = scanned
    failed = [event for event in store.events("azure")
              if event.target and event.target.endswith("/images/img-failed")]
    assert len(failed) == 1
    assert failed[0].error_code == "Failure.Failed.Conflict"
    assert _verdict(store, scenario.MANAGED_IMAGE.replace("img-web", "img-old")).status \
        is VerdictStatus.UNATTRIBUTED


def test_malformed_records_quarantined_with_field(scanned):
    store, _ = scanned
    found = {(Path(row.location).name, row.record_index, row.field)
             for row in store.quarantined()}
    assert ("PT1H.json", 9, "time") in found
    assert ("PT1H.json", 10, "(json)") in found
    assert ("repository-events.json", 2, "Digest") in found


def test_missing_token_fails_azure_sources_only(tmp_path, monkeypatch):
    monkeypatch.delenv(scenario.TOKEN_ENV, raising=False)
    with AzureStandIn(scenario.state()) as standin:
        path = tmp_path / "imageprov.yaml"
        path.write_text(yaml.safe_dump(scenario.config(
            standin.url, standin.ca, scenario.AZURE / "policy.yaml")))
        config = load_config(path)
        policy, text = load_policy(config.policy)
        store = Store.open(f"sqlite:///{tmp_path / 'imageprov.db'}")
        summary = run_cycle(config, store, policy, text)
        assert standin.state.requests == []
    assert summary.sources_failed == [f"azure-compute:{scenario.SUBSCRIPTION}",
                                      f"acr:{scenario.REGISTRY}"]
    # The logs were still read.
    assert summary.logs.files == 2
    store.close()


def test_postgresql_gives_same_verdicts(scanned, postgres_url, tmp_path, monkeypatch):
    sqlite_store, _ = scanned
    monkeypatch.setenv(scenario.TOKEN_ENV, "not-a-real-token")
    with AzureStandIn(scenario.state()) as standin:
        path = tmp_path / "imageprov.yaml"
        path.write_text(yaml.safe_dump(scenario.config(
            standin.url, standin.ca, scenario.AZURE / "policy.yaml")))
        config = load_config(path)
        policy, text = load_policy(config.policy)
        store = Store.open(postgres_url)
        run_cycle(config, store, policy, text)
    expected = {ref: (v.status, v.flags, v.event_id)
                for ref, v in sqlite_store.current_verdicts().items()}
    found = {ref: (v.status, v.flags, v.event_id)
             for ref, v in store.current_verdicts().items()}
    assert found == expected
    store.close()
