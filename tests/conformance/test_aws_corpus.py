"""Every public AWS audit-log sample in the shared corpus is read without a crash.

The corpus sits beside the project where it is present. Each file's expected counts
are written here: CloudTrail records read, image events extracted, records reported
as malformed, and the shapes recognised. Files that hold no log records (digests,
Insights, S3 and SNS delivery notices) must be recognised as such.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imageprov.ingest import ingest
from imageprov.sources.aws.trail_documents import read_document
from imageprov.sources.aws.trail_locations import LocalTrail
from imageprov.store import Store
from tests.conftest import CORPUS

AWS = CORPUS / "aws"

# path: (records, image events, malformed records, shapes)
EXPECTED = {
    "awsdocs/aws-service-event-rotatekey.json": (1, 0, 0, {"cloudtrail-record"}),
    "awsdocs/cloudtrail-digest-file-examples.json": (0, 0, 0, {"cloudtrail-digest",
                                                               "json-array"}),
    "awsdocs/cloudtrail-insights-log-file-example.json": (0, 0, 0, {"cloudtrail-insights"}),
    "awsdocs/cloudtrail-log-file-examples.json": (6, 0, 0, {"cloudtrail-log-file",
                                                            "json-array"}),
    "awsdocs/ecr-cloudtrail-examples.json": (4, 1, 0, {"cloudtrail-record", "json-array"}),
    "awsdocs/ecr-eventbridge-events.json": (0, 0, 0, {"eventbridge-event", "json-array"}),
    "awsdocs/ecr-public-cloudtrail-examples.json": (2, 1, 0, {"cloudtrail-record",
                                                              "json-array"}),
    "awsdocs/lookup-events-insight-output.json": (0, 0, 0, {"cloudtrail-insights",
                                                            "lookup-events"}),
    "cloud-custodian/createvolume-from-snapshot.json": (1, 0, 0, {"cloudtrail-record"}),
    "cloud-custodian/eventbridge-cloudtrail-createbucket.json": (
        1, 0, 0, {"eventbridge-cloudtrail"}),
    "cloud-custodian/runinstances-creator-assumed.json": (1, 0, 0, {"cloudtrail-record"}),
    "cloud-custodian/runinstances-creator.json": (1, 0, 0, {"cloudtrail-record"}),
    "cloud-custodian/runinstances.json": (1, 0, 0, {"cloudtrail-record"}),
    "cloudtrail-processing-library/SQSMessageBody.json": (0, 0, 0, {"sns-notification"}),
    "cloudtrail-processing-library/SerializerTestFile.json": (6, 0, 0,
                                                              {"cloudtrail-log-file"}),
    "cloudtrail-processing-library/SerializerTestFileBadFieldName.json": (
        1, 0, 1, {"cloudtrail-log-file"}),
    "cloudtrail-processing-library/SerializerTestFileCompact.json": (
        6, 0, 0, {"cloudtrail-log-file"}),
    "cloudtrail-processing-library/SerializerTestFileCompact.json.gz": (
        6, 0, 0, {"cloudtrail-log-file"}),
    "cloudtrail-processing-library/SerializerTestFileLocation.json": (
        6, 0, 0, {"cloudtrail-log-file"}),
    "cloudtrail-processing-library/SerializerTestFileMissField.json": (
        3, 0, 1, {"cloudtrail-log-file"}),
    "cloudtrail-processing-library/SerializerTestFileNewFieldName.json": (
        1, 0, 1, {"cloudtrail-log-file"}),
    "cloudtrail-processing-library/SerializerTestFileNewFieldsInRoot.json": (
        2, 0, 0, {"cloudtrail-log-file"}),
    "cloudtrail-processing-library/SerializerTestFileNewFieldsInUserIdentity.json": (
        2, 0, 0, {"cloudtrail-log-file"}),
    "cloudtrail-processing-library/SerializerVariousUserIdentityTestFile.json": (
        1, 0, 0, {"cloudtrail-log-file"}),
    "elastic-integrations/cloudtrail-digest.json": (0, 0, 0, {"cloudtrail-digest"}),
    "otrf-security-datasets/ec2_proxy_s3_exfiltration_2020-09-14011940.jsonl": (
        103, 0, 0, {"cloudtrail-record", "json-lines"}),
    "panther-analysis/cloudtrail-rule-test-records.index.json": (
        0, 0, 0, {"json-array", "unknown-json"}),
    "panther-analysis/cloudtrail-rule-test-records.jsonl": (
        427, 0, 18, {"cloudtrail-record", "json-lines"}),
    "panther-analysis/image-and-registry-events.index.json": (
        0, 0, 0, {"json-array", "unknown-json"}),
    "panther-analysis/image-and-registry-events.json": (14, 10, 0, {"cloudtrail-record",
                                                                    "json-array"}),
    "plaso/lookup-events.jsonl": (6, 0, 0, {"json-lines", "lookup-events"}),
    "s3-delivery-notifications/eventbridge-object-created-unsupported-version.json": (
        0, 0, 0, {"eventbridge-event"}),
    "s3-delivery-notifications/eventbridge-object-created.json": (0, 0, 0,
                                                                  {"eventbridge-event"}),
    "s3-delivery-notifications/s3-event-object-created.json": (0, 0, 0, {"s3-notification"}),
    "s3-delivery-notifications/s3-test-event.json": (0, 0, 0, {"s3-test-event"}),
    "s3-delivery-notifications/sns-s3-event.json": (0, 0, 0, {"sns-notification"}),
    "s3-delivery-notifications/sqs-s3-event.json": (0, 0, 0, {"sqs-message"}),
    "s3-delivery-notifications/sqs-sns-event.json": (0, 0, 0, {"sqs-message"}),
    "stratus-red-team/aws.exfiltration.ec2-share-ebs-snapshot.json": (
        1, 0, 0, {"cloudtrail-record", "json-array"}),
    "stratus-red-team/detonation-logs-33-techniques.jsonl": (
        308, 0, 0, {"cloudtrail-record", "json-lines"}),
}

NOT_RECORDS = {"cloudtrail-digest", "cloudtrail-insights", "eventbridge-event",
               "s3-notification", "s3-test-event", "sns-notification", "sqs-message",
               "unknown-json"}

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not AWS.is_dir(), reason=f"no corpus at {AWS}"),
]


def _corpus_files() -> list[str]:
    return sorted(str(p.relative_to(AWS)) for p in AWS.rglob("*") if p.is_file())


def test_every_corpus_file_has_expectations():
    assert _corpus_files() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_counts(name):
    records, events, problems, shapes = EXPECTED[name]
    document = read_document((AWS / name).read_bytes(), name)
    assert document.records == records
    assert len(document.events) == events
    assert len(document.problems) == problems
    assert document.shapes == shapes
    if shapes & NOT_RECORDS and not records:
        assert document.notices, "a file of another kind must say what it is"
    for problem in document.problems:
        assert problem.location == name
        assert problem.field
        assert problem.index >= 0


def test_corpus_ingest_stores_and_quarantines(database_url: str):
    store = Store.open(database_url)
    summary = ingest(store, LocalTrail(AWS).objects(), workers=1)
    assert summary.files == len(EXPECTED)
    assert summary.records == sum(v[0] for v in EXPECTED.values())
    assert summary.problems == sum(v[2] for v in EXPECTED.values())
    assert len(store.quarantined()) == summary.problems
    # The samples reuse eventIDs: Panther's four ModifyImageAttribute tests all
    # carry "1111", and the ECR, ECR Public and Panther PutImage samples share one
    # eventID across two recipient accounts. Deduplication by (account, eventID)
    # keeps one ModifyImageAttribute and one PutImage per account.
    assert store.event_count() == 1 + 2

    again = ingest(store, LocalTrail(AWS).objects(), workers=1)
    assert again.files == 0
    assert again.skipped == len(EXPECTED)
    assert store.event_count() == 3
