"""Registry notifications: the `{"events": [...]}` envelopes distribution POSTs.

A registry sends one envelope per POST, with `Content-Type`
`application/vnd.docker.distribution.events.v1+json` (distribution 2.8) or
`...events.v2+json` (its documentation); a saved file may hold one envelope, a
JSON array of envelopes, or one envelope per line.

- Only manifest events become image events: `push` and `delete`. Blob events
  (layers and configs, `mediaType: application/octet-stream` or a `/blobs/` URL),
  `mount` (always a blob) and `pull` (sent for every GET and HEAD of a manifest)
  are counted and left out. Registries of the Docker 1.7 era send manifests with
  `application/octet-stream` too, so a `/manifests/` URL decides first.
- `actor.name` is the authenticated user, `{}` when auth is off; `request.addr`
  is the client's `ip:port` as the registry saw it (a proxy's, behind one).
- The event `id` is the key: the registry redelivers an event with the same id
  after a failed POST, and the store keeps one copy.

The registry an event belongs to is the name the receiver was configured with
(`fallback_account`), else the `Host` the client used (`request.host`), else the
registry's own `source.addr`.
"""

from __future__ import annotations

import ipaddress
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
from imageprov.sources.compression import decompress
from imageprov.sources.fields import record_json
from imageprov.sources.oci import event_table

SOURCE = event_table.REGISTRY
PLATFORM = "oci"
CONTENT_TYPES = frozenset({
    "application/vnd.docker.distribution.events.v1+json",
    "application/vnd.docker.distribution.events.v2+json",
})
_MANIFEST_TYPES = frozenset({
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
})
_IGNORED_ACTIONS = frozenset({"pull", "mount"})
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_ENVELOPE = re.compile(rb'^\[?\s*\{\s*"events"\s*:')
_FRACTION = re.compile(r"(\.\d{6})\d+")
# Longest value kept per field, as the store's columns allow.
_LIMITS = {"id": 128, "target.repository": 256, "target.digest": 80, "actor.name": 512,
           "request.addr": 256, "request.host": 160}


def recognises(head: bytes) -> bool:
    return bool(_ENVELOPE.match(head))


def parse_rfc3339(value: Any, location: str, index: int, field: str) -> datetime:
    """Read an RFC 3339 time with up to nine fractional digits and any offset."""
    if not isinstance(value, str) or not value:
        raise RecordError(location, index, field, f"expected an RFC 3339 time, got {value!r}")
    text = _FRACTION.sub(r"\1", value.strip())
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise RecordError(location, index, field,
                          f"invalid RFC 3339 time {value!r}") from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(container: dict[str, Any], key: str) -> str | None:
    value = container.get(key)
    return value if isinstance(value, str) and value else None


def _object(record: dict[str, Any], key: str, location: str, index: int) -> dict[str, Any]:
    value = record.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(location, index, key,
                          f"expected an object, got {type(value).__name__}")
    return value


def client_address(addr: str | None) -> str | None:
    """Return the address of `ip:port`, `[ipv6]:port` or a bare address or name."""
    if not addr:
        return None
    if addr.startswith("[") and "]" in addr:
        return addr[1:addr.index("]")]
    try:
        ipaddress.ip_address(addr)
        return addr
    except ValueError:
        pass
    host, separator, port = addr.rpartition(":")
    return host if separator and port.isdigit() else addr


def is_manifest_event(target: dict[str, Any]) -> bool:
    """Tell a manifest event from a blob event by its URL, then by its media type."""
    url = _text(target, "url") or ""
    if "/manifests/" in url:
        return True
    if "/blobs/" in url:
        return False
    return _text(target, "mediaType") in _MANIFEST_TYPES


def event_from_record(record: Any, origin: RecordOrigin,
                      registry: str | None) -> CreationEvent | None:
    """Return the image event of one notification event, or None for one left out.

    Raises:
        RecordError: a manifest event lacks a field it needs or has a bad value.
    """
    location, index = origin.location, origin.index
    if not isinstance(record, dict):
        raise RecordError(location, index, "(event)",
                          f"expected an object, got {type(record).__name__}")
    action = record.get("action")
    target = _object(record, "target", location, index)
    row = event_table.lookup(SOURCE, action)
    if action in _IGNORED_ACTIONS or (row is not None and not is_manifest_event(target)):
        return None
    if row is None:
        raise RecordError(location, index, "action",
                          f"unknown action {action!r}; expected push, delete, mount or pull")
    event_id = _text(record, "id")
    if event_id is None:
        raise RecordError(location, index, "id", "missing on a manifest event")
    time = parse_rfc3339(record.get("timestamp"), location, index, "timestamp")
    for part in ("request", "actor", "source"):
        _object(record, part, location, index)
    registry = (registry or event_table.text_at(record, row.registry)
                or event_table.text_at(record, "source.addr"))
    if registry is None:
        raise RecordError(location, index, "request.host",
                          "no registry: the event names no host and none was configured")
    repository = event_table.text_at(record, row.repository)
    if repository is None:
        raise RecordError(location, index, row.repository, "missing")
    digest = event_table.text_at(record, row.target)
    if digest is not None and not _DIGEST.match(digest):
        raise RecordError(location, index, str(row.target),
                          f"expected sha256:<64 hex digits>, got {digest[:80]!r}")
    tag = event_table.text_at(record, row.tag)
    if tag is not None and not _TAG.match(tag):
        raise RecordError(location, index, str(row.tag), f"invalid tag {tag[:140]!r}")
    if digest is None and (row.effect is EventEffect.PUSH or tag is None):
        raise RecordError(location, index, str(row.target),
                          f"missing on a manifest {action} event")
    name = event_table.text_at(record, row.principal)
    address = event_table.text_at(record, row.source_ip)
    values = {"id": event_id, "target.repository": repository, "target.digest": digest,
              "actor.name": name, "request.addr": address, "request.host": registry}
    for field, value in values.items():
        if value is not None and len(value) > _LIMITS[field]:
            raise RecordError(location, index, field, f"value of {len(value)} "
                                                      f"characters is longer than "
                                                      f"{_LIMITS[field]}")
    principal = (Principal(kind=PrincipalKind.USER, id=name, account=registry,
                           native_type="registry-user") if name else
                 Principal(kind=PrincipalKind.UNKNOWN, id="anonymous", account=registry,
                           native_type="registry-anonymous"))
    return CreationEvent(
        source=SOURCE,
        key=f"{SOURCE}:{registry}:{event_id}",
        event_id=event_id,
        time=time,
        action=f"registry:{action}",
        effect=row.effect,
        platform=PLATFORM,
        account=registry,
        region="",
        principal=principal,
        source_ip=client_address(address),
        user_agent=event_table.text_at(record, "request.useragent"),
        target=digest,
        registry=registry,
        repository=repository,
        tag=tag,
        origin=origin,
    )


def _envelopes(document: Any) -> tuple[str, list[Any]] | None:
    if isinstance(document, dict) and isinstance(document.get("events"), list):
        return "registry-envelope", [document]
    if (isinstance(document, list) and document and
            all(isinstance(item, dict) and isinstance(item.get("events"), list)
                for item in document)):
        return "registry-envelope-list", document
    return None


def _documents(data: bytes) -> list[Any]:
    try:
        return [orjson.loads(data)]
    except orjson.JSONDecodeError:
        # One envelope per line, as a spool or a log of POST bodies keeps them.
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def read(data: bytes, location: str, fallback_account: str | None = None) -> LogDocument:
    """Read notification envelopes; a bad event is a problem, the others are read."""
    document = LogDocument(location=location, source=SOURCE, platform=PLATFORM)
    try:
        parsed = _documents(decompress(data))
    except (ValueError, EOFError) as error:
        document.problems.append(RecordProblem(location, -1, "(file)",
                                               f"not JSON: {error}"))
        return document
    index = 0
    ignored = 0
    for item in parsed:
        found = _envelopes(item)
        if found is None:
            document.problems.append(RecordProblem(
                location, index, "events", 'expected a notification envelope {"events": '
                                           "[...]}"))
            index += 1
            continue
        shape, envelopes = found
        document.shapes.add(shape)
        for envelope in envelopes:
            for record in envelope["events"]:
                origin = RecordOrigin(location=location, index=index, shape=shape)
                document.records += 1
                try:
                    event = event_from_record(record, origin, fallback_account)
                except RecordError as error:
                    document.problems.append(error.problem)
                    event = None
                else:
                    if event is None:
                        ignored += 1
                    else:
                        document.events.append(event)
                        document.raw[event.key] = record_json(record)
                index += 1
    if ignored:
        document.notices.append("blob, mount and pull events left out")
    return document


FORMAT = LogFormat(name="registry-notifications", platform=PLATFORM,
                   recognises=recognises, read=read)
