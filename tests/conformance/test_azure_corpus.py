"""Every public Azure audit-log sample in the shared corpus is read without a crash.

Each file is read through format recognition, as `imageprov ingest` reads it, and
its expected counts are written here: the format chosen, records read, image
events extracted, records reported as malformed, and the shapes recognised. The
samples hold no image-creating Activity Log operation, so their events are ACR
pushes and deletes.
"""

from __future__ import annotations

import pytest

from imageprov import formats
from tests.conftest import CORPUS

AZURE = CORPUS / "azure"

# path: (format, records, image events, malformed records, shapes)
EXPECTED = {
    "acr/eventgrid-chart-pushed-docs.json": ("acr-events", 1, 0, 0,
                                             {"event-grid", "json-array"}),
    "acr/eventgrid-image-deleted-docs-legacy.json": ("acr-events", 1, 1, 0,
                                                     {"event-grid", "json-array"}),
    "acr/webhook-delete-docs.json": ("acr-events", 1, 1, 0, {"acr-webhook"}),
    "acr/webhook-push-docs.json": ("acr-events", 1, 1, 0, {"acr-webhook"}),
    "acr/webhook-push-jenkins-plugin.json": ("acr-events", 1, 1, 0, {"acr-webhook"}),
    "elastic-integrations/activitylogs-mixedcase-resourceid.jsonl": (
        "azure-activity", 2, 0, 0, {"azure-export", "json-lines"}),
    "elastic-integrations/activitylogs-raw.jsonl": ("azure-activity", 3, 0, 0,
                                                    {"azure-export", "json-lines"}),
    "msdocs/activity-log-rest-administrative.json": ("azure-activity", 1, 0, 0,
                                                     {"azure-rest"}),
    # The sidecar maps records to their rule files; it is no log.
    "panther-analysis/compute-activity-records.index.json": (
        "cloudtrail", 0, 0, 0, {"json-array", "unknown-json"}),
    # One test log keeps only p_log_type, category, operationName and p_enrichment.
    "panther-analysis/compute-activity-records.json": (
        "azure-activity", 11, 0, 1, {"azure-export", "json-array"}),
    "plaso/azure-activity-sdk-shape.jsonl": ("azure-activity", 4, 0, 0,
                                             {"azure-sdk", "json-lines"}),
}

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not AZURE.is_dir(), reason=f"no corpus at {AZURE}"),
]


def _corpus_files() -> list[str]:
    return sorted(str(p.relative_to(AZURE)) for p in AZURE.rglob("*") if p.is_file())


def test_every_corpus_file_has_expectations():
    assert _corpus_files() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_counts(name):
    source, records, events, problems, shapes = EXPECTED[name]
    document = formats.read((AZURE / name).read_bytes(), name)
    assert document.source == source
    assert document.records == records
    assert len(document.events) == events
    assert len(document.problems) == problems
    assert document.shapes == shapes
    for problem in document.problems:
        assert problem.location == name


def test_panther_record_without_time_names_field():
    document = formats.read(
        (AZURE / "panther-analysis/compute-activity-records.json").read_bytes(), "p.json")
    (problem,) = document.problems
    assert (problem.index, problem.field) == (11, "time")


def test_webhook_push_event_fields():
    document = formats.read((AZURE / "acr/webhook-push-docs.json").read_bytes(), "w.json")
    (event,) = document.events
    assert event.registry == "myregistry.azurecr.io"
    assert event.repository == "hello-world"
    assert event.tag == "v1"
    assert event.target == ("sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d2549"
                            "0f331d7d")
    assert event.principal.id == "unknown"


@pytest.mark.parametrize("cloud", ["aws", "gcp", "registry"])
def test_other_corpus_not_claimed_by_azure_formats(cloud):
    for path in sorted((CORPUS / cloud).rglob("*")):
        if path.is_file():
            chosen = formats.choose(path.read_bytes())
            assert chosen.platform != "azure", path
