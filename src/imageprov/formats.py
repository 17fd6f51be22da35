"""The audit-log formats imageprov reads, and the choice of one for a document.

A location's configuration may name its format; otherwise each format is asked in
turn whether it recognises the document's first bytes. CloudTrail comes last and
reads whatever no other format claims, since it also recognises the notices and
digest files that sit beside trail files and reports unknown JSON as such. A
document that starts the way AWS writes CloudTrail, or whose first record has the
keys of a CloudTrail record, LookupEvents item or EventBridge event, is CloudTrail's
before any other format is asked. The other formats look for their markers among
the keys of records, not in string values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import BaseModel

from imageprov.model import (
    MAX_EVENT_TEXT,
    MAX_SPAN_ACCOUNT,
    MAX_SPAN_REGION,
    CreationEvent,
    LogDocument,
    RecordProblem,
    widen_span,
)
from imageprov.sources import LogFormat
from imageprov.sources.aws import trail_documents
from imageprov.sources.azure import acr_documents, activity_documents
from imageprov.sources.compression import emptied_gzip, head
from imageprov.sources import json_head
from imageprov.sources.gcp import audit_documents
from imageprov.sources.oci import dockerhub, evidence_documents, notifications

FALLBACK = trail_documents.FORMAT
FORMATS: tuple[LogFormat, ...] = (
    activity_documents.FORMAT,
    acr_documents.FORMAT,
    audit_documents.FORMAT,
    notifications.FORMAT,
    dockerhub.FORMAT,
    evidence_documents.FORMAT,
    FALLBACK,
)
BY_NAME = {item.name: item for item in FORMATS}


# The starts of a CloudTrail log file, of a record, of LookupEvents output or one of
# its items, and of an EventBridge event, as AWS writes them. Text further in comes
# from callers, such as an image's name or a session name, so markers that another
# format looks for there must not decide the format. Otherwise a CreateImage named
# "push_data" and described as "repository" would make its log file a Docker Hub
# payload, and the file's events would be lost.
_CLOUDTRAIL_START = re.compile(
    rb'\{\s*"(?:Records"\s*:\s*\[|eventVersion"\s*:|EventId"\s*:)'
    rb'|\{\s*"Events"\s*:\s*\[\s*(?:\]|\{\s*"EventId"\s*:)'
    rb'|\{\s*"version"\s*:\s*"0"\s*,\s*"id"\s*:\s*"[^"\\]*"\s*,'
    rb'\s*"detail-type"\s*:\s*"AWS [^"\\]* via CloudTrail"')


# The key sets that only CloudTrail's shapes have at a record place: a record, an
# item of LookupEvents output, and an EventBridge event, which the CloudTrail
# reader reports as a notice unless it carries a CloudTrail record. Keys at those
# places are written by AWS, not taken from a request, so text that a caller chose
# cannot pass for them.
_RECORD_KEYS = (frozenset({b'"eventVersion"', b'"eventSource"', b'"eventName"'}),
                frozenset({b'"CloudTrailEvent"'}),
                frozenset({b'"detail-type"', b'"source"'}))


def _record_keys_show_cloudtrail(start: bytes) -> bool:
    """Say whether an object at a record place in `start` has the keys of one of
    CloudTrail's shapes, in whatever order its keys were written."""
    return any(shape_keys <= found for found in json_head.scan(start).records
               for shape_keys in _RECORD_KEYS)


def choose(data: bytes, name: str | None = None) -> LogFormat:
    """Return the named format, or the one that recognises the document."""
    if name is not None:
        return BY_NAME[name]
    start = head(data)
    if _CLOUDTRAIL_START.match(start) or _record_keys_show_cloudtrail(start):
        return FALLBACK
    for item in FORMATS:
        if item is not FALLBACK and item.recognises(start):
            return item
    return FALLBACK


def read(data: bytes, location: str, fallback_account: str | None = None,
         name: str | None = None) -> LogDocument:
    """Read one document with its format; an unknown format name is a problem of
    the file, not an error."""
    try:
        chosen = choose(data, name)
    except KeyError:
        return _unknown_format(location, name)
    if emptied_gzip(data, location):
        return _emptied(location, chosen)
    return _checked(chosen.read(data, location, fallback_account), data, chosen, name)


def read_many(
    documents: Sequence[tuple[bytes, str, str | None, str | None]],
) -> list[LogDocument]:
    """Read each (data, location, fallback account, format name) as `read` reads it.

    Neighbours in one format that reads several documents at once are read by it
    together.
    """
    results: list[LogDocument] = []
    start = 0
    while start < len(documents):
        data, location, fallback_account, name = documents[start]
        try:
            chosen = choose(data, name)
        except KeyError:
            results.append(_unknown_format(location, name))
            start += 1
            continue
        if emptied_gzip(data, location):
            results.append(_emptied(location, chosen))
            start += 1
            continue
        end = start + 1
        if chosen.read_many is not None:
            while end < len(documents) and _same_format(documents[end], chosen):
                end += 1
            read = chosen.read_many([(item[0], item[1], item[2])
                                     for item in documents[start:end]])
        else:
            read = [chosen.read(data, location, fallback_account)]
        results.extend(_checked(document, item[0], chosen, item[3])
                       for document, item in zip(read, documents[start:end], strict=True))
        start = end
    return results


def _same_format(document: tuple[bytes, str, str | None, str | None],
                 chosen: LogFormat) -> bool:
    if emptied_gzip(document[0], document[1]):
        return False
    try:
        return choose(document[0], document[3]) is chosen
    except KeyError:
        return False


def _emptied(location: str, chosen: LogFormat) -> LogDocument:
    document = LogDocument(location=location, source=chosen.name, platform=chosen.platform)
    document.problems.append(RecordProblem(
        location, -1, "(file)",
        "the file is empty where gzip data was expected: a truncated upload or an "
        "emptied copy"))
    return document


def _unknown_format(location: str, name: str | None) -> LogDocument:
    document = LogDocument(location=location, source=name or "", platform="")
    document.problems.append(RecordProblem(
        location, -1, "(file)",
        f"unknown log format {name!r}; known: {', '.join(sorted(BY_NAME))}"))
    return document


def _checked(document: LogDocument, data: bytes, chosen: LogFormat,
             name: str | None) -> LogDocument:
    """Return `document` made storable, or a quarantined file in its place when the
    format named for it found nothing and the content looks like another format."""
    document = storable(document)
    if name is not None and not document.records and not document.events:
        # A file read in the wrong format yields nothing, and one marked as read is
        # never read again, so such a file is quarantined instead.
        location = document.location
        detected = choose(data)
        if detected is not chosen and detected.recognises(head(data)):
            misread = LogDocument(location=location, source=chosen.name,
                                  platform=chosen.platform)
            misread.problems.append(RecordProblem(
                location, -1, "(file)",
                f"no {chosen.name} record found, and the content looks like "
                f"{detected.name}: check the format named for it"))
            return misread
    return document


# PostgreSQL text cannot hold this character, so a value with it cannot be stored.
_NUL = "\x00"


def storable(document: LogDocument) -> LogDocument:
    """Quarantine the events of `document` that contain a NUL character or a text
    longer than the store keeps, in place.

    Either value fails the whole batch on PostgreSQL. The record is kept out, with
    the field named, and the rest of the file is stored. A NUL in the account or
    region of a time span becomes U+FFFD, and a value longer than its column is
    cut, since spans record no record index.
    """
    kept: list[CreationEvent] = []
    for event in document.events:
        overlong = _overlong_field(event)
        if overlong is not None:
            field, length = overlong
            document.raw.pop(event.key, None)
            document.problems.append(RecordProblem(
                document.location, event.origin.index, field,
                f"the event's {field} is {length} characters long, more than the "
                f"{MAX_EVENT_TEXT[field]} the database stores"))
            continue
        # Every field is checked, not only the raw record: an event also takes
        # values from an envelope or from an earlier record of its operation.
        raw = document.raw.get(event.key)
        value = _nul_field(event.model_dump(mode="json")) if _holds_nul(event) else None
        if value is None:
            kept.append(event)
            continue
        # The field is named as in the record, and the event's field in the detail.
        field = (_nul_field(orjson.loads(raw))
                 if raw is not None and b"\\u0000" in raw else None)
        document.raw.pop(event.key, None)
        document.problems.append(RecordProblem(
            document.location, event.origin.index, field or value,
            f"the event's {value} contains a NUL character (U+0000), which the "
            "database cannot store"))
    document.events = kept
    if any(_storable_scope(scope) != scope for scope in document.spans):
        document.spans = _storable_spans(document.spans)
    return document


def _storable_scope(scope: tuple[str, str]) -> tuple[str, str]:
    """Return an (account, region) key the store can hold: a NUL becomes U+FFFD and
    a value too long for its column is cut. Readers quarantine the records whose
    values are too long where they can name them, and this covers every format."""
    account, region = scope
    return (account.replace(_NUL, "\ufffd")[:MAX_SPAN_ACCOUNT],
            region.replace(_NUL, "\ufffd")[:MAX_SPAN_REGION])


def _storable_spans(spans: dict[tuple[str, str], list[str]]
                    ) -> dict[tuple[str, str], list[str]]:
    """Key `spans` by storable scopes, joining spans whose keys become equal."""
    joined: dict[tuple[str, str], list[str]] = {}
    for scope, (first, last) in spans.items():
        widen_span(joined, _storable_scope(scope), first, last)
    return joined


def _overlong_field(event: CreationEvent) -> tuple[str, int] | None:
    """Return the first text field of `event` longer than the store keeps, with its
    length, or None."""
    for field, limit in MAX_EVENT_TEXT.items():
        value = event.principal.id if field == "principal.id" else getattr(event, field)
        if value is not None and len(value) > limit:
            return field, len(value)
    return None


def _holds_nul(value: Any) -> bool:
    """Say whether any string or bytes value in a model's fields contains a NUL.

    This walks the fields themselves: serialising each event to JSON to search it
    cost about nine microseconds per event, more than the rest of the check.
    """
    if isinstance(value, str):
        return _NUL in value
    if isinstance(value, BaseModel):
        return any(_holds_nul(item) for item in value.__dict__.values())
    if isinstance(value, (tuple, list)):
        return any(_holds_nul(item) for item in value)
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, bytes):
        return b"\x00" in value
    return False


def _nul_field(value: Any, path: str = "") -> str | None:
    """Return the path of the first string under `value` that contains a NUL, or None."""
    if isinstance(value, str):
        return (path or "(value)") if _NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _nul_field(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for number, item in enumerate(value):
            found = _nul_field(item, f"{path}[{number}]")
            if found is not None:
                return found
    return None
