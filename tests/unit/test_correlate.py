"""The join of events to images: re-created ids, tag imports, actorless pushes."""

from __future__ import annotations

from datetime import UTC, datetime

from imageprov.correlate import Correlator
from imageprov.model import (
    CreationEvent,
    EventEffect,
    Image,
    ImageKind,
    Platform,
    Principal,
    PrincipalKind,
    RecordOrigin,
)

REGISTRY = "contosoacr.azurecr.io"
DIGEST = "sha256:" + "1" * 64
IMAGE_ID = "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/images/golden"


def _event(key: str, hour: int, effect: EventEffect, principal: str = "builder",
           kind: PrincipalKind = PrincipalKind.USER, minute: int = 0,
           **fields) -> CreationEvent:
    return CreationEvent(
        source="test", key=key, event_id=key,
        time=datetime(2026, 11, 30, hour, minute, tzinfo=UTC),
        action="test", effect=effect, platform="azure", account="s", region="global",
        principal=Principal(kind=kind, id=principal),
        origin=RecordOrigin(location="test.json", index=hour, shape="test"), **fields)


def _managed() -> Image:
    return Image(ref=IMAGE_ID, platform=Platform.AZURE, kind=ImageKind.MANAGED_IMAGE,
                 account="s", region="global", native_id=IMAGE_ID)


def _container(tags: tuple[str, ...] = ()) -> Image:
    return Image(ref=f"{REGISTRY}/app@{DIGEST}", platform=Platform.AZURE,
                 kind=ImageKind.CONTAINER, account="s", region="global",
                 native_id=DIGEST, digest=DIGEST, registry=REGISTRY, repository="app",
                 names=tags)


def test_recreated_id_uses_later_creation():
    events = [_event("a", 1, EventEffect.CREATE, "approved", target=IMAGE_ID),
              _event("b", 2, EventEffect.DELETE, "attacker", target=IMAGE_ID),
              _event("c", 3, EventEffect.CREATE, "attacker", target=IMAGE_ID)]
    attribution = Correlator(events).attribute(_managed())
    assert attribution.creation.key == "c"
    assert [event.key for event in attribution.history] == ["a", "b", "c"]


def test_delete_without_recreation_keeps_first():
    events = [_event("a", 1, EventEffect.CREATE, target=IMAGE_ID),
              _event("b", 2, EventEffect.DELETE, target=IMAGE_ID)]
    assert Correlator(events).attribute(_managed()).creation.key == "a"


def test_import_joined_by_tag():
    imported = _event("i", 1, EventEffect.IMPORT, "importer", registry=REGISTRY,
                      repository="app", tag="v2")
    other = _event("j", 1, EventEffect.IMPORT, "importer", registry=REGISTRY,
                   repository="other", tag="v2")
    correlator = Correlator([imported, other])
    assert correlator.attribute(_container(("v2",))).creation.key == "i"
    assert correlator.attribute(_container(("v3",))).creation is None


def test_actorless_push_yields_to_named_record_of_same_push():
    events = [_event("grid", 1, EventEffect.PUSH, "unknown", PrincipalKind.UNKNOWN,
                     target=DIGEST, registry=REGISTRY, repository="app"),
              _event("rows", 1, EventEffect.PUSH, "ci", PrincipalKind.SERVICE_PRINCIPAL,
                     minute=2, target=DIGEST, registry=REGISTRY, repository="app")]
    assert Correlator(events).attribute(_container()).creation.key == "rows"


def test_later_named_push_does_not_take_over_actorless_first_push():
    events = [_event("grid", 1, EventEffect.PUSH, "unknown", PrincipalKind.UNKNOWN,
                     target=DIGEST, registry=REGISTRY, repository="app"),
              _event("ci", 2, EventEffect.PUSH, "ci", PrincipalKind.SERVICE_PRINCIPAL,
                     target=DIGEST, registry=REGISTRY, repository="app")]
    assert Correlator(events).attribute(_container()).creation.key == "grid"


def test_actorless_push_alone_attributes():
    events = [_event("grid", 1, EventEffect.PUSH, "unknown", PrincipalKind.UNKNOWN,
                     target=DIGEST, registry=REGISTRY, repository="app")]
    assert Correlator(events).attribute(_container()).creation.key == "grid"
