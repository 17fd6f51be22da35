"""Join images to the events that created and changed them, whatever the cloud.

An image is matched on its native id within its scope: the account and region of an
AMI or another machine image, the registry and repository of a container image. The
creation event is the earliest successful creating event (create, copy, import or
push) for that id, or the first one after its last successful delete when one
follows it, since Azure resource ids and container digests can be created again
once deleted. Failed calls are kept in the history but never attribute. For a
container image, a creating event that names its actor is preferred over one that
does not. An import into a registry that names a repository and tag but no digest
(ACR's importImage) is joined to the image carrying that tag.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from imageprov.model import CreationEvent, EventEffect, Image, ImageKind, PrincipalKind

_ScopeKey = tuple[str, str, str]


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


@dataclass(frozen=True)
class Attribution:
    """An image's creation event, if found, and every event that names it."""

    image: Image
    creation: CreationEvent | None
    history: tuple[CreationEvent, ...]
    tag_pushes: dict[str, tuple[CreationEvent, ...]]

    @property
    def shares(self) -> tuple[CreationEvent, ...]:
        return tuple(
            event for event in self.history
            if event.succeeded and event.effect in (EventEffect.SHARE, EventEffect.UNSHARE)
        )


class Correlator:
    """An index of events by the image they name."""

    def __init__(self, events: Iterable[CreationEvent]) -> None:
        self._by_key: dict[_ScopeKey, list[CreationEvent]] = defaultdict(list)
        self._imports: dict[tuple[str, str], list[CreationEvent]] = defaultdict(list)
        self._tags: dict[tuple[str, str, str], list[CreationEvent]] = defaultdict(list)
        self._tag_imports: dict[tuple[str, str, str], list[CreationEvent]] = defaultdict(
            list)
        for event in sorted(events, key=_order):
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
        if image.kind is ImageKind.CONTAINER:
            # A digest names its content, so every push of it pushed the same image.
            # A registry notification that names no actor gives way to a record of
            # the same push that does (ACR repository events beside Event Grid).
            known = [e for e in candidates if e.principal.kind is not PrincipalKind.UNKNOWN]
            candidates = known or candidates
        creation = (candidates or [None])[0]
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
        return Attribution(image, creation, tuple(history), tag_pushes)

    def _import_events(self, image: Image) -> list[CreationEvent]:
        # An imported AMI is named after its import task (import-ami-...) unless the
        # caller renamed it; the ImportImage record holds only the task id.
        candidates = self._imports.get((image.account, image.region), ())
        names = set(image.names)
        found = [event for event in candidates if event.target in names]
        if image.kind is ImageKind.CONTAINER:
            for tag in image.names:
                found.extend(self._tag_imports.get(
                    (image.registry or "", image.repository or "", tag), ()))
        return sorted(found, key=_order)
