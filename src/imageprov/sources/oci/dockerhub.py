"""Docker Hub webhook payloads: one push of a tag, as Docker Hub POSTs it.

A payload has `push_data` {`pushed_at` (Unix seconds), `pusher` (Docker ID),
`tag`} and `repository` {`repo_name`, `namespace`, `name`, ...}. It carries no
client address, no digest, no event id and no signature, so:

- the event names the tag and not the digest, and `correlate` joins it to the
  image the tag points at only when it is the tag's latest push;
- its key is a hash of repository, tag, pusher and time, so a redelivery of the
  same payload is stored once;
- `callback_url` is a capability URL that confirms the delivery and is never
  stored.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from imageprov.errors import RecordError
from imageprov.model import (
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
from imageprov.sources.compression import decompress
from imageprov.sources.fields import record_json
from imageprov.sources.oci import event_table

SOURCE = event_table.DOCKERHUB
PLATFORM = "oci"
REGISTRY = "docker.io"
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_REPOSITORY = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$")


def recognises(head: bytes) -> bool:
    keys = json_head.scan(head).keys
    return head.startswith(b"{") and b'"push_data"' in keys and b'"repository"' in keys


def event_from_payload(payload: Any, origin: RecordOrigin) -> CreationEvent:
    """Return the push event of one webhook payload.

    Raises:
        RecordError: a field the event needs is missing or invalid.
    """
    location, index = origin.location, origin.index
    if not isinstance(payload, dict):
        raise RecordError(location, index, "(payload)", "expected an object")
    push = payload.get("push_data")
    repository = payload.get("repository")
    if not isinstance(push, dict):
        raise RecordError(location, index, "push_data", "missing or not an object")
    if not isinstance(repository, dict):
        raise RecordError(location, index, "repository", "missing or not an object")
    name = repository.get("repo_name")
    if not isinstance(name, str) or not _REPOSITORY.match(name) or len(name) > 256:
        raise RecordError(location, index, "repository.repo_name",
                          f"expected a repository name, got {name!r:.100}")
    if "/" not in name:
        # Official images live under library/ on the registry.
        name = f"library/{name}"
    tag = push.get("tag")
    if not isinstance(tag, str) or not _TAG.match(tag):
        raise RecordError(location, index, "push_data.tag",
                          f"expected a tag, got {tag!r:.140}")
    pusher = push.get("pusher")
    if not isinstance(pusher, str) or not pusher or len(pusher) > 256:
        raise RecordError(location, index, "push_data.pusher",
                          f"expected a Docker ID, got {pusher!r:.100}")
    pushed_at = push.get("pushed_at")
    if not isinstance(pushed_at, int | float) or isinstance(pushed_at, bool):
        raise RecordError(location, index, "push_data.pushed_at",
                          f"expected Unix seconds, got {pushed_at!r:.40}")
    try:
        time = datetime.fromtimestamp(pushed_at, UTC)
    except (OverflowError, OSError, ValueError):
        raise RecordError(location, index, "push_data.pushed_at",
                          f"time {pushed_at!r} is out of range") from None
    identity = f"{name}:{tag}:{pusher}:{pushed_at}"
    event_id = hashlib.sha256(identity.encode()).hexdigest()[:32]
    return CreationEvent(
        source=SOURCE,
        key=f"{SOURCE}:{REGISTRY}:{event_id}",
        event_id=event_id,
        time=time,
        action="dockerhub:push",
        effect=event_table.BY_KEY[(SOURCE, "push")].effect,
        platform=PLATFORM,
        account=REGISTRY,
        region="",
        principal=Principal(kind=PrincipalKind.USER, id=pusher, account=REGISTRY,
                            native_type="docker-id"),
        registry=REGISTRY,
        repository=name,
        tag=tag,
        origin=origin,
    )


def read(data: bytes, location: str, fallback_account: str | None = None) -> LogDocument:
    """Read one webhook payload, or one per line."""
    document = LogDocument(location=location, source=SOURCE, platform=PLATFORM)
    try:
        text = decompress(data)
        try:
            payloads = [orjson.loads(text)]
        except orjson.JSONDecodeError:
            payloads = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    except (ValueError, EOFError) as error:
        document.problems.append(RecordProblem(location, -1, "(file)", f"not JSON: {error}"))
        return document
    document.shapes.add("dockerhub-webhook")
    for index, payload in enumerate(payloads):
        document.records += 1
        origin = RecordOrigin(location=location, index=index, shape="dockerhub-webhook")
        try:
            event = event_from_payload(payload, origin)
        except RecordError as error:
            document.problems.append(error.problem)
            continue
        document.events.append(event)
        kept = {key: value for key, value in payload.items() if key != "callback_url"}
        document.raw[event.key] = record_json(kept)
    return document


FORMAT = LogFormat(name="dockerhub-webhook", platform=PLATFORM, recognises=recognises,
                   read=read)
