"""Read Cloud Audit Logs entries from every shape they are exported in.

Shapes read for entries:

- a Cloud Storage sink object, one LogEntry per line, plain or gzip, under
  `cloudaudit.googleapis.com/activity/YYYY/MM/DD/` (hourly `S<n>` shards and late
  `A<n>:<unix-seconds>` appendix shards are files like any other);
- the JSON array `gcloud logging read --format=json` prints, or one bare LogEntry;
- a Pub/Sub push body `{"message": {"data": BASE64, ...}, "subscription"}`, one per
  file, one per line or in an array, and a pull reply `{"receivedMessages": [...]}`,
  where `data` is one LogEntry as JSON.

An entry seen twice in a document (same `logName` and `insertId`) is counted and
read once. Entries without an audit payload (`jsonPayload`, `textPayload`) are
counted as records but cover no audit scope. Other JSON (a Security Command Center
notification, for one) is reported with a notice.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from imageprov.errors import RecordError
from imageprov.sources.fields import (
    NOT_UTF8,
    error_text,
    is_utc_second,
    loads_tolerantly,
    record_json,
    undecodable_path,
)
from imageprov.model import LogDocument, RecordOrigin, RecordProblem
from imageprov.sources import LogFormat
from imageprov.sources import json_head
from imageprov.sources.compression import document_text
from imageprov.sources.gcp.audit_entries import (
    SOURCE,
    events_from_entry,
    method_of,
    parse_time,
    project_of,
    span_scope,
)

_ENTRY_KEYS = frozenset({"logName", "insertId", "protoPayload", "receiveTimestamp"})


def read_document(data: bytes, location: str,
                  fallback_account: str | None = None) -> LogDocument:
    """Read one file, object or message body of LogEntry JSON into a `LogDocument`.

    Nothing raises for bad content: an unreadable file or entry becomes an entry in
    `problems` that names the location, the entry index and the field.
    """
    result = LogDocument(location=location, source=SOURCE, platform="gcp")
    text = document_text(data, result)
    if text is None:
        return result
    reader = _Reader(result, fallback_account)
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as whole_error:
        # orjson rejects a number beyond a double and bytes that are not UTF-8,
        # which lose only the entry holding them.
        try:
            document = loads_tolerantly(text)
        except ValueError:
            reader.lines(text, whole_error)
        else:
            reader.tolerant = True
            reader.document(document, top=True)
    else:
        reader.document(document, top=True)
    reader.finish()
    return result


class _Reader:
    """Collects the entries of one document, then extracts their events.

    Events are extracted once every entry is known, because the last entry of an
    operation can come before its first in a file, and the first contains the request.
    """

    def __init__(self, result: LogDocument, fallback_account: str | None) -> None:
        self.result = result
        self.fallback_account = fallback_account
        self.entries: list[tuple[int, dict[str, Any], str]] = []
        self.index = 0
        self.seen: set[tuple[str, str]] = set()
        self.valid_seconds: set[str] = set()
        self.duplicates = 0
        # Set when the standard library parsed the document, which keeps bytes that
        # are not UTF-8 as lone surrogates to be found in each entry.
        self.tolerant = False

    def lines(self, text: bytes, whole_error: Exception) -> None:
        parsed_any = False
        bad: list[RecordProblem] = []
        for number, line in enumerate(text.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                try:
                    value = loads_tolerantly(line)
                    self.tolerant = True
                except ValueError:
                    bad.append(RecordProblem(self.result.location, self.index, "(json)",
                                             f"line {number} is not valid JSON: {error}"))
                    self.index += 1
                    continue
            parsed_any = True
            self.document(value, top=False, shape="json-lines")
        if not parsed_any:
            self.result.problems.append(RecordProblem(
                self.result.location, -1, "(file)",
                f"not valid JSON or JSON lines: {whole_error}"))
            return
        self.result.shapes.add("json-lines")
        self.result.problems.extend(bad)

    def document(self, value: Any, top: bool, shape: str = "json") -> None:
        if isinstance(value, list):
            if top:
                self.result.shapes.add("json-array")
            for item in value:
                self.document(item, top=False, shape="json-array")
            return
        if not isinstance(value, dict):
            self._problem("(entry)", f"expected a JSON object, got {type(value).__name__}")
            return
        if isinstance(value.get("message"), dict) and "data" in value["message"]:
            self.result.shapes.add("pubsub-push")
            self._message(value["message"], "message.data")
        elif isinstance(value.get("receivedMessages"), list):
            self.result.shapes.add("pubsub-pull")
            for item in value["receivedMessages"]:
                message = item.get("message") if isinstance(item, dict) else None
                self._message(message, "receivedMessages[].message.data")
        elif _ENTRY_KEYS.isdisjoint(value):
            self._notice("unknown-json", "JSON object that is not a LogEntry")
        else:
            self.result.shapes.add("log-entry")
            self._entry(value, shape)

    def _message(self, message: Any, field: str) -> None:
        data = message.get("data") if isinstance(message, dict) else None
        if not isinstance(data, str):
            self._problem(field, "missing or not a string")
            return
        try:
            entry = orjson.loads(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError) as error:
            self._problem(field, f"not base64 of a JSON LogEntry: {error}")
            return
        if not isinstance(entry, dict):
            self._problem(field, f"expected a LogEntry object, got {type(entry).__name__}")
            return
        self._entry(entry, "pubsub-push")

    def _entry(self, entry: dict[str, Any], shape: str) -> None:
        index = self.index
        self.index += 1
        location = self.result.location
        if self.tolerant:
            where = undecodable_path(entry)
            if where is not None:
                self._problem(where, NOT_UTF8, index)
                return
        stamp = self._stamp(entry.get("timestamp"))
        if stamp is None:
            try:
                when = parse_time(entry.get("timestamp"), location, index, "timestamp")
            except RecordError as error:
                self.result.problems.append(error.problem)
                return
            stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")

        log_name, insert_id = entry.get("logName"), entry.get("insertId")
        if not isinstance(log_name, str) or not log_name:
            self._problem("logName", "missing or not a string", index)
            return
        if isinstance(insert_id, str) and insert_id:
            if (log_name, insert_id) in self.seen:
                self.duplicates += 1
                self.result.records += 1
                return
            self.seen.add((log_name, insert_id))
        self.result.records += 1

        project = project_of(entry) or self.fallback_account or "unknown"
        scope = span_scope(entry, project)
        if scope is not None:
            span = self.result.spans.get(scope)
            if span is None:
                self.result.spans[scope] = [stamp, stamp]
            elif stamp < span[0]:
                span[0] = stamp
            elif stamp > span[1]:
                span[1] = stamp
        payload = entry.get("protoPayload")
        if isinstance(payload, dict) and method_of(payload) is not None:
            self.entries.append((index, entry, shape))

    def _stamp(self, value: Any) -> str | None:
        """Return a UTC `...Z` time to the second, or None for any other spelling.

        Most entries of a file share their second with another entry, so each
        second is checked once; other spellings go through `parse_time`.
        """
        if (not isinstance(value, str) or len(value) < 20 or value[-1] != "Z"
                or value[10] != "T" or value[19] not in ".Z"
                or not (len(value) == 20
                        or (value[20:-1].isascii() and value[20:-1].isdigit()))):
            return None
        second = value[:19]
        if second not in self.valid_seconds:
            if not is_utc_second(second):
                return None
            self.valid_seconds.add(second)
        return second + "Z"

    def finish(self) -> None:
        """Extract the events of the collected image entries."""
        first_requests: dict[str, Any] = {}
        for _, entry, _ in self.entries:
            operation = entry.get("operation")
            if isinstance(operation, dict) and operation.get("first") is True:
                request = entry["protoPayload"].get("request")
                if isinstance(operation.get("id"), str) and isinstance(request, dict):
                    first_requests[operation["id"]] = request
        for index, entry, shape in self.entries:
            operation = entry.get("operation")
            operation_id = operation.get("id") if isinstance(operation, dict) else None
            origin = RecordOrigin(location=self.result.location, index=index, shape=shape)
            try:
                events = events_from_entry(entry, origin,
                                           first_requests.get(operation_id or ""),
                                           self.fallback_account)
            except RecordError as error:
                self.result.problems.append(error.problem)
                continue
            except (ValueError, TypeError, AttributeError) as error:
                self.result.problems.append(RecordProblem(
                    self.result.location, index, "(entry)",
                    f"a field has the wrong type: {error_text(error)}"))
                continue
            for event in events:
                self.result.events.append(event)
                self.result.raw[event.key] = record_json(entry)
        if self.duplicates:
            self.result.notices.append(
                f"{self.duplicates} duplicate entries (same logName and insertId) read once")

    def _problem(self, field: str, detail: str, index: int | None = None) -> None:
        if index is None:
            index = self.index
            self.index += 1
        self.result.problems.append(RecordProblem(self.result.location, index, field,
                                                  detail))

    def _notice(self, shape: str, text: str) -> None:
        self.result.shapes.add(shape)
        if text not in self.result.notices:
            self.result.notices.append(text)


_MARKERS = (b'"protoPayload"', b'"logName"', b'"insertId"', b'"receiveTimestamp"',
            b'"receivedMessages"')
_CLOUDTRAIL = (b'"eventVersion"', b'"Records"', b'"CloudTrailEvent"', b'"detail-type"')


def recognises(head: bytes) -> bool:
    """Say whether a document's first bytes look like LogEntry JSON or a Pub/Sub body.

    A document that shows a CloudTrail key is never claimed. Keys are looked for
    among the keys of records alone, so that a label or an image name that spells
    one decides nothing.
    """
    keys = json_head.scan(head).keys
    if any(marker in keys for marker in _CLOUDTRAIL):
        return False
    if any(marker in keys for marker in _MARKERS):
        return True
    # A push body's base64 data can fill the first 4 KiB before `subscription`.
    return b'"message"' in keys and b'"data"' in keys


FORMAT = LogFormat("gcp-audit", "gcp", recognises, read_document)
