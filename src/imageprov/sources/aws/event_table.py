"""The CloudTrail image events, and the field where each keeps the image it names.

One row per (eventSource, eventName). `eventName` alone is not unique: AppStream also
emits `CreateImage`, so rows are keyed on both. Paths are dotted keys into the record;
`[]` walks every item of a list. EC2 records use the Query protocol's lowerCamel names
with lists wrapped as `{"items": [...]}`; ECR records use the JSON API member names.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from imageprov.model import EventEffect


@dataclass(frozen=True)
class EventRow:
    """How to read one kind of image event.

    `target` is the path of the image id or digest the event acts on. For creators it
    is in `responseElements`, because `requestParameters.imageId` of the other calls
    names an image that already exists.
    """

    event_source: str
    event_name: str
    effect: EventEffect
    target: str
    registry: str | None = None
    repository: str | None = None
    tag: str | None = None
    source_image: str | None = None
    source_region: str | None = None


EC2 = "ec2.amazonaws.com"
ECR = "ecr.amazonaws.com"
ECR_PUBLIC = "ecr-public.amazonaws.com"

ROWS: tuple[EventRow, ...] = (
    EventRow(EC2, "CreateImage", EventEffect.CREATE, "responseElements.imageId"),
    EventRow(EC2, "RegisterImage", EventEffect.CREATE, "responseElements.imageId"),
    EventRow(
        EC2,
        "CopyImage",
        EventEffect.COPY,
        "responseElements.imageId",
        source_image="requestParameters.sourceImageId",
        source_region="requestParameters.sourceRegion",
    ),
    EventRow(EC2, "CreateRestoreImageTask", EventEffect.CREATE, "responseElements.imageId"),
    # ImportImage is asynchronous: the record carries only the import task id, and the
    # AMI it produces is named after that task by default.
    EventRow(EC2, "ImportImage", EventEffect.IMPORT, "responseElements.importTaskId"),
    # The effect of ModifyImageAttribute depends on its launch permissions; the
    # extractor decides between share, unshare and modify.
    EventRow(EC2, "ModifyImageAttribute", EventEffect.MODIFY, "requestParameters.imageId"),
    EventRow(EC2, "ResetImageAttribute", EventEffect.MODIFY, "requestParameters.imageId"),
    EventRow(EC2, "DeregisterImage", EventEffect.DELETE, "requestParameters.imageId"),
    EventRow(EC2, "EnableImageDeprecation", EventEffect.MODIFY, "requestParameters.imageId"),
    EventRow(EC2, "DisableImageDeprecation", EventEffect.MODIFY, "requestParameters.imageId"),
    EventRow(EC2, "EnableImage", EventEffect.MODIFY, "requestParameters.imageId"),
    EventRow(EC2, "DisableImage", EventEffect.MODIFY, "requestParameters.imageId"),
    EventRow(
        EC2, "RestoreImageFromRecycleBin", EventEffect.MODIFY, "requestParameters.imageId"
    ),
    EventRow(
        ECR,
        "PutImage",
        EventEffect.PUSH,
        "responseElements.image.imageId.imageDigest",
        registry="requestParameters.registryId",
        repository="requestParameters.repositoryName",
        tag="requestParameters.imageTag",
    ),
    EventRow(
        ECR,
        "BatchDeleteImage",
        EventEffect.DELETE,
        "responseElements.imageIds[].imageDigest",
        registry="requestParameters.registryId",
        repository="requestParameters.repositoryName",
    ),
    # Lifecycle expiry is a service event, not a BatchDeleteImage call.
    EventRow(
        ECR,
        "PolicyExecutionEvent",
        EventEffect.DELETE,
        "serviceEventDetails.lifecycleEventImageActions[].lifecycleEventImage.digest",
        repository="serviceEventDetails.repositoryName",
    ),
    EventRow(
        ECR_PUBLIC,
        "PutImage",
        EventEffect.PUSH,
        "responseElements.image.imageId.imageDigest",
        registry="requestParameters.registryId",
        repository="requestParameters.repositoryName",
        tag="requestParameters.imageTag",
    ),
)

BY_KEY: dict[tuple[str, str], EventRow] = {
    (row.event_source, row.event_name): row for row in ROWS
}

# Every event name in the table, for cheap filtering before a record is read fully.
EVENT_NAMES: frozenset[str] = frozenset(row.event_name for row in ROWS)


def lookup(event_source: Any, event_name: Any) -> EventRow | None:
    """Return the row for an event, or None when the event names no image."""
    if not isinstance(event_source, str) or not isinstance(event_name, str):
        return None
    return BY_KEY.get((event_source, event_name))


def values_at(record: Any, path: str | None) -> list[Any]:
    """Return every value found at a dotted path, walking lists marked with `[]`."""
    if path is None:
        return []
    nodes = [record]
    for key, walk_list in _steps(path)[0]:
        found = []
        for node in nodes:
            if not isinstance(node, dict):
                continue
            value = node.get(key)
            if walk_list:
                if isinstance(value, list):
                    found.extend(value)
            elif value is not None:
                found.append(value)
        nodes = found
    return nodes


def value_at(record: Any, path: str | None) -> Any:
    """Return the first value at a dotted path, or None."""
    if path is None:
        return None
    steps, walks_lists = _steps(path)
    if walks_lists:
        values = values_at(record, path)
        return values[0] if values else None
    # Without a list on the way there is at most one value: follow the keys.
    node = record
    for key, _ in steps:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


@functools.cache
def _steps(path: str) -> tuple[tuple[tuple[str, bool], ...], bool]:
    """Split a dotted path into (key, whether to walk a list there) steps, and
    return them with whether any step walks a list."""
    steps = tuple((part[:-2], True) if part.endswith("[]") else (part, False)
                  for part in path.split("."))
    return steps, any(walk_list for _, walk_list in steps)
