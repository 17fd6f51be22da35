"""Join images to the events that created and changed them, whatever the cloud.

An image is matched on its native id within its scope: the account and region of an
AMI or another machine image, the registry and repository of a container image. The
creation event is the earliest successful creating event (create, copy, import or
push) for that id, or the first one after its last successful delete when one
follows it, since Azure resource ids and container digests can be created again
once deleted. Failed calls are kept in the history but never attribute. For a
container image, a record of the first push that names its actor is preferred over
one of the same push that does not. An import into a registry that names a
repository and tag but no digest (ACR's importImage) is joined to the image carrying
that tag.

A long-running call may be logged as a start entry, which keeps the request, and a
completion entry, which decides (Compute Engine writes both). When the completion
names no source image, the effect and source of its start entry are taken, since the
two may sit in different files or messages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from imageprov.model import (
    INCOMPLETE_OPERATION,
    CreationEvent,
    EventEffect,
    Image,
    ImageKind,
    PrincipalKind,
)

_ScopeKey = tuple[str, str, str]
# Two records of one push, from two channels, are this close in time.
SAME_PUSH = timedelta(minutes=5)


def _image_key(image: Image) -> _ScopeKey:
    if image.kind is ImageKind.CONTAINER:
        return (image.registry or "", image.repository or "", image.digest or image.native_id)
    return (image.account, image.region, image.native_id)


def _event_key(event: CreationEvent) -> _ScopeKey | None:
    if event.target is None:
        return None
    if event.registry is not None:
        return (event.registry, event.repository or "", event.target)
    return (event.account, event.region, event.target)


def _order(event: CreationEvent) -> tuple[object, str]:
    return (event.time, event.key)


def _with_start_request(creation: CreationEvent,
                        events: list[CreationEvent]) -> CreationEvent:
    """Return `creation` with the effect and source image of its start entry."""
    starts = [
        event for event in events
        if event.error_code == INCOMPLETE_OPERATION and event.effect.creates
        and event.action == creation.action and event.time <= creation.time
        and event.principal.id == creation.principal.id
    ]
    if not starts:
        return creation
    start = starts[-1]
    if start.effect is creation.effect and start.source_image is None:
        return creation
    return creation.model_copy(update={"effect": start.effect,
                                       "source_image": start.source_image})


@dataclass(frozen=True)
class Attribution:
    """An image's creation event, if found, and every event that names it."""

    image: Image
    creation: CreationEvent | None
    history: tuple[CreationEvent, ...]
    tag_pushes: dict[str, tuple[CreationEvent, ...]]
    # Events that name the same container digest in another registry or repository.
    elsewhere: tuple[CreationEvent, ...] = ()

    @property
    def shares(self) -> tuple[CreationEvent, ...]:
        return tuple(
            event for event in self.history
            if event.succeeded and event.effect in (EventEffect.SHARE, EventEffect.UNSHARE)
        )


def _digestless_push(tag_pushes: dict[str, tuple[CreationEvent, ...]]
                     ) -> CreationEvent | None:
    """Return the latest push of a current tag when that push names no digest.

    Docker Hub webhooks name the tag and not the digest, so the digest a tag points
    at now is taken as the one its latest push made. A later push that names a
    digest rules the join out.
    """
    found = []
    for pushes in tag_pushes.values():
        latest = [push for push in pushes if push.succeeded][-1:]
        if latest and latest[0].target is None:
            found.append(latest[0])
    return min(found, key=_order) if found else None


class Correlator:
    """An index of events by the image they name."""

    def __init__(self, events: Iterable[CreationEvent]) -> None:
        self._by_key: dict[_ScopeKey, list[CreationEvent]] = defaultdict(list)
        self._imports: dict[tuple[str, str], list[CreationEvent]] = defaultdict(list)
        self._tags: dict[tuple[str, str, str], list[CreationEvent]] = defaultdict(list)
        self._tag_imports: dict[tuple[str, str, str], list[CreationEvent]] = defaultdict(
            list)
        self._digests: dict[str, list[CreationEvent]] = defaultdict(list)
        for event in sorted(events, key=_order):
            if event.registry is not None and event.target:
                self._digests[event.target].append(event)
            key = _event_key(event)
            if key is not None:
                self._by_key[key].append(event)
            if event.effect is EventEffect.IMPORT and event.target:
                self._imports[(event.account, event.region)].append(event)
            if event.effect is EventEffect.PUSH and event.tag and event.registry:
                self._tags[(event.registry, event.repository or "", event.tag)].append(event)
            if (event.effect is EventEffect.IMPORT and event.target is None
                    and event.registry and event.tag):
                self._tag_imports[(event.registry, event.repository or "",
                                   event.tag)].append(event)

    def attribute(self, image: Image) -> Attribution:
        """Return the creation event and history of one image."""
        direct = list(self._by_key.get(_image_key(image), ()))
        deletes = [i for i, event in enumerate(direct)
                   if event.succeeded and event.effect is EventEffect.DELETE]
        creating = [event for event in direct if event.succeeded and event.effect.creates]
        # A delete by tag may leave the image in place, so a delete decides only when
        # a creating event follows it.
        after = [event for event in direct[deletes[-1] + 1:]
                 if event.succeeded and event.effect.creates] if deletes else []
        candidates = after or creating
        creation = (candidates or [None])[0]
        if (image.kind is ImageKind.CONTAINER and creation is not None
                and creation.principal.kind is PrincipalKind.UNKNOWN):
            # A registry notification that names no actor gives way to a record of
            # the same push that does (ACR repository events beside Event Grid), but
            # not to a later push of the same digest by someone else.
            creation = next(
                (event for event in candidates
                 if event.principal.kind is not PrincipalKind.UNKNOWN
                 and abs(event.time - creation.time) <= SAME_PUSH), creation)
        if creation is not None and creation.source_image is None:
            creation = _with_start_request(creation, direct)
        imports = self._import_events(image)
        if creation is None:
            # The name is chosen by whoever registers the image, so an import joined
            # by name attributes only an image no event names by its own id.
            creation = next((event for event in imports if event.succeeded), None)
        history = sorted(direct + imports, key=_order)
        tag_pushes = {}
        if image.kind is ImageKind.CONTAINER:
            for tag in image.names:
                pushes = self._tags.get((image.registry or "", image.repository or "", tag))
                if pushes:
                    tag_pushes[tag] = tuple(pushes)
            if creation is None:
                creation = _digestless_push(tag_pushes)
                if creation is not None:
                    history = sorted([*history, creation], key=_order)
            # A digest is its content, so a push of it elsewhere is the same image.
            elsewhere = tuple(
                event for event in self._digests.get(image.digest or "", ())
                if (event.registry, event.repository) != (image.registry, image.repository))
            return Attribution(image, creation, tuple(history), tag_pushes, elsewhere)
        return Attribution(image, creation, tuple(history), tag_pushes)

    def _import_events(self, image: Image) -> list[CreationEvent]:
        # An imported AMI is named after its import task (import-ami-...) unless the
        # caller renamed it; the ImportImage record holds only the task id.
        candidates = self._imports.get((image.account, image.region), ())
        names = set(image.names)
        # An import registers its image after the call, never before it.
        found = [event for event in candidates if event.target in names
                 and (image.created is None or event.time <= image.created)]
        if image.kind is ImageKind.CONTAINER:
            for tag in image.names:
                found.extend(self._tag_imports.get(
                    (image.registry or "", image.repository or "", tag), ()))
        return sorted(found, key=_order)
