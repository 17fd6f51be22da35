"""Activity Log export blobs read from Azurite through azure-storage-blob,
incrementally: the growing hour is read again and deduplicated, older hours are
left alone once the checkpoint has passed them."""

from __future__ import annotations

import json

import pytest
from azure.storage.blob import BlobServiceClient

from imageprov.config import AzureConfig, AzureLogLocation, Config
from imageprov.cycle import CycleSummary, run_logs
from imageprov.ingest import IngestSummary
from imageprov.store import Store
from tests.conftest import AZURITE_KEY
from tests.helpers.azure_scenario import AZURE, SUBSCRIPTION

CONTAINER = "insights-activity-logs"
FOLDER = f"resourceId=/SUBSCRIPTIONS/{SUBSCRIPTION.upper()}"
SOURCE = next((AZURE / "activity").rglob("PT1H.json"))


def _lines() -> list[bytes]:
    # The valid records of the test blob: Started and final records of four operations.
    return [line + b"\n" for line in SOURCE.read_bytes().splitlines()[:9]]


@pytest.fixture
def container(azurite, monkeypatch):
    monkeypatch.setenv("IMAGEPROV_TEST_BLOBS", azurite)
    service = BlobServiceClient.from_connection_string(azurite)
    client = service.get_container_client(CONTAINER)
    if client.exists():
        client.delete_container()
    client.create_container()
    yield client
    client.delete_container()


def _config(tmp_path) -> Config:
    location = AzureLogLocation(connection_string_env="IMAGEPROV_TEST_BLOBS",
                                container=CONTAINER)
    return Config(policy=tmp_path / "policy.yaml", workers=1,
                  azure=AzureConfig(activity_logs=[location]))


def _read(config: Config, store: Store) -> IngestSummary:
    summary = CycleSummary()
    run_logs(config, store, summary)
    assert summary.sources_failed == []
    return summary.logs


def test_growing_blob_read_again_and_deduplicated(container, tmp_path):
    lines = _lines()
    started = [line for line in lines if b'"resultType":"Start"' in line]
    blob = container.get_blob_client(f"{FOLDER}/y=2026/m=11/d=30/h=09/m=00/PT1H.json")
    blob.create_append_blob()
    blob.append_block(b"".join(started))
    store = Store.open(f"sqlite:///{tmp_path / 'blobs.db'}")
    config = _config(tmp_path)

    first = _read(config, store)
    assert first.files == 1
    assert first.records == len(started)
    # Only Started records so far: no operation has finished.
    assert first.new_events == 0

    blob.append_block(b"".join(line for line in lines if line not in started))
    second = _read(config, store)
    assert second.files == 1
    assert second.records == 9
    assert second.new_events == 5

    third = _read(config, store)
    assert third.files == 0
    assert third.skipped == 1
    assert third.new_events == 0
    assert store.event_count() == 5
    checkpoint = store.checkpoint(f"azblob://devstoreaccount1/{CONTAINER}/{FOLDER}/")
    assert checkpoint == f"{FOLDER}/y=2026/m=11/d=30/h=09/m=00/PT1H.json"
    # The account key of the connection string is stored nowhere.
    with store.engine.connect() as connection:
        for table in ("log_files", "events", "checkpoints", "quarantine"):
            rows = connection.exec_driver_sql(f"SELECT * FROM {table}").fetchall()
            assert AZURITE_KEY not in repr(rows)
    store.close()


def test_hours_before_checkpoint_not_downloaded(container, tmp_path):
    old = container.get_blob_client(f"{FOLDER}/y=2026/m=11/d=30/h=02/m=00/PT1H.json")
    old.upload_blob(b"".join(_lines()[:3]))
    store = Store.open(f"sqlite:///{tmp_path / 'blobs.db'}")
    config = _config(tmp_path)
    assert _read(config, store).files == 1

    new = container.get_blob_client(f"{FOLDER}/y=2026/m=11/d=30/h=09/m=00/PT1H.json")
    new.upload_blob(b"".join(_lines()[3:]))
    second = _read(config, store)
    assert second.files == 1
    assert second.skipped == 1

    # An old blob rewritten after the checkpoint moved past its hour is not listed.
    old.upload_blob(b"".join(_lines()[:2]) + json.dumps({"x": 1}).encode(), overwrite=True)
    third = _read(config, store)
    assert third.files == 0
    assert third.skipped == 1
    store.close()
