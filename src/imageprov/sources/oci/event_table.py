"""The registry events that concern an image, and the fields where each names it.

One row per (source, action). `registry` is where the event names the registry,
used when the configuration does not say which one sent it; `target` is the digest, `None`
where the event carries none (a Docker Hub webhook names only the tag). Blob
events, `mount` and `pull` have no row and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

from imageprov.model import EventEffect


@dataclass(frozen=True)
class EventRow:
    """The fields where one kind of registry event names the image it acts on."""

    source: str
    action: str
    effect: EventEffect
    target: str | None
    repository: str
    tag: str | None
    registry: str | None
    principal: str
    source_ip: str | None


REGISTRY = "registry"
DOCKERHUB = "dockerhub"

ROWS: tuple[EventRow, ...] = (
    EventRow(REGISTRY, "push", EventEffect.PUSH, "target.digest", "target.repository",
             "target.tag", "request.host", "actor.name", "request.addr"),
    # Deleting a manifest by digest also sends a delete of each tag that pointed at
    # it, with a tag and no digest.
    EventRow(REGISTRY, "delete", EventEffect.DELETE, "target.digest", "target.repository",
             "target.tag", "request.host", "actor.name", "request.addr"),
    EventRow(DOCKERHUB, "push", EventEffect.PUSH, None, "repository.repo_name",
             "push_data.tag", None, "push_data.pusher", None),
)

BY_KEY: dict[tuple[str, str], EventRow] = {(row.source, row.action): row for row in ROWS}


def lookup(source: str, action: object) -> EventRow | None:
    """Return the row of an event, or None when the event names no image."""
    if not isinstance(action, str):
        return None
    return BY_KEY.get((source, action))


def text_at(record: object, path: str | None) -> str | None:
    """Return the non-empty text at a dotted path, or None."""
    if path is None:
        return None
    node = record
    for key in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node if isinstance(node, str) and node else None
