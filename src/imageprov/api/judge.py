"""Judge one stored image again, from the events that name it, without a full cycle."""

from __future__ import annotations

from datetime import datetime

from imageprov.model import CreationEvent, EventEffect, Image, ImageKind, Verdict
from imageprov.policy import Policy, evaluate_images
from imageprov.store import Store

# Copies of copies are followed this far back; a longer chain is judged from what
# was loaded, which leaves its oldest sources out.
MAX_COPY_DEPTH = 16


def _targets(image: Image) -> set[str]:
    # Imports are named after their task id, which the image keeps in its names.
    found = {image.native_id, *image.names}
    if image.digest:
        found.add(image.digest)
    return found


def _tags(image: Image) -> set[tuple[str, str, str]]:
    if image.kind is not ImageKind.CONTAINER or not image.registry:
        return set()
    return {(image.registry, image.repository or "", tag) for tag in image.names}


def _copy_sources(events: dict[str, CreationEvent]) -> set[tuple[str, str]]:
    return {
        (event.source_region or event.region, event.source_image)
        for event in events.values()
        if event.effect is EventEffect.COPY and event.succeeded and event.source_image
    }


def _gather(store: Store, image: Image) -> tuple[dict[str, Image], dict[str, CreationEvent]]:
    """Load the image, the events naming it, and the chain of images it was copied from."""
    images = {image.ref: image}
    events: dict[str, CreationEvent] = {}
    targets = _targets(image)
    tags = _tags(image)
    followed: set[tuple[str, str]] = set()
    for _ in range(MAX_COPY_DEPTH):
        for event in store.events_naming(image.platform.value, targets, tags):
            events[event.key] = event
        sources = _copy_sources(events) - followed
        if not sources:
            break
        followed |= sources
        targets = set()
        tags = set()
        for region, native_id in sources:
            targets.add(native_id)
            for source in store.find_images(native_id):
                if source.region == region and source.kind is not ImageKind.CONTAINER:
                    images[source.ref] = source
                    targets |= _targets(source)
    return images, events


def reevaluate(store: Store, policy: Policy, image: Image, now: datetime) -> Verdict:
    """Judge `image` under `policy` as of `now` and store the verdict if it changed.

    The verdict is the one a full evaluation would give: the same events, log
    coverage and copy sources take part, loaded for this image alone.
    """
    images, events = _gather(store, image)
    scopes = {(item.account, item.region) for item in images.values()}
    spans = store.coverage(scopes=scopes)
    evaluation = evaluate_images(images.values(), events.values(), policy, spans, now)
    verdict = evaluation.verdicts[image.ref]
    store.save_verdicts([verdict])
    return verdict
