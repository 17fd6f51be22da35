"""The Activity Log reader: each shape, names in any case, operations joined."""

from __future__ import annotations

import json

import pytest

from imageprov import formats
from imageprov.model import EventEffect, PrincipalKind
from imageprov.sources.azure.activity import normal_status
from imageprov.sources.azure.activity_documents import read_document
from imageprov.sources.azure.principals import principal_from_claims

SUB = "0d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"
IMAGE = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/images/golden"
CORRELATION = "9e8d7c6b-5a4f-4e3d-2c1b-0a9f8e7d6c5b"
USER = {"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": "Ana@Contoso.com",
        "http://schemas.microsoft.com/identity/claims/objectidentifier":
            "11111111-2222-4333-8444-555555555555"}


def _export(status: str, operation: str = "MICROSOFT.COMPUTE/IMAGES/WRITE",
            resource: str = IMAGE.upper(), claims: dict | None = None) -> dict:
    record = {"time": "2026-11-30T08:00:00.1234567Z", "resourceId": resource,
              "operationName": operation, "resultType": status,
              "correlationId": CORRELATION, "callerIpAddress": "10.9.8.7",
              "identity": {"claims": claims or USER}}
    return record


def _rest(status: str) -> dict:
    return {"eventTimestamp": "2026-11-30T08:00:05Z", "resourceId": IMAGE,
            "operationName": {"value": "Microsoft.Compute/images/write"},
            "status": {"value": status}, "subStatus": {"value": "Created"},
            "correlationId": CORRELATION, "eventDataId": "e1", "caller": "ana@contoso.com",
            "claims": {"upn": "ana@contoso.com"},
            "httpRequest": {"clientIpAddress": "10.9.8.7"}, "subscriptionId": SUB}


@pytest.mark.parametrize("text,expected", [
    ("Success", "succeeded"), ("Succeeded", "succeeded"), ("Start", "started"),
    ("Started", "started"), ("Accept", "accepted"), ("Failure", "failed"),
    ("Failed", "failed"), ("Updated", "updated"),
])
def test_status_spellings_normalised(text, expected):
    assert normal_status(text) == expected


def test_event_hub_records_one_operation():
    body = {"records": [_export("Start"), _export("Accept"), _export("Success")]}
    document = read_document(json.dumps(body).encode(), "hub.json")
    assert document.records == 3
    assert document.shapes == {"event-hub-records", "azure-export"}
    (event,) = document.events
    assert event.effect is EventEffect.CREATE
    assert event.succeeded
    assert event.target == IMAGE.lower()
    assert event.account == SUB
    assert event.principal.id == "ana@contoso.com"


def test_started_only_makes_no_event():
    document = read_document(json.dumps(_export("Start")).encode(), "one.json")
    assert document.records == 1
    assert document.events == []


def test_failed_operation_keeps_error():
    lines = [json.dumps(_export("Start")), json.dumps(_export("Failure"))]
    document = read_document("\n".join(lines).encode(), "failed.json")
    (event,) = document.events
    assert not event.succeeded
    assert event.error_code == "Failure"


def test_rest_list_and_export_share_key():
    rest = read_document(json.dumps({"value": [_rest("Started"), _rest("Succeeded")],
                                     "nextLink": None}).encode(), "list.json")
    export = read_document(json.dumps(_export("Success")).encode(), "export.json")
    assert rest.shapes == {"activity-logs-list", "azure-rest"}
    assert rest.events[0].key == export.events[0].key
    assert rest.events[0].target == export.events[0].target


def test_log_analytics_query_tables():
    columns = ["TimeGenerated", "OperationNameValue", "ActivityStatusValue", "Caller",
               "CallerIpAddress", "CorrelationId", "ResourceId", "SubscriptionId", "Claims"]
    rows = [["2026-11-30T08:00:00Z", "microsoft.compute/images/write", status,
             "ana@contoso.com", "10.9.8.7", CORRELATION, IMAGE.lower(), SUB,
             json.dumps(USER)] for status in ("Start", "Success")]
    body = {"tables": [{"name": "PrimaryResult",
                        "columns": [{"name": c, "type": "string"} for c in columns],
                        "rows": rows}]}
    document = formats.read(json.dumps(body).encode(), "la.json")
    assert document.source == "azure-activity"
    assert document.shapes == {"log-analytics-query", "azure-log-analytics"}
    (event,) = document.events
    assert event.principal.aliases == ("11111111-2222-4333-8444-555555555555",)


def test_wrong_claims_type_quarantined_alone():
    bad = _export("Success", claims=None)
    bad["identity"]["claims"] = ["not", "an", "object"]
    lines = [json.dumps(bad), json.dumps(_export("Success", resource=IMAGE + "2"))]
    document = read_document("\n".join(lines).encode(), "bad.jsonl")
    (problem,) = document.problems
    assert (problem.location, problem.index, problem.field) == (
        "bad.jsonl", 0, "identity.claims")
    assert len(document.events) == 1


def test_image_operation_on_wrong_resource_quarantined():
    record = _export("Success", resource=f"/subscriptions/{SUB}/resourceGroups/rg")
    document = read_document(json.dumps(record).encode(), "odd.json")
    (problem,) = document.problems
    assert problem.field == "resourceId"
    assert "managed-image" in problem.detail


def test_recognises_no_cloudtrail_record():
    trail = {"Records": [{"eventVersion": "1.08", "eventSource": "ec2.amazonaws.com",
                          "eventName": "CreateImage", "operationName": "x"}]}
    assert formats.choose(json.dumps(trail).encode()).name == "cloudtrail"


def test_service_principal_by_app_and_object_id():
    principal = principal_from_claims(
        {"appid": "AAAAAAAA-0000-4000-8000-000000000001", "idtyp": "app",
         "oid": "bbbbbbbb-0000-4000-8000-000000000002"})
    assert principal.kind is PrincipalKind.SERVICE_PRINCIPAL
    assert principal.id == "aaaaaaaa-0000-4000-8000-000000000001"
    assert principal.aliases == ("bbbbbbbb-0000-4000-8000-000000000002",)


def test_managed_identity_named_by_resource_id():
    principal = principal_from_claims(
        {"appid": "c0000000-0000-4000-8000-000000000003", "xms_mirid":
         f"/subscriptions/{SUB}/resourcegroups/RG/providers/"
         "Microsoft.ManagedIdentity/userAssignedIdentities/Builder"},
        evidence={"principalId": "d0000000000040008000000000000004",
                  "principalType": "ServicePrincipal"})
    assert principal.kind is PrincipalKind.MANAGED_IDENTITY
    assert principal.id.endswith("/microsoft.managedidentity/userassignedidentities/builder")
    assert "d0000000-0000-4000-8000-000000000004" in principal.aliases


def test_image_builder_app_gets_alias():
    principal = principal_from_claims({"appid": "cf32a0cc-373c-47c9-9156-0db11f6a6dfc",
                                       "idtyp": "app"})
    assert "azure-image-builder" in principal.aliases


def test_azure_activity_rows_array():
    rows = [{"TimeGenerated": "2026-11-30T08:00:00Z", "Type": "AzureActivity",
             "OperationNameValue": "MICROSOFT.COMPUTE/GALLERIES/IMAGES/VERSIONS/WRITE",
             "ActivityStatusValue": status, "Caller": "ana@contoso.com",
             "CorrelationId": CORRELATION, "OperationId": "op-1",
             "_ResourceId": (f"/subscriptions/{SUB}/resourcegroups/rg/providers/"
                             "microsoft.compute/galleries/g/images/base/versions/2.0.0"),
             "Claims_d": USER if status == "Start" else {},
             "Properties": json.dumps({"statusCode": "Created"})}
            for status in ("Start", "Succeeded")]
    document = formats.read(json.dumps(rows).encode(), "rows.json")
    assert document.shapes == {"json-array", "azure-log-analytics"}
    (event,) = document.events
    assert event.target.endswith("/galleries/g/images/base/versions/2.0.0")
    assert event.principal.id == "ana@contoso.com"
    assert event.origin.index == 1


def test_json_lines_mixed_shapes_read_alike():
    other = {**_export("Success"), "operationName": "Microsoft.Web/sites/write",
             "resourceId": f"/subscriptions/{SUB}/resourceGroups/rg/providers/x/y"}
    lines = [json.dumps(other), json.dumps(_rest("Started")), json.dumps(other),
             json.dumps(_rest("Succeeded"))]
    document = read_document("\n".join(lines).encode(), "mixed.jsonl")
    assert document.records == 4
    assert document.shapes == {"json-lines", "azure-export", "azure-rest"}
    (event,) = document.events
    assert event.origin.index == 3
    assert document.spans == {(SUB, "global"): ["2026-11-30T08:00:00Z",
                                                "2026-11-30T08:00:05Z"]}


def test_json_lines_bad_line_falls_back():
    lines = [json.dumps(_export("Start")), "1,2", json.dumps(_export("Success"))]
    document = read_document("\n".join(lines).encode(), "odd.jsonl")
    assert document.records == 2
    assert len(document.events) == 1
    (problem,) = document.problems
    assert (problem.index, problem.field) == (1, "(json)")


@pytest.mark.parametrize("field", ["eventDataId", "correlationId"])
def test_overlong_operation_id_quarantined_not_cut(field):
    # The id that names the event is never cut: two cut ids could name two
    # operations alike.
    record = {**_rest("Succeeded"), "eventDataId": None, field: "x" * 129}
    document = read_document(json.dumps({"value": [record]}).encode(), "list.json")
    assert document.events == []
    (problem,) = document.problems
    assert problem.field == field
    assert "129 characters" in problem.detail


def test_long_correlation_ids_keep_operations_apart():
    records = []
    for suffix, when in (("first", "2026-11-30T08:00:05Z"), ("second", "2026-11-30T09:00:05Z")):
        record = _rest("Succeeded")
        record.update(correlationId="c" * 160 + "-" + suffix, eventDataId=f"e-{suffix}",
                      eventTimestamp=when)
        records.append(record)
    document = read_document(json.dumps({"value": records}).encode(), "list.json")
    keys = [event.key for event in document.events]
    assert len(keys) == 2
    assert keys[0] != keys[1]
    assert all(len(key) <= 300 for key in keys)


def test_overlong_nested_operation_id_named_by_its_path():
    record = {**_export("Success"), "correlationId": None,
              "properties": {"operationId": "o" * 129}}
    document = read_document(json.dumps(record).encode(), "export.json")
    assert document.events == []
    (problem,) = document.problems
    assert problem.field == "properties.operationId"
