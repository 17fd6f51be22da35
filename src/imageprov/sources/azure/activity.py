"""Activity Log records in every shape, normalised, and the image events they hold.

The same event reaches imageprov in four shapes, with different field names:

- `export`: the diagnostic-setting export to storage or Event Hub (`time`,
  `operationName` as text, `resultType`, `identity.claims`, `callerIpAddress`);
- `rest`: "Activity Logs - List" EventData (`eventTimestamp`, `operationName.value`,
  `status.value`, `claims`, `httpRequest.clientIpAddress`);
- `sdk`: the same EventData as the Python SDK serialises it, in snake_case;
- `log-analytics`: rows of the `AzureActivity` table (`TimeGenerated`,
  `OperationNameValue`, `ActivityStatusValue`, `Claims_d`).

A write or action is logged as several records (Started, then Accepted for a
long-running one, then Succeeded or Failed) sharing a correlation id. They are one
operation here: only the final record makes an event, and it takes the caller's
claims and address from an earlier record of the same operation in the same
document when it lacks them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from imageprov.errors import RecordError
from imageprov.sources.fields import parse_log_time
from imageprov.model import (
    MAX_EVENT_TEXT,
    CreationEvent,
    Principal,
    PrincipalKind,
    RecordOrigin,
)
from imageprov.sources.azure import operations
from imageprov.sources.azure.principals import principal_from_claims
from imageprov.sources.azure.resource_ids import (
    canonical,
    is_gallery_version,
    is_managed_image,
    registry_login_server,
    subscription_of,
)

SOURCE = "azure-activity"
# The Activity Log covers a whole subscription, not a region, so Azure images and
# their events share this one region in their scope.
SCOPE_REGION = "global"

_STATUS = {
    "start": "started", "started": "started",
    "accept": "accepted", "accepted": "accepted",
    "success": "succeeded", "succeeded": "succeeded",
    "failure": "failed", "failed": "failed",
    "cancel": "canceled", "canceled": "canceled", "cancelled": "canceled",
}
FINAL = frozenset({"succeeded", "failed", "canceled"})

# Field names per shape: time, operation, status, sub-status, resource id,
# correlation id, event id, caller, caller address, subscription.
_FIELDS = {
    "export": ("time", "operationName", "resultType", "resultSignature", "resourceId",
               "correlationId", "eventDataId", "caller", "callerIpAddress", "subscriptionId"),
    "rest": ("eventTimestamp", "operationName", "status", "subStatus", "resourceId",
             "correlationId", "eventDataId", "caller", "httpRequest.clientIpAddress",
             "subscriptionId"),
    "sdk": ("event_timestamp", "operation_name", "status", "sub_status", "resource_id",
            "correlation_id", "event_data_id", "caller", "http_request.client_ip_address",
            "subscription_id"),
    "log-analytics": ("TimeGenerated", "OperationNameValue", "ActivityStatusValue",
                      "ActivitySubstatusValue", "ResourceId", "CorrelationId",
                      "EventDataId", "Caller", "CallerIpAddress", "SubscriptionId"),
}
_CLAIMS = {"export": ("identity.claims",), "rest": ("claims",), "sdk": ("claims",),
           "log-analytics": ("Claims_d", "Claims")}
_EVIDENCE = {"export": ("identity.authorization.evidence",),
             "rest": ("authorization.evidence",), "sdk": ("authorization.evidence",),
             "log-analytics": ("Authorization_d.evidence", "Authorization.evidence")}
_PROPERTIES = {"export": ("properties",), "rest": ("properties",), "sdk": ("properties",),
               "log-analytics": ("Properties_d", "Properties")}
_OPERATION_ID = {"export": ("operationId", "properties.operationId"),
                 "rest": ("operationId",), "sdk": ("operation_id",),
                 "log-analytics": ("OperationId",)}
# The store keeps ids and addresses up to these lengths.
_MAX_TARGET = 256
_MAX_TEXT = 256


def shape_of(record: Mapping[str, Any]) -> str:
    """Return the shape of one Activity Log record."""
    if "TimeGenerated" in record or "OperationNameValue" in record:
        return "log-analytics"
    if "event_timestamp" in record or "operation_name" in record:
        return "sdk"
    if "eventTimestamp" in record or isinstance(record.get("operationName"), dict):
        return "rest"
    return "export"


def _path(record: Any, path: str) -> Any:
    node = record
    for part in path.split("."):
        if isinstance(node, str) and node[:1] == "{":
            node = _json_object(node)
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _json_object(value: Any) -> dict[str, Any] | None:
    """Return an object given as an object or as JSON text, else None."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip()[:1] == "{":
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def _text(value: Any) -> str | None:
    """Return a value as text, unwrapping `{value, localizedValue}` objects."""
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def parse_time(value: Any, location: str, index: int, field_name: str) -> datetime:
    """Parse an Activity Log time; text without an offset is UTC."""
    if not isinstance(value, str) or not value.strip():
        raise RecordError(location, index, field_name, "missing or not a time string")
    return parse_log_time(value, location, index, field_name)


def normal_status(value: str | None) -> str:
    """Return `started`, `accepted`, `succeeded`, `failed`, `canceled` or the value
    lower-cased; exports write `Success` where the REST API writes `Succeeded`."""
    text = (value or "").strip().lower()
    return _STATUS.get(text, text)


@dataclass
class ActivityRecord:
    """One Activity Log record with its fields found, whatever its shape."""

    index: int
    shape: str
    raw: dict[str, Any]
    time: datetime
    operation: str
    status: str
    status_text: str | None
    sub_status: str | None
    resource_id: str | None
    correlation_id: str | None
    operation_id: str | None
    event_id: str | None
    subscription: str | None
    source_ip: str | None
    principal: Principal
    properties: dict[str, Any] = field(default_factory=dict)
    # The key that `operation_id` was read from.
    operation_id_field: str = ""

    @property
    def final(self) -> bool:
        return self.status in FINAL


def survey(record: dict[str, Any], index: int, location: str,
           fallback_account: str | None) -> tuple[str, datetime, str | None, bool]:
    """Return a record's shape, time and subscription, and whether its operation is
    in the operation table, reading no more of it than that.

    Raises:
        RecordError: the time or the operation name is missing or invalid.
    """
    shape = shape_of(record)
    fields = _FIELDS[shape]
    when = parse_time(_path(record, fields[0]), location, index, fields[0])
    operation = _text(_path(record, fields[1]))
    if operation is None:
        raise RecordError(location, index, fields[1], "missing or not a string")
    resource_id = _path(record, fields[4])
    if resource_id is None and shape == "log-analytics":
        resource_id = record.get("_ResourceId")
    subscription = (subscription_of(resource_id if isinstance(resource_id, str) else None)
                    or _subscription_text(_path(record, fields[9]))
                    or (fallback_account.lower() if fallback_account else None))
    return shape, when, subscription, operations.lookup(operation) is not None


def normalise(record: dict[str, Any], index: int, location: str,
              fallback_account: str | None) -> ActivityRecord:
    """Find the fields of one record.

    Raises:
        RecordError: the time or the operation name is missing or invalid, or a
            field that names the caller has the wrong type.
    """
    shape = shape_of(record)
    (time_key, operation_key, status_key, sub_key, resource_key, correlation_key,
     event_key, caller_key, address_key, subscription_key) = _FIELDS[shape]
    when = parse_time(_path(record, time_key), location, index, time_key)
    operation = _text(_path(record, operation_key))
    if operation is None:
        raise RecordError(location, index, operation_key, "missing or not a string")
    resource_id = _text(_path(record, resource_key))
    if resource_id is None and shape == "log-analytics":
        resource_id = _text(record.get("_ResourceId"))
    status_text = _text(_path(record, status_key))
    subscription = (subscription_of(resource_id)
                    or _subscription_text(_path(record, subscription_key))
                    or (fallback_account.lower() if fallback_account else None))
    claims_value = next((v for v in (_path(record, k) for k in _CLAIMS[shape])
                         if v is not None), None)
    claims = _json_object(claims_value) if claims_value not in ("", None) else {}
    if claims is None:
        raise RecordError(location, index, _CLAIMS[shape][0],
                          f"expected an object of claims, got {type(claims_value).__name__}")
    evidence = next((v for v in (_path(record, k) for k in _EVIDENCE[shape])
                     if isinstance(v, dict)), {})
    caller = _path(record, caller_key)
    if caller is not None and not isinstance(caller, str):
        raise RecordError(location, index, caller_key,
                          f"expected a string, got {type(caller).__name__}")
    address = _text(_path(record, address_key))
    if address is None and shape == "log-analytics":
        address = _text(_path(record, "HTTPRequest.clientIpAddress"))
    properties = next((p for p in (_json_object(_path(record, k)) for k in _PROPERTIES[shape])
                       if p is not None), {})
    operation_id, operation_id_field = next(
        ((_text(_path(record, k)), k) for k in _OPERATION_ID[shape] if _text(_path(record, k))),
        (None, _OPERATION_ID[shape][0]))
    return ActivityRecord(
        index=index, shape=shape, raw=record, time=when, operation=operation.lower(),
        status=normal_status(status_text), status_text=status_text,
        sub_status=_text(_path(record, sub_key)), resource_id=resource_id,
        correlation_id=_text(_path(record, correlation_key)), operation_id=operation_id,
        event_id=_text(_path(record, event_key)), subscription=subscription,
        source_ip=address, principal=principal_from_claims(claims, caller, evidence),
        properties=properties, operation_id_field=operation_id_field,
    )


def _subscription_text(value: Any) -> str | None:
    text = _text(value)
    return text.lower() if text else None


def _request_body(record: ActivityRecord) -> dict[str, Any]:
    for key in ("requestbody", "requestBody", "RequestBody"):
        body = _json_object(record.properties.get(key))
        if body is not None:
            return body
    return {}


def _operation_key(record: ActivityRecord) -> tuple[str, ...]:
    group = record.correlation_id or record.operation_id or record.event_id or str(
        record.index)
    return (record.subscription or "", group.lower(),
            canonical(record.resource_id or ""), record.operation)


def events_from_records(records: Iterable[ActivityRecord], location: str
                        ) -> tuple[list[tuple[CreationEvent, dict[str, Any]]],
                                   list[RecordError]]:
    """Join the records of each image operation and return one event per operation
    that finished, with the record that finished it, and the records that could
    not be read."""
    grouped: dict[tuple[str, ...], list[ActivityRecord]] = {}
    for record in records:
        if operations.lookup(record.operation) is not None:
            grouped.setdefault(_operation_key(record), []).append(record)

    found: list[tuple[CreationEvent, dict[str, Any]]] = []
    problems: list[RecordError] = []
    for key, group in grouped.items():
        finals = [r for r in group if r.final]
        if not finals:
            # Started or Accepted so far; the final record comes in a later read.
            continue
        final = max(finals, key=lambda r: (r.time, r.index))
        try:
            events = _events(final, group, key, location)
        except RecordError as error:
            problems.append(error)
            continue
        found.extend((event, final.raw) for event in events)
    return found, problems


def _event_id(final: ActivityRecord, base_key: str) -> tuple[str, str]:
    """Return the id that names an operation's event, with the field it came from:
    the event data id, else the operation id, else the correlation id, else the
    event's key."""
    fields = _FIELDS[final.shape]
    for value, name in ((final.event_id, fields[6]),
                        (final.operation_id, final.operation_id_field),
                        (final.correlation_id, fields[5])):
        if value:
            return value, name
    return base_key, "(key)"


def _events(final: ActivityRecord, group: list[ActivityRecord], key: tuple[str, ...],
            location: str) -> list[CreationEvent]:
    row = operations.lookup(final.operation)
    assert row is not None
    index = final.index
    resource_field = _FIELDS[final.shape][4]
    if final.subscription is None:
        raise RecordError(location, index, resource_field,
                          "no subscription in the resource id or the record")
    if final.resource_id is None:
        raise RecordError(location, index, resource_field, "missing on an image operation")
    resource = canonical(final.resource_id)
    principal = final.principal
    address = final.source_ip
    # NOTE: only records in the same document are joined, so a final record whose
    # Started record sits in an earlier hourly blob keeps its own caller, or none.
    for earlier in sorted(group, key=lambda r: (r.time, r.index)):
        if principal.kind is PrincipalKind.UNKNOWN and earlier.principal.id != "unknown":
            principal = earlier.principal
        address = address or earlier.source_ip

    error_code = None
    if final.status != "succeeded":
        error_code = final.status_text or final.status
        if final.sub_status:
            error_code = f"{error_code}.{final.sub_status}"

    # The request body is logged on the Started record, not the final one.
    body = next((found for found in (_request_body(r) for r in [final, *group]) if found),
                {})
    targets: list[tuple[str | None, str | None, str | None]] = [(None, None, None)]
    registry = None
    source_image = _first_source(body, row.source)
    if row.target == "resource":
        expected = is_managed_image if row.kind == "managed-image" else is_gallery_version
        if not expected(resource):
            raise RecordError(location, index, resource_field,
                              f"expected a {row.kind} resource id, got {final.resource_id!r}")
        targets = [(resource, None, None)]
    elif row.target == "import":
        registry = registry_login_server(resource)
        if registry is None:
            raise RecordError(location, index, resource_field,
                              f"expected a registry resource id, got {final.resource_id!r}")
        tags = _import_tags(body)
        if tags:
            targets = [(None, repository, tag) for repository, tag in tags]
        source_image = _import_source(body)
    else:
        source_image = resource

    for name, value in (("target", targets[0][0]), ("source", source_image),
                        ("callerIpAddress", address)):
        limit = _MAX_TARGET if name == "target" else _MAX_TEXT
        if isinstance(value, str) and len(value) > limit:
            raise RecordError(location, index, name,
                              f"value of {len(value)} characters is longer than {limit}")
    # The key shows the first 160 characters of the operation's id. A longer id goes
    # whole into the hash, so that two ids that share those characters stay apart.
    hashed = key[2:] if len(key[1]) <= 160 else key[1:]
    digest = hashlib.sha256("|".join(hashed).encode()).hexdigest()[:16]
    base_key = f"{SOURCE}:{key[0]}:{key[1][:160]}:{digest}"
    event_id, id_field = _event_id(final, base_key)
    if len(event_id) > MAX_EVENT_TEXT["event_id"]:
        # A cut id could name two operations alike, so the record is kept out.
        raise RecordError(location, index, id_field,
                          f"value of {len(event_id)} characters is longer than "
                          f"{MAX_EVENT_TEXT['event_id']}")
    origin = RecordOrigin(location=location, index=index, shape=f"azure-{final.shape}")
    events = []
    for position, (target, repository, tag) in enumerate(targets):
        events.append(CreationEvent(
            source=SOURCE,
            key=base_key if len(targets) == 1 else f"{base_key}#{position}",
            event_id=event_id,
            time=final.time,
            action=final.operation,
            effect=row.effect,
            platform="azure",
            account=final.subscription,
            region=SCOPE_REGION,
            principal=principal,
            source_ip=address,
            target=target,
            registry=registry,
            repository=repository,
            tag=tag,
            source_image=source_image,
            error_code=error_code[:256] if error_code else None,
            origin=origin,
        ))
    return events


def _first_source(body: dict[str, Any], paths: tuple[str, ...]) -> str | None:
    for path in paths:
        value = _path(body, path)
        if isinstance(value, str) and value.strip():
            return canonical(value) if value.strip().startswith("/") else value.strip()
    return None


def _import_tags(body: dict[str, Any]) -> list[tuple[str, str]]:
    """Return the (repository, tag) pairs an importImage request writes."""
    found = []
    tags = body.get("targetTags")
    for item in tags if isinstance(tags, list) else []:
        if isinstance(item, str) and ":" in item:
            repository, tag = item.rsplit(":", 1)
            if repository and tag:
                found.append((repository.lower(), tag))
    return found


def _import_source(body: dict[str, Any]) -> str | None:
    source = body.get("source")
    if not isinstance(source, dict):
        return None
    image = source.get("sourceImage")
    origin = source.get("registryUri") or source.get("resourceId")
    if isinstance(image, str) and isinstance(origin, str):
        return f"{origin.strip('/')}/{image}"
    return image if isinstance(image, str) else None
