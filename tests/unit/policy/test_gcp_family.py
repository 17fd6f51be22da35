"""Judging GCP images: watched family heads, IAM shares and Docker coverage."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import yaml

from imageprov.model import (
    DISPLACED_TAG,
    HEADS_FAMILY_TAG,
    Flag,
    Image,
    ImageKind,
    Platform,
    VerdictStatus,
    compute_image_ref,
)
from imageprov.policy import evaluate_images
from imageprov.policy.schema import parse_policy
from imageprov.sources.gcp.audit_documents import read_document

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
PACKER = "packer@p.iam.gserviceaccount.com"
POLICY = {"version": 1, "builders": [{"name": "packer", "principals": [PACKER]}]}
HEAD_TAGS = {HEADS_FAMILY_TAG: "web", DISPLACED_TAG: compute_image_ref("p", "web-1")}


def _image(name: str, image_id: str, tags: dict[str, str] | None = None) -> Image:
    return Image(ref=compute_image_ref("p", name), platform=Platform.GCP,
                 kind=ImageKind.COMPUTE_IMAGE, account="p", region="global",
                 native_id=image_id, names=(name,), tags=tags or {}, created=T0)


def _entry(insert_id: str, image_id: str, email: str, method: str = "insert",
           request: dict | None = None, minutes: int = 0) -> dict:
    return {
        "insertId": insert_id, "logName": "projects/p/logs/cloudaudit.googleapis.com%2Factivity",
        "timestamp": (T0 + timedelta(minutes=minutes)).isoformat(),
        "resource": {"type": "gce_image", "labels": {"project_id": "p", "image_id": image_id}},
        "protoPayload": {
            "serviceName": "compute.googleapis.com", "methodName": f"v1.compute.images.{method}",
            "authenticationInfo": {"principalEmail": email},
            "requestMetadata": {"callerIp": "10.1.2.3"}, "request": request or {},
            "status": {}},
    }


def _judge(image: Image, *entries: dict) -> object:
    text = "".join(json.dumps(entry) + "\n" for entry in entries)
    document = read_document(text.encode(), "t.jsonl")
    assert document.problems == []
    spans = {(a, r): [(f, l)] for a, r, f, l in document.span_times()}
    policy = parse_policy(yaml.safe_dump(POLICY), "policy.yaml")
    return evaluate_images([image], document.events, policy, spans, NOW).verdicts[image.ref]


def test_unapproved_head_is_takeover():
    verdict = _judge(_image("web-2", "2", HEAD_TAGS),
                     _entry("a", "2", "intruder@example.com"))
    assert verdict.flags == (Flag.UNEXPECTED_ACTOR, Flag.FAMILY_TAKEOVER)
    assert "it displaced projects/p/global/images/web-1" in verdict.reason


def test_approved_head_stays_approved():
    verdict = _judge(_image("web-2", "2", HEAD_TAGS), _entry("a", "2", PACKER))
    assert verdict.status is VerdictStatus.APPROVED
    assert "family" not in verdict.reason


def test_shared_head_is_no_takeover():
    verdict = _judge(_image("web-2", "2", HEAD_TAGS), _entry("a", "2", PACKER),
                     _entry("b", "2", PACKER, "setIamPolicy", minutes=5, request={
                         "policy": {"bindings": [{"role": "roles/compute.imageUser",
                                                  "members": ["allUsers"]}]}}))
    assert verdict.flags == (Flag.PUBLIC,)
    assert "watched family web" in verdict.reason


def test_unattributed_head_names_family():
    verdict = _judge(_image("web-2", "2", HEAD_TAGS), _entry("a", "9", PACKER))
    assert verdict.status is VerdictStatus.UNATTRIBUTED
    assert "watched family web" in verdict.reason


def test_head_tag_ignored_on_aws():
    image = _image("web-2", "2", HEAD_TAGS).model_copy(update={"platform": Platform.AWS})
    verdict = _judge(image, _entry("a", "9", PACKER))
    assert "watched family" not in verdict.reason


def test_later_iam_policy_replaces_public_grant():
    verdict = _judge(
        _image("base", "3"), _entry("a", "3", PACKER),
        _entry("b", "3", PACKER, "setIamPolicy", minutes=5, request={
            "policy": {"bindings": [{"role": "roles/compute.imageUser",
                                     "members": ["allAuthenticatedUsers"]}]}}),
        _entry("c", "3", PACKER, "setIamPolicy", minutes=9, request={
            "policy": {"bindings": []}}))
    assert verdict.status is VerdictStatus.APPROVED


def test_docker_image_without_data_access_reason():
    image = Image(ref="us-docker.pkg.dev/p/r/app@sha256:" + "d" * 64, platform=Platform.GCP,
                  kind=ImageKind.CONTAINER, account="p", region="us",
                  native_id="sha256:" + "d" * 64, digest="sha256:" + "d" * 64,
                  registry="us-docker.pkg.dev", repository="p/r/app", created=T0)
    verdict = _judge(image, _entry("a", "9", PACKER))
    assert verdict.status is VerdictStatus.UNATTRIBUTED
    assert "no Artifact Registry Data Access log has been read for p/us" in verdict.reason


def test_copy_start_in_other_file_sets_effect():
    first = _entry("s", "4", PACKER, request={
        "name": "web-4", "sourceImage": "projects/vendor/global/images/appliance"})
    first["operation"] = {"id": "op-9", "first": True}
    last = _entry("e", "4", PACKER, minutes=2)
    last["operation"] = {"id": "op-9", "last": True}
    events = []
    for name, entry in (("first.jsonl", first), ("last.jsonl", last)):
        document = read_document(json.dumps(entry).encode(), name)
        assert document.problems == []
        events.extend(document.events)
    policy = parse_policy(yaml.safe_dump({"version": 1, "builders": [
        {"name": "packer", "principals": [PACKER], "actions": ["create"]}]}), "p.yaml")
    image = _image("web-4", "4")
    verdict = evaluate_images([image], events, policy, {}, NOW).verdicts[image.ref]
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.event_id == "e"
    assert "action copy is not allowed" in verdict.reason
