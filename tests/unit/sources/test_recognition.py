"""Format recognition: names, tags and descriptions that callers choose never move
a document to another reader."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from imageprov import formats
from imageprov.sources import json_head
from tests.unit.sources import test_acr_events as acr
from tests.unit.sources import test_azure_activity as activity
from tests.unit.sources import test_formats as cloudtrail
from tests.unit.sources import test_gcp_audit as gcp
from tests.unit.sources import test_registry_notifications as registry

# Words that are keys of some format. Here each is only a value a caller chose.
KEY_WORDS = ["eventSource", "eventVersion", "detail-type", "CloudTrailEvent",
             "operationName", "logName", "insertId", "protoPayload", "push_data",
             "LoginServer"]


def _acr_grid(tag: str) -> bytes:
    grid = [{"id": f"{acr.DATA['id']}-{n}", "topic": acr.TOPIC, "subject": f"team/app:{t}",
             "eventType": "Microsoft.ContainerRegistry.ImagePushed",
             "eventTime": "2026-11-30T08:00:01Z", "dataVersion": "1.0",
             "data": {**acr.DATA, "id": f"d{n}",
                      "target": {**acr.DATA["target"], "tag": t}}}
            for n, t in enumerate((tag, "v2"))]
    return json.dumps(grid).encode()


def _gcp_insert(name: str) -> bytes:
    entry = gcp._entry()
    entry["protoPayload"] = {**entry["protoPayload"],
                             "resourceName": f"projects/p/global/images/{name.lower()}",
                             "request": {"@type": "type.googleapis.com/compute.images.insert",
                                         "description": name}}
    return (json.dumps(entry) + "\n").encode()


def _notification(tag: str) -> bytes:
    return json.dumps({"events": [registry._event(target__tag=tag)]}).encode()


def _docker_hub(tag: str) -> bytes:
    return json.dumps({"callback_url": "https://registry.hub.docker.com/u/team/app/hook/1/",
                       "push_data": {"pushed_at": 1764583200, "pusher": "bot", "tag": tag},
                       "repository": {"repo_name": "team/app"}}).encode()


def _activity_list(group: str) -> bytes:
    record = activity._rest("Succeeded")
    record["resourceId"] = record["resourceId"].replace("/rg/", f"/{group}/")
    return json.dumps({"value": [record], "nextLink": None}).encode()


DOCUMENTS = {
    "acr-events": (_acr_grid, 2),
    "gcp-audit": (_gcp_insert, 1),
    "registry-notifications": (_notification, 1),
    "dockerhub-webhook": (_docker_hub, 1),
    "azure-activity": (_activity_list, 1),
}


@pytest.mark.parametrize("word", KEY_WORDS)
@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_key_words_in_values_keep_their_reader(name, word):
    build, events = DOCUMENTS[name]
    data = build(word)
    assert formats.choose(data).name == name
    assert len(formats.read(data, "doc.json").events) == events


def _lookup_item(image_id: str, description: str) -> dict[str, object]:
    record = cloudtrail._hijacking_record()
    record["requestParameters"] = {"instanceId": "i-0123456789abcdef0", "name": "golden",
                                   "description": description,
                                   "tagSpecificationSet": {"items": [
                                       {"key": f"k{n}", "value": "v" * 60}
                                       for n in range(50)]}}
    record["responseElements"] = {"imageId": image_id}
    record["eventID"] = image_id
    return {"EventId": image_id, "EventName": "CreateImage",
            "EventTime": "2026-03-01T10:00:00Z", "Username": "builder",
            "CloudTrailEvent": json.dumps(record)}


def test_sorted_lookup_events_stay_cloudtrail():
    # Sorted keys put CloudTrailEvent first, so the EventId of the first item falls
    # past the first 4 KiB, and an ACR marker in a description would decide.
    items = [_lookup_item("ami-0123456789abcdef0",
                          "mirror of Microsoft.ContainerRegistry/registries/team"),
             _lookup_item("ami-0123456789abcdef1", "golden")]
    data = json.dumps({"Events": items}, sort_keys=True).encode()
    assert b'"EventId"' not in data[:4096]
    assert formats.choose(data) is formats.FALLBACK
    targets = [event.target for event in formats.read(data, "lookup.json").events]
    assert targets == ["ami-0123456789abcdef0", "ami-0123456789abcdef1"]


def test_eventbridge_after_custom_event_stays_cloudtrail():
    custom = {"version": "0", "id": "c1", "detail-type": "Order placed",
              "source": "com.example.orders", "account": "111122223333",
              "time": "2026-03-01T10:00:00Z", "region": "us-east-1", "resources": [],
              "detail": {"operationName": "x" * 5000}}
    record = cloudtrail._hijacking_record()
    envelope = {"version": "0", "id": "e1", "detail-type": "AWS API Call via CloudTrail",
                "source": "aws.ec2", "account": "111122223333",
                "time": "2026-03-01T10:00:00Z", "region": "us-east-1", "resources": [],
                "detail": record}
    data = "\n".join(json.dumps(item) for item in (custom, envelope)).encode()
    assert formats.choose(data) is formats.FALLBACK
    document = formats.read(data, "events.json")
    assert [event.target for event in document.events] == ["ami-0123456789abcdef0"]
    assert any("Order placed" in notice for notice in document.notices)


def _chosen(data: bytes) -> tuple[str, int]:
    return formats.choose(data).name, len(formats.read(data, "doc.json").events)


def _rest_with(**changes: object) -> bytes:
    return json.dumps({"value": [{**activity._rest("Succeeded"), **changes}]}).encode()


def _push_of_large_entry() -> bytes:
    # Pub/Sub sends `message` first, so base64 data fills the first 4 KiB.
    entry = gcp._entry()
    entry["protoPayload"]["request"]["description"] = "d" * 2400
    data = base64.b64encode(json.dumps(entry).encode()).decode()
    return json.dumps({"message": {"attributes": {}, "data": data, "messageId": "1",
                                   "publishTime": "2026-01-02T03:04:06Z"},
                       "subscription": "projects/p/subscriptions/audit"}).encode()


def _log_files_in_an_array(**request: str) -> bytes:
    record = json.loads(json.dumps(cloudtrail.RECORD))
    record["requestParameters"] = {"instanceId": "i-0123456789abcdef0", **request}
    return json.dumps([{"Records": [record]}]).encode()


def _broken_line_first() -> bytes:
    lines = [b"{not json\n", *(json.dumps(gcp._entry(insertId=f"i{n}")).encode() + b"\n"
                               for n in range(2))]
    return b"".join(lines)


CHOSEN = {
    "array of log files, ACR path in a description": (_log_files_in_an_array(
        description="mirror of Microsoft.ContainerRegistry/registries/team"),
        ("cloudtrail", 1)),
    "array of log files, Activity key as a name": (_log_files_in_an_array(
        name="operationName"), ("cloudtrail", 1)),
    "ACR webhook, actor named detail-type": (json.dumps(
        {**acr.DATA, "actor": {"name": "detail-type"}}).encode(), ("acr-events", 1)),
    "ACR webhook saved as an array": (json.dumps([acr.DATA]).encode(), ("acr-events", 1)),
    "GCP lines after a broken first line": (_broken_line_first(), ("gcp-audit", 2)),
    "registry notification, tag of an ACR event type": (json.dumps({"events": [
        registry._event(target__tag="Microsoft.ContainerRegistry.ImagePushed")]}).encode(),
        ("registry-notifications", 1)),
    "registry notification, actor named operationName": (json.dumps({"events": [
        registry._event(actor__name="operationName")]}).encode(),
        ("registry-notifications", 1)),
    "Docker Hub, ACR path in the description": (json.dumps({
        "push_data": {"pushed_at": 1764583200, "pusher": "bot", "tag": "v1"},
        "repository": {"repo_name": "team/app", "full_description":
                       "Mirrored to Microsoft.ContainerRegistry/registries/team"}}).encode(),
        ("dockerhub-webhook", 1)),
    "Activity, resource group named after ACR's category": (_rest_with(
        resourceGroupName="ContainerRegistryRepositoryEvents"), ("azure-activity", 1)),
    "Activity, display name LoginServer": (_rest_with(
        claims={"upn": "ana@contoso.com", "name": "LoginServer"}), ("azure-activity", 1)),
    "Pub/Sub push of a large entry": (_push_of_large_entry(), ("gcp-audit", 1)),
}


@pytest.mark.parametrize("case", list(CHOSEN))
def test_chosen_reader_keeps_events(case):
    data, expected = CHOSEN[case]
    assert _chosen(data) == expected


@pytest.mark.parametrize(("start", "keys"), [
    (b'{"a":"' + b'\\"' * 500_000, b'"a"'),
    (b'{"a":"' + b'\\"x' * 300_000 + b'\\', b'"a"'),
    (b"[" * 1_000_000, b""),
    (b'{"a":' * 200_000, b'"a"'),
    (b'"' + b'\\"' * 500_000 + b'\\\n', b""),
])
def test_head_scan_is_linear(start, keys):
    # A quadratic scan took 37 s for 64 KiB of escaped quotes, so these 1 MB inputs
    # would take hours, where a linear one takes milliseconds.
    assert json_head.scan(start).keys == keys


def test_head_scan_tells_keys_from_values():
    head = json_head.scan(b'{"k": "v", "m": {"push_data": "\\"eventName\\": 1"}, '
                          b'"Records": [{"eventVersion": "1", "tags": {"logName": 1}, '
                          b'"cut": "abc')
    # Keys of `m` and `tags`, which a caller may choose, are left out.
    assert head.keys == b'"k""m""Records""eventVersion""tags""cut"'
    assert head.records == (frozenset({b'"k"', b'"m"', b'"Records"'}),
                            frozenset({b'"eventVersion"', b'"tags"', b'"cut"'}))


def test_nested_caller_keys_decide_nothing():
    # A GCP label and a large CloudTrail field sorted first hold keys of other formats.
    entry = gcp._entry()
    entry["protoPayload"]["request"]["labels"] = {"detail-type": "x", "eventVersion": "y"}
    assert formats.choose((json.dumps(entry) + "\n").encode()).name == "gcp-audit"
    record = cloudtrail._hijacking_record()
    record["additionalEventData"] = {"operationName": "x" * 5000, "logName": "y"}
    data = json.dumps(record, sort_keys=True).encode()
    assert formats.choose(data) is formats.FALLBACK
    assert [event.target for event in formats.read(data, "r.json").events] == [
        "ami-0123456789abcdef0"]
