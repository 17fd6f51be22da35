"""Read Azure Container Registry events: pushes and deletes of images.

ACR data-plane pushes never reach the Activity Log. They are read here from:

- Event Grid deliveries, a JSON array of events in the Event Grid schema
  (`eventType`, `topic`, `eventTime`) or the CloudEvents 1.0 schema (`type`,
  `source`, `time`), types `Microsoft.ContainerRegistry.ImagePushed` and
  `ImageDeleted` (early examples write them without the prefix);
- ACR webhook bodies, one bare event object (`action`, `target`, `request`);
- rows of the `ContainerRegistryRepositoryEvents` resource log, exported from Log
  Analytics as a JSON array or JSON Lines, or as a query response with `tables`.

Event Grid and webhook events carry no client address, and current samples carry
no actor, so their pushes have an unknown principal. Repository events name the
login identity and the caller address. Helm chart events are counted and left out: they
are not images an inventory lists.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from imageprov.errors import RecordError
from imageprov.sources.fields import error_text, record_json
from imageprov.model import (
    MAX_EVENT_TEXT,
    CreationEvent,
    EventEffect,
    LogDocument,
    Principal,
    PrincipalKind,
    RecordOrigin,
    RecordProblem,
)
from imageprov.sources import LogFormat
from imageprov.sources import json_head
from imageprov.sources.azure.activity import SCOPE_REGION, parse_time
from imageprov.sources.azure.activity_documents import table_rows
from imageprov.sources.azure.principals import principal_from_login
from imageprov.sources.azure.resource_ids import registry_login_server, subscription_of
from imageprov.sources.compression import document_text

SOURCE = "acr-events"

_ACTIONS = {"push": EventEffect.PUSH, "delete": EventEffect.DELETE}
_EVENT_TYPES = {
    "microsoft.containerregistry.imagepushed": "push",
    "microsoft.containerregistry.imagedeleted": "delete",
    "imagepushed": "push",
    "imagedeleted": "delete",
}
_REPOSITORY_OPERATIONS = {"push": EventEffect.PUSH, "delete": EventEffect.DELETE,
                          "untag": None, "pull": None}
_MAX_TEXT = 256


def _storable_key(key: str) -> str:
    """Return `key`, or where it is longer than the store keeps, its start followed
    by the SHA-256 of the whole key, so that two long keys stay distinct."""
    limit = MAX_EVENT_TEXT["key"]
    if len(key) <= limit:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[:limit - len(digest) - 1]}#{digest}"


def read_document(data: bytes, location: str,
                  fallback_account: str | None = None) -> LogDocument:
    """Read one file of ACR events; nothing raises for bad content."""
    result = LogDocument(location=location, source=SOURCE, platform="azure")
    text = document_text(data, result)
    if text is None:
        return result
    reader = _Reader(result, fallback_account)
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as whole_error:
        reader.lines(text, whole_error)
    else:
        reader.document(document, top=True)
    return result


class _Reader:
    def __init__(self, result: LogDocument, fallback_account: str | None) -> None:
        self.result = result
        self.fallback_account = fallback_account.lower() if fallback_account else None
        self.index = 0
        self.line: int | None = None

    def lines(self, text: bytes, whole_error: Exception) -> None:
        parsed_any = False
        bad: list[RecordProblem] = []
        for number, line in enumerate(text.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                bad.append(RecordProblem(self.result.location, self.index, "(json)",
                                         f"line {number} is not valid JSON: {error}"))
                self.index += 1
                continue
            parsed_any = True
            self.line = number
            self.document(value, top=False)
        if not parsed_any:
            self.result.problems.append(RecordProblem(
                self.result.location, -1, "(file)",
                f"not valid JSON or JSON lines: {whole_error}"))
            return
        self.result.shapes.add("json-lines")
        self.result.problems.extend(bad)

    def document(self, value: Any, top: bool) -> None:
        if isinstance(value, list):
            if top:
                self.result.shapes.add("json-array")
            for item in value:
                self.record(item)
        elif isinstance(value, dict) and isinstance(value.get("tables"), list):
            self.result.shapes.add("log-analytics-query")
            for item in table_rows(value["tables"]):
                self.record(item)
        elif isinstance(value, dict) and isinstance(value.get("records"), list):
            self.result.shapes.add("event-hub-records")
            for item in value["records"]:
                self.record(item)
        else:
            self.record(value)

    def record(self, value: Any) -> None:
        index = self.index
        self.index += 1
        location = self.result.location
        try:
            if not isinstance(value, dict):
                raise RecordError(location, index, "(record)",
                                  f"expected a JSON object, got {type(value).__name__}")
            if "eventType" in value or "specversion" in value:
                event = self._grid_event(value, index)
            elif "OperationName" in value or "LoginServer" in value:
                event = self._repository_event(value, index)
            elif "action" in value and "target" in value:
                self.result.shapes.add("acr-webhook")
                event = self._notification(value, index, None, None, "acr-webhook")
            else:
                raise RecordError(location, index, "(record)",
                                  "not an Event Grid, CloudEvents, webhook or "
                                  "repository event")
        except RecordError as error:
            problem = error.problem
            detail = f"line {self.line}: {problem.detail}" if self.line else problem.detail
            self.result.problems.append(RecordProblem(location, index, problem.field, detail))
            return
        except (ValueError, TypeError) as error:
            self.result.problems.append(RecordProblem(
                location, index, "(record)", f"a field has the wrong type: {error_text(error)}"))
            return
        if event is not None:
            self.result.events.append(event)
            self.result.raw[event.key] = record_json(value)

    def _count(self, account: str, when: str) -> None:
        self.result.records += 1
        key = (account, SCOPE_REGION)
        span = self.result.spans.get(key)
        if span is None:
            self.result.spans[key] = [when, when]
        elif when < span[0]:
            span[0] = when
        elif when > span[1]:
            span[1] = when

    def _grid_event(self, value: dict[str, Any], index: int) -> CreationEvent | None:
        cloud_events = "specversion" in value
        self.result.shapes.add("cloudevents" if cloud_events else "event-grid")
        type_key, topic_key = ("type", "source") if cloud_events else ("eventType", "topic")
        event_type = value.get(type_key)
        if not isinstance(event_type, str) or not event_type:
            raise RecordError(self.result.location, index, type_key, "missing or not a string")
        data = value.get("data")
        if not isinstance(data, dict):
            raise RecordError(self.result.location, index, "data", "missing or not an object")
        topic = value.get(topic_key) if isinstance(value.get(topic_key), str) else None
        action = _EVENT_TYPES.get(event_type.lower())
        if action is None:
            # Chart events and other types: counted, not image events.
            when = parse_time(value.get("time" if cloud_events else "eventTime")
                              or data.get("timestamp"), self.result.location, index,
                              "time" if cloud_events else "eventTime")
            self._count(self._account(topic, None), when.strftime("%Y-%m-%dT%H:%M:%SZ"))
            return None
        return self._notification(data, index, topic, value.get("id"),
                                  "cloudevents" if cloud_events else "event-grid")

    def _account(self, resource_id: str | None, registry: str | None) -> str:
        return (subscription_of(resource_id) or self.fallback_account or registry
                or "unknown")

    def _notification(self, data: dict[str, Any], index: int, topic: str | None,
                      envelope_id: Any, shape: str) -> CreationEvent | None:
        """Build the event of a webhook body or of an Event Grid event's `data`."""
        location = self.result.location
        when = parse_time(data.get("timestamp"), location, index, "timestamp")
        target = data.get("target")
        if not isinstance(target, dict):
            raise RecordError(location, index, "target", "missing or not an object")
        request = data.get("request") if isinstance(data.get("request"), dict) else {}
        registry = _text(request.get("host")) or registry_login_server(topic)
        if registry is None:
            raise RecordError(location, index, "request.host",
                              "no registry: neither request.host nor a registry topic")
        registry = registry.lower()
        account = self._account(topic, registry)
        self._count(account, when.strftime("%Y-%m-%dT%H:%M:%SZ"))
        action = _text(data.get("action"))
        effect = _ACTIONS.get((action or "").lower())
        if effect is None:
            return None
        digest = _text(target.get("digest"))
        repository = _text(target.get("repository"))
        for field_name, text in (("target.digest", digest),
                                 ("target.repository", repository)):
            if text is None:
                raise RecordError(location, index, field_name, f"missing on a {action} event")
        event_id = _text(data.get("id")) or _text(envelope_id)
        if event_id is None:
            raise RecordError(location, index, "id", "missing")
        actor = data.get("actor") if isinstance(data.get("actor"), dict) else {}
        principal = (principal_from_login(actor.get("name")) if _text(actor.get("name"))
                     else Principal(kind=PrincipalKind.UNKNOWN, id="unknown"))
        address = _host_address(_text(request.get("addr")))
        return self._event(
            key=f"{SOURCE}:{registry}:{event_id}", event_id=event_id, id_field="id",
            when=when,
            action=f"acr:{action.lower()}", effect=effect, account=account,
            principal=principal, address=address,
            user_agent=_text(request.get("useragent")), registry=registry,
            repository=repository.lower(), digest=digest.lower(),
            tag=_text(target.get("tag")), error=None, index=index, shape=shape)

    def _repository_event(self, row: dict[str, Any], index: int) -> CreationEvent | None:
        """Build the event of a `ContainerRegistryRepositoryEvents` row.

        NOTE: the raw JSON of this category in a storage or Event Hub export is not
        documented. Rows are read with the Log Analytics column names, at the top
        level or under `properties`.
        """
        self.result.shapes.add("acr-repository-events")
        location = self.result.location
        fields = dict(row)
        if isinstance(row.get("properties"), dict):
            fields = {**row["properties"], **{k: v for k, v in row.items()
                                               if k != "properties"}}
        when = parse_time(fields.get("TimeGenerated") or fields.get("time"), location,
                          index, "TimeGenerated")
        resource_id = _text(fields.get("_ResourceId")) or _text(fields.get("resourceId"))
        registry = _text(fields.get("LoginServer")) or registry_login_server(resource_id)
        if registry is None:
            raise RecordError(location, index, "LoginServer", "missing")
        registry = registry.lower()
        account = self._account(resource_id, registry)
        self._count(account, when.strftime("%Y-%m-%dT%H:%M:%SZ"))
        operation = _text(fields.get("OperationName")) or _text(fields.get("operationName"))
        if operation is None:
            raise RecordError(location, index, "OperationName", "missing")
        effect = _REPOSITORY_OPERATIONS.get(operation.lower())
        if effect is None:
            return None
        digest = _text(fields.get("Digest"))
        repository = _text(fields.get("Repository"))
        for field_name, text in (("Digest", digest), ("Repository", repository)):
            if text is None:
                raise RecordError(location, index, field_name,
                                  f"missing on a {operation} event")
        result = (_text(fields.get("ResultDescription")) or "").strip()
        result_type = (_text(fields.get("ResultType")) or "").lower()
        # Microsoft's sample queries find failures by an HTTP 4xx or 5xx status in
        # ResultDescription. ResultType contains the outcome as text where it is set.
        failed = result[:1] in ("4", "5") or result_type in ("failed", "failure")
        correlation = _text(fields.get("CorrelationId")) or f"{when.isoformat()}"
        key_tail = f"{correlation}:{operation.lower()}:{digest.lower()}"
        return self._event(
            key=f"{SOURCE}:{registry}:{key_tail}", event_id=correlation,
            id_field="CorrelationId", when=when,
            action=f"acr:{operation.lower()}", effect=effect, account=account,
            principal=principal_from_login(fields.get("Identity")),
            address=_text(fields.get("CallerIpAddress")),
            user_agent=_text(fields.get("UserAgent")), registry=registry,
            repository=repository.lower(), digest=digest.lower(),
            tag=_text(fields.get("Tag")), error=(result or result_type) if failed else None,
            index=index, shape="acr-repository-events")

    def _event(self, *, key: str, event_id: str, id_field: str, when: Any, action: str,
               effect: EventEffect, account: str, principal: Principal,
               address: str | None, user_agent: str | None, registry: str,
               repository: str, digest: str, tag: str | None, error: str | None,
               index: int, shape: str) -> CreationEvent:
        for field_name, text in (("digest", digest), ("repository", repository),
                                 ("tag", tag), ("registry", registry),
                                 ("address", address)):
            if text is not None and len(text) > _MAX_TEXT:
                raise RecordError(self.result.location, index, field_name,
                                  f"value of {len(text)} characters is longer than "
                                  f"{_MAX_TEXT}")
        if len(event_id) > MAX_EVENT_TEXT["event_id"]:
            # A cut id could name two pushes alike, so the record is kept out.
            raise RecordError(self.result.location, index, id_field,
                              f"value of {len(event_id)} characters is longer than "
                              f"{MAX_EVENT_TEXT['event_id']}")
        return CreationEvent(
            source=SOURCE, key=_storable_key(key), event_id=event_id, time=when,
            action=action, effect=effect, platform="azure", account=account,
            region=SCOPE_REGION, principal=principal, source_ip=address,
            user_agent=user_agent, target=digest, registry=registry,
            repository=repository, tag=tag, error_code=error,
            origin=RecordOrigin(location=self.result.location, index=index, shape=shape))


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _host_address(value: str | None) -> str | None:
    """Return the address of `host:port` or `[v6]:port` text, as clients send it."""
    if value is None:
        return None
    if value.startswith("[") and "]" in value:
        return value[1:value.index("]")]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


# The values that name ACR events, under the keys that carry them: an Event Grid or
# CloudEvents type, a registry topic or resource id, and the category of repository
# events.
MARKER_VALUES = re.compile(
    rb'"(?:eventType|type)":"Microsoft\.ContainerRegistry\.'
    rb'|"(?:topic|source|_ResourceId|resourceId)":"[^"]*Microsoft\.ContainerRegistry/registries'
    rb'|"(?:category|type|name)":"ContainerRegistryRepositoryEvents"', re.IGNORECASE)
_AZURECR_HOST = re.compile(rb'"host":"[^"]*\.azurecr\.', re.IGNORECASE)
# Keys of other clouds' records.
_FOREIGN = (b'"eventSource"', b'"eventVersion"', b'"CloudTrailEvent"', b'"detail-type"',
            b'"protoPayload"', b'"logName"')


def recognises(head: bytes) -> bool:
    """Say whether a document's first bytes look like ACR events.

    Keys, and values under named keys, are looked for where records sit and among
    the column names of a query response alone, so that a tag, an image name or a
    description that spells one decides nothing.
    """
    found = json_head.scan(head)
    keys = found.keys + found.columns
    if any(marker in keys for marker in _FOREIGN):
        return False
    if b'"operationName"' in keys and b'"LoginServer"' not in keys:
        # An Activity Log record about a registry, such as importImage.
        return False
    if b'"LoginServer"' in keys or MARKER_VALUES.search(found.pairs):
        return True
    # A webhook body is one bare event, where a distribution notification wraps
    # its events in {"events": [...]}.
    return (b'"events"' not in keys and b'"action"' in keys and b'"target"' in keys
            and b'"request"' in keys and _AZURECR_HOST.search(found.pairs) is not None)


FORMAT = LogFormat("acr-events", "azure", recognises, read_document)
