"""Cloud Audit Logs entries: shapes, operations, failures, principals and bad input."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from imageprov.sources.fields import NOT_UTF8
from imageprov import formats
from imageprov.model import EventEffect, PrincipalKind
from imageprov.policy.network import AddressClass, classify
from imageprov.sources.gcp.audit_documents import read_document, recognises
from imageprov.sources.gcp.audit_entries import docker_image_of, principal_of
from tests.helpers.gcp_scenario import DATA, LOGS

MALFORMED = DATA / "malformed" / "entries.jsonl"


def _entry(**changes: object) -> dict:
    entry = {
        "insertId": "abc1", "logName": "projects/p/logs/cloudaudit.googleapis.com%2Factivity",
        "timestamp": "2026-01-02T03:04:05.123456789Z",
        "resource": {"type": "gce_image", "labels": {"project_id": "p", "image_id": "77"}},
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "serviceName": "compute.googleapis.com",
            "methodName": "v1.compute.images.insert",
            "resourceName": "projects/p/global/images/web-v1",
            "authenticationInfo": {"principalEmail": "b@p.iam.gserviceaccount.com"},
            "requestMetadata": {"callerIp": "10.0.0.1"},
            "request": {"@type": "type.googleapis.com/compute.images.insert"},
            "status": {},
        },
    }
    entry.update(changes)
    return entry


def _read(*entries: object) -> object:
    text = "".join(json.dumps(entry) + "\n" for entry in entries)
    return read_document(text.encode(), "test.jsonl")


def test_malformed_entries_quarantined_with_field():
    document = read_document(MALFORMED.read_bytes(), "entries.jsonl")
    problems = {(p.index, p.field) for p in document.problems}
    assert problems == {
        (1, "resource.labels.image_id"),
        (2, "timestamp"),
        (3, "(json)"),
        (4, "insertId"),
        (5, "message.data"),
        (6, "protoPayload.status.code"),
        (7, "(entry)"),
    }
    assert all(p.location == "entries.jsonl" for p in document.problems)
    # The good entry is kept.
    assert [event.target for event in document.events] == ["1010"]


def test_last_entry_takes_request_of_first():
    first = _entry(insertId="f1", operation={"id": "op-1", "first": True})
    first["protoPayload"]["request"] = {
        "@type": "type.googleapis.com/compute.images.insert", "name": "web-v1",
        "sourceImage": "https://www.googleapis.com/compute/v1/projects/other/global/images/x"}
    last = _entry(insertId="l1", operation={"id": "op-1", "last": True},
                  timestamp="2026-01-02T03:05:00Z")
    document = _read(last, first)
    by_id = {event.event_id: event for event in document.events}
    assert by_id["l1"].effect is EventEffect.COPY
    assert by_id["l1"].source_image == "projects/other/global/images/x"
    assert by_id["l1"].succeeded
    assert by_id["f1"].error_code == "incomplete-operation"


def test_entry_both_first_and_last_completes():
    document = _read(_entry(operation={"id": "op-2", "first": True, "last": True}))
    assert document.events[0].succeeded


def test_failed_last_entry_attributes_nothing():
    failed = _entry(operation={"id": "op-3", "last": True})
    failed["protoPayload"]["status"] = {"code": 9, "message": "FAILED_PRECONDITION"}
    document = _read(failed)
    assert document.events[0].error_code == "FAILED_PRECONDITION"
    assert not document.events[0].succeeded


def test_raw_disk_insert_is_import():
    entry = _entry()
    entry["protoPayload"]["request"].update(
        {"name": "appliance", "rawDisk": {"source": "gs://bucket/disk.tar.gz"}})
    assert _read(entry).events[0].effect is EventEffect.IMPORT


def test_duplicate_entry_read_once():
    document = _read(_entry(), _entry())
    assert document.records == 2
    assert len(document.events) == 1
    assert "1 duplicate entries (same logName and insertId) read once" in document.notices


def test_pubsub_push_body_read():
    entry = _entry()
    body = {"message": {"data": base64.b64encode(json.dumps(entry).encode()).decode(),
                        "messageId": "1", "attributes": {}},
            "subscription": "projects/p/subscriptions/s"}
    document = read_document(json.dumps(body).encode(), "push.json")
    assert document.shapes == {"pubsub-push"}
    assert document.events[0].event_id == "abc1"


def test_gcloud_array_and_gzip_read():
    data = gzip.compress(json.dumps([_entry(), _entry(insertId="abc2")]).encode())
    document = read_document(data, "read.json.gz")
    assert document.shapes == {"json-array", "log-entry"}
    assert len(document.events) == 2


def test_beta_and_v1_methods_match():
    beta = _entry()
    beta["protoPayload"]["methodName"] = "beta.compute.images.insert"
    assert len(_read(beta).events) == 1


def test_set_iam_policy_replaces_grants():
    entry = _entry()
    entry["protoPayload"]["methodName"] = "v1.compute.images.setIamPolicy"
    entry["protoPayload"]["request"] = {"policy": {"bindings": [
        {"role": "roles/compute.imageUser", "members": ["allUsers"]}]}}
    event = _read(entry).events[0]
    assert event.effect is EventEffect.SHARE
    assert event.shared_with == ("allUsers",)
    assert event.unshared_from == ("*",)


def test_spans_per_project_and_location():
    document = read_document(
        (LOGS / "cloudaudit.googleapis.com" / "data_access" / "2026" / "01" / "02"
         / "11:00:00_11:59:59_S0.json").read_bytes(), "data_access.json")
    assert document.spans == {("shop-prod", "europe-west1"): ["2026-01-02T11:15:00Z",
                                                              "2026-01-02T11:15:00Z"]}
    event = document.events[0]
    assert event.registry == "europe-west1-docker.pkg.dev"
    assert event.repository == "shop-prod/apps/api"
    assert event.effect is EventEffect.PUSH


@pytest.mark.parametrize("path", sorted(p for p in LOGS.rglob("*") if p.is_file()))
def test_exported_files_recognised(path):
    assert formats.choose(path.read_bytes()).name == "gcp-audit"


def test_cloudtrail_never_claimed():
    record = {"eventVersion": "1.08", "eventSource": "ec2.amazonaws.com",
              "eventName": "CreateImage", "insertId": "x", "logName": "y"}
    assert not recognises(json.dumps(record).encode())
    assert formats.choose(json.dumps({"Records": [record]}).encode()).name == "cloudtrail"


def test_docker_image_name_parts():
    parts = docker_image_of("projects/p/locations/us/repositories/r/dockerImages/"
                            "team%2Fapp@sha256:" + "c" * 64)
    assert parts == {"project": "p", "location": "us", "repository": "r",
                     "image": "team/app", "digest": "sha256:" + "c" * 64}


def test_principal_kinds_and_aliases():
    account = principal_of({"principalEmail": "ci@p.iam.gserviceaccount.com",
                            "principalSubject": "serviceAccount:ci@p.iam.gserviceaccount.com",
                            "oauthInfo": {"oauthClientId": "1234567890"}})
    assert account.kind is PrincipalKind.SERVICE_ACCOUNT
    assert account.aliases == ("serviceAccount:ci@p.iam.gserviceaccount.com", "1234567890")
    assert account.account == "p"
    user = principal_of({"principalEmail": "alice@example.com"})
    assert user.kind is PrincipalKind.USER
    federated = principal_of({"principalSubject": "principal://iam.googleapis.com/"
                                                  "locations/global/workforcePools/w/subject/s"})
    assert federated.kind is PrincipalKind.FEDERATED
    assert federated.id.startswith("principal://")


def test_delegation_chain_in_order():
    principal = principal_of({
        "principalEmail": "deploy@p.iam.gserviceaccount.com",
        "serviceAccountDelegationInfo": [
            {"firstPartyPrincipal": {"principalEmail": "alice@example.com"}},
            {"principalSubject": "serviceAccount:hop@p.iam.gserviceaccount.com"}]})
    assert principal.chain == ("alice@example.com",
                               "serviceAccount:hop@p.iam.gserviceaccount.com")


@pytest.mark.parametrize("text", ["gce-internal-ip", "private"])
def test_caller_ip_words_not_external(text):
    assert classify(text).kind is AddressClass.UNREADABLE


def _push(entry: dict) -> dict:
    return {"message": {"data": base64.b64encode(json.dumps(entry).encode()).decode(),
                        "messageId": entry["insertId"]},
            "subscription": "projects/p/subscriptions/s"}


def test_pubsub_push_lines_read():
    text = json.dumps(_push(_entry())) + "\n" + json.dumps(_push(_entry(insertId="abc2")))
    document = read_document(text.encode(), "push.jsonl")
    assert document.shapes == {"json-lines", "pubsub-push"}
    assert [event.event_id for event in document.events] == ["abc1", "abc2"]


def test_pubsub_pull_reply_read():
    reply = {"receivedMessages": [{"ackId": "a1", "message": _push(_entry())["message"]}]}
    document = read_document(json.dumps(reply).encode(), "pull.json")
    assert document.shapes == {"pubsub-pull"}
    assert len(document.events) == 1


def test_offset_timestamp_read_as_utc():
    document = _read(_entry(timestamp="2026-01-02T01:04:05.5-02:00"))
    assert document.spans == {("p", "global"): ["2026-01-02T03:04:05Z",
                                                "2026-01-02T03:04:05Z"]}


def _put_manifest(resource_name: str) -> dict:
    entry = _entry(logName="projects/p/logs/cloudaudit.googleapis.com%2Fdata_access")
    entry["protoPayload"].update({"serviceName": "artifactregistry.googleapis.com",
                                  "methodName": "Docker-PutManifest",
                                  "resourceName": resource_name})
    return entry


def test_put_manifest_by_tag_kept_unjoined():
    document = _read(_put_manifest(
        "projects/p/locations/us/repositories/r/dockerImages/app:latest"))
    assert document.problems == []
    event = document.events[0]
    assert event.target is None
    assert event.tag == "latest"
    assert event.repository == "p/r/app"


def test_put_manifest_without_image_quarantined():
    document = _read(_put_manifest("projects/p/locations/us/repositories/r"))
    assert [(p.index, p.field) for p in document.problems] == [
        (0, "protoPayload.resourceName")]


@pytest.mark.parametrize("lines", [True, False])
def test_number_beyond_double_and_bad_bytes_lose_only_their_entry(lines):
    entries = [_entry(insertId="a1"),
               _entry(insertId="a2", labels={"size": 12345678987654321}),
               _entry(insertId="a3", labels={"note": "PLACEHOLDER"})]
    if lines:
        text = "".join(json.dumps(entry) + "\n" for entry in entries).encode()
    else:
        text = json.dumps(entries).encode()
    text = text.replace(b"12345678987654321", b"1e400").replace(b"PLACEHOLDER", b"\xff\xfe")
    document = read_document(text, "odd.jsonl")
    assert [(p.index, p.field) for p in document.problems] == [(2, "labels.note")]
    assert document.problems[0].detail == NOT_UTF8
    assert document.records == 2
    assert len(document.events) == 2
