"""Registry notification envelopes and Docker Hub webhooks read into events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from imageprov import formats
from imageprov.model import EventEffect
from imageprov.sources.oci import dockerhub, notifications

DIGEST = "sha256:" + "cd" * 32


def _event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "0b1e-1", "timestamp": "2026-12-01T10:00:00.123456789-08:00",
        "action": "push",
        "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                   "digest": DIGEST, "repository": "team/app", "tag": "v1",
                   "url": f"http://reg:5000/v2/team/app/manifests/{DIGEST}"},
        "request": {"addr": "[2001:db8::7]:41000", "host": "reg:5000",
                    "useragent": "skopeo/1.9.3"},
        "actor": {"name": "ci"},
    }
    for path, value in changes.items():
        node = event
        *parents, last = path.split("__")
        for parent in parents:
            node = node[parent]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return event


def _read(*events: dict[str, Any], registry: str | None = None):
    data = json.dumps({"events": list(events)}).encode()
    return notifications.read(data, "body.json", registry)


def test_push_event_fields() -> None:
    document = _read(_event())

    [event] = document.events
    assert event.key == "registry:reg:5000:0b1e-1"
    assert event.effect is EventEffect.PUSH
    assert event.source_ip == "2001:db8::7"
    assert event.time.isoformat() == "2026-12-01T18:00:00.123456+00:00"
    assert (event.registry, event.repository, event.tag, event.target) == (
        "reg:5000", "team/app", "v1", DIGEST)


def test_configured_registry_name_wins() -> None:
    [event] = _read(_event(), registry="registry.example").events

    assert event.registry == "registry.example"
    assert event.account == "registry.example"


def test_anonymous_actor_and_delete_by_digest() -> None:
    document = _read(_event(actor={}, action="delete", target__tag=None))

    [event] = document.events
    assert event.principal.id == "anonymous"
    assert event.effect is EventEffect.DELETE
    assert event.tag is None


@pytest.mark.parametrize(("changes", "field", "detail"), [
    ({"id": None}, "id", "missing on a manifest event"),
    ({"timestamp": "2026-13-01T00:00:00Z"}, "timestamp", "invalid RFC 3339 time"),
    ({"target__digest": "sha256:" + "a" * 65}, "target.digest", "expected sha256:"),
    ({"target__repository": None}, "target.repository", "missing"),
    ({"target__tag": "-bad"}, "target.tag", "invalid tag"),
    ({"action": "replicate"}, "action", "unknown action 'replicate'"),
    ({"target": []}, "target", "expected an object, got list"),
])
def test_bad_event_is_a_problem(changes: dict[str, Any], field: str, detail: str) -> None:
    document = _read(_event(**changes), _event(id="good"))

    [problem] = document.problems
    assert problem.field == field
    assert detail in problem.detail
    assert problem.index == 0
    assert [event.event_id for event in document.events] == ["good"]


def test_blob_pull_and_mount_left_out() -> None:
    blob = _event(target__url=f"http://reg:5000/v2/team/app/blobs/{DIGEST}",
                  target__mediaType="application/octet-stream")
    document = _read(blob, _event(action="pull"), _event(action="mount"))

    assert document.records == 3
    assert document.events == []
    assert document.notices == ["blob, mount and pull events left out"]


def test_envelopes_one_per_line() -> None:
    lines = b"\n".join(json.dumps({"events": [_event(id=str(n))]}).encode()
                       for n in range(3))

    document = notifications.read(lines, "spool.jsonl", None)

    assert [event.event_id for event in document.events] == ["0", "1", "2"]


def test_formats_recognise_each_kind() -> None:
    envelope = json.dumps({"events": [_event()]}).encode()
    hub = json.dumps({"push_data": {"tag": "v1"}, "repository": {"repo_name": "a/b"}}
                     ).encode()
    trail = json.dumps({"Records": [{"eventName": "PutImage", "events": []}]}).encode()

    assert formats.choose(envelope).name == "registry-notifications"
    assert formats.choose(hub).name == "dockerhub-webhook"
    assert formats.choose(trail) is formats.FALLBACK


@pytest.mark.parametrize(("payload", "field"), [
    ({"repository": {"repo_name": "a/b"}}, "push_data"),
    ({"push_data": {"tag": "v1", "pusher": "p", "pushed_at": 1}, "repository": {}},
     "repository.repo_name"),
    ({"push_data": {"tag": "v1", "pusher": "p", "pushed_at": "soon"},
      "repository": {"repo_name": "a/b"}}, "push_data.pushed_at"),
    ({"push_data": {"pusher": "p", "pushed_at": 1}, "repository": {"repo_name": "a/b"}},
     "push_data.tag"),
])
def test_bad_dockerhub_payload_is_a_problem(payload: dict[str, Any], field: str) -> None:
    document = dockerhub.read(json.dumps(payload).encode(), "hook.json")

    [problem] = document.problems
    assert problem.field == field
    assert document.events == []


def test_dockerhub_official_image_under_library() -> None:
    payload = {"push_data": {"tag": "1", "pusher": "p", "pushed_at": 1700000000},
               "repository": {"repo_name": "busybox"}}

    [event] = dockerhub.read(json.dumps(payload).encode(), "hook.json").events

    assert event.repository == "library/busybox"
    assert event.registry == "docker.io"
