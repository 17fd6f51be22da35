"""Every public GCP audit-log sample in the shared corpus is read without a crash.

Each file's expected counts are written here: LogEntry records read, image events
extracted, entries reported as malformed, the shapes recognised and the projects
whose audit coverage the file shows. No sample contains an image method, so the image
events come from tests/data; these files check that real entries of every other
kind, with their quirks (`callerIP` spelling, nine fraction digits, a timestamp with
a space, entries without `protoPayload`, reused insertIds, a Security Command Center
notification), are counted and never taken for image events.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imageprov import formats
from imageprov.ingest import ingest
from imageprov.sources.files import LocalFolder
from imageprov.sources.gcp.audit_documents import read_document
from imageprov.store import Store
from tests.conftest import CORPUS

GCP = CORPUS / "gcp"

# path: (records, image events, malformed entries, shapes, projects covered)
EXPECTED = {
    "cloud-custodian/gcp-audit-events.index.json": (
        0, 0, 0, {"json-array", "unknown-json"}, set()),
    # 47 lines: one Security Command Center notification, and two BigQuery entries
    # with one insertId, read once.
    "cloud-custodian/gcp-audit-events.jsonl": (
        46, 0, 0, {"json-lines", "log-entry", "unknown-json"},
        {"cloud-custodian", "custodian-1291", "custodian-test-project-0",
         "mitrop-custodian", "mythic-tribute-232915", "second-impact-244209",
         "test-project-232910"}),
    "elastic-integrations/audit-selected.jsonl": (
        3, 0, 0, {"json-lines", "log-entry"}, {"elastic-beats", "foo"}),
    "elastic-integrations/compute-instances-insert-deployment-manager.jsonl": (
        1, 0, 0, {"log-entry"}, {"project-id"}),
    "panther-analysis/compute-and-build-audit-records.index.json": (
        0, 0, 0, {"json-array", "unknown-json"}, set()),
    # A disk setIamPolicy test and a snapshot insert test share insertId and logName.
    "panther-analysis/compute-and-build-audit-records.json": (
        5, 0, 0, {"json-array", "log-entry"}, {"some-project", "test-project"}),
    # Two of the eleven lines carry jsonPayload or textPayload: records, no coverage.
    "plaso/gcp-logging.jsonl": (
        11, 0, 0, {"json-lines", "log-entry"}, {"fake-project", "ketchup"}),
}
DUPLICATES = {"cloud-custodian/gcp-audit-events.jsonl",
              "panther-analysis/compute-and-build-audit-records.json"}

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not GCP.is_dir(), reason=f"no corpus at {GCP}"),
]


def _corpus_files() -> list[str]:
    return sorted(str(p.relative_to(GCP)) for p in GCP.rglob("*") if p.is_file())


def test_every_corpus_file_has_expectations():
    assert _corpus_files() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_counts(name):
    records, events, problems, shapes, projects = EXPECTED[name]
    document = read_document((GCP / name).read_bytes(), name)
    assert document.records == records
    assert len(document.events) == events
    assert len(document.problems) == problems
    assert document.shapes == shapes
    assert {project for project, _ in document.spans} == projects
    if "unknown-json" in shapes and not records:
        assert document.notices, "a file of another kind must say what it is"
    duplicate_notes = [n for n in document.notices if "duplicate entries" in n]
    assert bool(duplicate_notes) == (name in DUPLICATES)


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if not n.endswith("index.json")))
def test_corpus_entries_recognised_as_gcp(name):
    assert formats.choose((GCP / name).read_bytes()).name == "gcp-audit"


def test_corpus_ingest_reads_every_file(tmp_path: Path):
    store = Store.open(f"sqlite:///{tmp_path / 'corpus.db'}")
    summary = ingest(store, LocalFolder(GCP).objects(), workers=1)
    assert summary.files == len(EXPECTED)
    assert summary.records == sum(v[0] for v in EXPECTED.values())
    assert summary.problems == 0
    assert store.event_count() == 0
    covered = {(account, region) for account, region in store.coverage()}
    assert ("fake-project", "global") in covered
