"""Read Azure Activity Log documents in the containers they are delivered in.

- a storage export blob (`insights-activity-logs/resourceId=.../PT1H.json`): one
  record per line, JSON Lines, since November 2018;
- an Event Hub message body, or an older storage blob, `{"records": [...]}`;
- an "Activity Logs - List" response `{"value": [...], "nextLink": ...}`, or one
  EventData object, in camelCase or as the Python SDK serialises it;
- rows of the Log Analytics `AzureActivity` table exported as a JSON array or
  JSON Lines, or a query API response `{"tables": [{"columns", "rows"}]}`.

Every record with a time and an operation name is counted, and its time is added to
the span of its subscription. A record that cannot be read becomes a problem with
the file, the record index and the field, and every other record is still read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

try:
    # simdjson parses without building Python objects: an optional accelerator of
    # the same result.
    import simdjson
except ImportError:  # pragma: no cover - exercised only where the wheel is missing
    simdjson = None

from imageprov.errors import RecordError
from imageprov.sources.fields import is_utc_second, record_json
from imageprov.model import LogDocument, RecordProblem
from imageprov.sources import LogFormat
from imageprov.sources import json_head
from imageprov.sources.azure.operations import BY_OPERATION
from imageprov.sources.azure.activity import (
    SCOPE_REGION,
    SOURCE,
    ActivityRecord,
    events_from_records,
    normalise,
    survey,
)
from imageprov.sources.compression import document_text


def read_document(data: bytes, location: str,
                  fallback_account: str | None = None) -> LogDocument:
    """Read one Activity Log file or message; nothing raises for bad content."""
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
        reader.document(document)
    reader.finish()
    return result


class _Reader:
    def __init__(self, result: LogDocument, fallback_account: str | None) -> None:
        self.result = result
        self.fallback_account = fallback_account
        self.index = 0
        self.line: int | None = None
        self.records: list[ActivityRecord] = []

    def lines(self, text: bytes, whole_error: Exception) -> None:
        numbered = [(number, line) for number, line in enumerate(text.split(b"\n"), start=1)
                    if line.strip()]
        if self._lines_at_once(numbered):
            return
        parsed_any = False
        bad: list[RecordProblem] = []
        for number, line in numbered:
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

    def _lines_at_once(self, numbered: list[tuple[int, bytes]]) -> bool:
        """Read JSON Lines as one JSON array, which parses in one call; return False,
        having read nothing, unless every line is exactly one JSON object.

        With simdjson, records are parsed without building Python objects, and only
        those that `_count_export_record` does not count are decoded whole.
        """
        if len(numbered) < 2:
            return False
        joined = b"[" + b",".join(line for _, line in numbered) + b"]"
        lazy = simdjson is not None
        try:
            values = simdjson.Parser().parse(joined) if lazy else orjson.loads(joined)
        except (orjson.JSONDecodeError, ValueError, RuntimeError):
            # Invalid JSON, or a number simdjson cannot hold (beyond 64 bits).
            return False
        kind = simdjson.Object if lazy else dict
        # A line such as `1,2` parses as two items, and `[1` with `2]` as one list,
        # so the items stand for the lines only when they match one to one.
        if len(values) != len(numbered) or not all(isinstance(v, kind) for v in values):
            return False
        self.result.shapes.add("json-lines")
        # Looking for a key in the bytes is much faster than in a simdjson object,
        # and a false match only sends a record the slow way.
        mixed = lazy and any(marker in joined for marker in _OTHER_SHAPE_MARKERS)
        for (number, line), value in zip(numbered, values, strict=True):
            self.line = number
            if lazy:
                other = mixed and any(marker in line for marker in _OTHER_SHAPE_MARKERS)
                if not other and self._count_export_record(value, check_shape=False):
                    self.index += 1
                    continue
                value = orjson.loads(value.mini)
            self.document(value, top=False)
        return True

    def document(self, value: Any, top: bool = True) -> None:
        if isinstance(value, list):
            if top:
                self.result.shapes.add("json-array")
            for item in value:
                self.record(item)
        elif isinstance(value, dict) and isinstance(value.get("records"), list):
            self.result.shapes.add("event-hub-records")
            for item in value["records"]:
                self.record(item)
        elif isinstance(value, dict) and isinstance(value.get("value"), list):
            self.result.shapes.add("activity-logs-list")
            for item in value["value"]:
                self.record(item)
        elif isinstance(value, dict) and isinstance(value.get("tables"), list):
            self.result.shapes.add("log-analytics-query")
            for item in table_rows(value["tables"]):
                self.record(item)
        else:
            self.record(value)

    def record(self, value: Any) -> None:
        index = self.index
        self.index += 1
        if not isinstance(value, dict):
            self._problem(index, "(record)",
                          f"expected a JSON object, got {type(value).__name__}")
            return
        if self._count_export_record(value):
            return
        location = self.result.location
        try:
            shape, time, subscription, names_image = survey(value, index, location,
                                                            self.fallback_account)
            if names_image:
                self.records.append(normalise(value, index, location,
                                              self.fallback_account))
        except RecordError as error:
            self._problem(index, error.problem.field, error.problem.detail)
            return
        self.result.shapes.add(f"azure-{shape}")
        self._count(time.strftime("%Y-%m-%dT%H:%M:%SZ"), subscription)

    def _count_export_record(self, value: Any, check_shape: bool = True) -> bool:
        """Count an export-shape record that names no image, as `survey` would, and
        return True; return False for any other record, which `record` reads.

        Nearly every record of an export blob is of this kind, so it is counted
        here without building the record's fields. `value` is a dict, or a simdjson
        object whose keys the caller has checked against `_OTHER_SHAPES`.
        """
        when = value.get("time")
        operation = value.get("operationName")
        if (type(when) is not str or type(operation) is not str
                or len(when) < 20 or when[-1] != "Z" or when[10] != "T"):
            return False
        name = operation.strip().lower()
        if not name or name in BY_OPERATION or (check_shape and
                                                _OTHER_SHAPES & value.keys()):
            return False
        if not is_utc_second(when):
            return False
        resource = value.get("resourceId")
        subscription = None
        if type(resource) is str and resource[:15].lower() == "/subscriptions/":
            end = resource.find("/", 15)
            subscription = (resource[15:end] if end > 0 else resource[15:]).lower()
        if not subscription:
            return False
        self.result.shapes.add("azure-export")
        self._count(when[:19] + "Z", subscription)
        return True

    def _count(self, when: str, subscription: str | None) -> None:
        self.result.records += 1
        key = (subscription or "unknown", SCOPE_REGION)
        span = self.result.spans.get(key)
        if span is None:
            self.result.spans[key] = [when, when]
        elif when < span[0]:
            span[0] = when
        elif when > span[1]:
            span[1] = when

    def _problem(self, index: int, field_name: str, detail: str) -> None:
        if self.line is not None:
            detail = f"line {self.line}: {detail}"
        self.result.problems.append(
            RecordProblem(self.result.location, index, field_name, detail))

    def finish(self) -> None:
        events, problems = events_from_records(self.records, self.result.location)
        for error in problems:
            self.result.problems.append(error.problem)
        for event, raw in events:
            self.result.events.append(event)
            self.result.raw[event.key] = record_json(raw)


# Keys that make a record one of the other shapes (see `activity.shape_of`).
_OTHER_SHAPES = frozenset({"TimeGenerated", "OperationNameValue", "event_timestamp",
                           "operation_name", "eventTimestamp"})
_OTHER_SHAPE_MARKERS = tuple(f'"{key}"'.encode() for key in sorted(_OTHER_SHAPES))


def table_rows(tables: list[Any]) -> Iterator[Any]:
    """Yield the rows of a Log Analytics query response as objects by column name."""
    for table in tables:
        if not isinstance(table, dict):
            yield table
            continue
        columns = [c.get("name") if isinstance(c, dict) else None
                   for c in table.get("columns") or []]
        for row in table.get("rows") or []:
            if isinstance(row, list) and len(row) == len(columns):
                yield {name: cell for name, cell in zip(columns, row, strict=True)
                       if isinstance(name, str)}
            else:
                yield row


_MARKERS = (b'"operationName"', b'"operation_name"', b'"OperationNameValue"')
# Keys of other clouds' records that may sit near an `operationName`.
_FOREIGN = (b'"eventSource"', b'"eventVersion"', b'"protoPayload"', b'"logName"')


def recognises(head: bytes) -> bool:
    """Say whether a document's first bytes look like Activity Log records.

    Keys are looked for among the keys and the column names of a query response
    alone, so that a tag or a resource name that spells one decides nothing.
    """
    # ACR's reader imports this module's table reader, so it is imported here.
    from imageprov.sources.azure import acr_documents

    found = json_head.scan(head)
    keys = found.keys + found.columns
    if any(marker in keys for marker in _FOREIGN):
        return False
    if acr_documents.MARKER_VALUES.search(found.pairs) or b'"LoginServer"' in keys:
        return False
    return any(marker in keys for marker in _MARKERS)


FORMAT = LogFormat("azure-activity", "azure", recognises, read_document)
