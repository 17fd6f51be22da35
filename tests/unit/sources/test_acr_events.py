"""The ACR event reader: Event Grid, CloudEvents, webhooks and repository events."""

from __future__ import annotations

import json

from imageprov import formats
from imageprov.model import EventEffect

DIGEST = "sha256:" + "e" * 64
TOPIC = ("/subscriptions/0d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a/resourceGroups/rg/providers/"
         "Microsoft.ContainerRegistry/registries/contosoacr")
DATA = {"id": "6b1f0e2d-3c4b-4a59-8e7d-6f5a4b3c2d1e", "timestamp": "2026-11-30T08:00:00Z",
        "action": "push",
        "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": DIGEST, "repository": "Team/App", "tag": "v1"},
        "request": {"id": "r1", "host": "contosoacr.azurecr.io", "method": "PUT",
                    "useragent": "docker/27.0"}}


def test_cloudevents_push():
    body = [{"specversion": "1.0", "type": "Microsoft.ContainerRegistry.ImagePushed",
             "source": TOPIC, "id": DATA["id"], "time": "2026-11-30T08:00:01Z",
             "subject": "team/app:v1", "data": DATA}]
    document = formats.read(json.dumps(body).encode(), "ce.json")
    assert document.source == "acr-events"
    (event,) = document.events
    assert event.effect is EventEffect.PUSH
    assert event.registry == "contosoacr.azurecr.io"
    assert event.repository == "team/app"
    assert event.account == "0d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"


def test_event_grid_and_webhook_share_key():
    grid = [{"id": DATA["id"], "topic": TOPIC, "subject": "team/app:v1",
             "eventType": "Microsoft.ContainerRegistry.ImagePushed",
             "eventTime": "2026-11-30T08:00:01Z", "data": DATA, "dataVersion": "1.0"}]
    from_grid = formats.read(json.dumps(grid).encode(), "grid.json")
    from_hook = formats.read(json.dumps(DATA).encode(), "hook.json")
    assert from_grid.events[0].key == from_hook.events[0].key


def test_webhook_without_digest_quarantined():
    body = {**DATA, "target": {"repository": "team/app", "tag": "v1"}}
    document = formats.read(json.dumps(body).encode(), "hook.json")
    assert document.events == []
    (problem,) = document.problems
    assert (problem.index, problem.field) == (0, "target.digest")


def test_repository_event_failure_kept():
    rows = [{"TimeGenerated": "2026-11-30T08:00:00Z", "OperationName": "Push",
             "LoginServer": "contosoacr.azurecr.io", "Repository": "team/app",
             "Tag": "v1", "Digest": DIGEST, "Identity": "ana@contoso.com",
             "CallerIpAddress": "81.2.69.160", "ResultDescription": "401",
             "CorrelationId": "c1"}]
    document = formats.read(json.dumps(rows).encode(), "rows.json")
    (event,) = document.events
    assert event.error_code == "401"
    assert event.principal.id == "ana@contoso.com"
    assert event.source_ip == "81.2.69.160"


def test_overlong_event_id_quarantined_not_cut():
    # Cut to the column's 128 characters, two ids that differ further on would
    # name two pushes alike.
    body = {**DATA, "id": "a" * 129}
    document = formats.read(json.dumps(body).encode(), "hook.json")
    assert document.events == []
    (problem,) = document.problems
    assert (problem.index, problem.field) == (0, "id")
    assert "129 characters" in problem.detail


def test_overlong_correlation_id_quarantined():
    row = {"TimeGenerated": "2026-11-30T08:00:00Z", "OperationName": "Push",
           "LoginServer": "contosoacr.azurecr.io", "Repository": "team/app",
           "Digest": DIGEST, "CorrelationId": "c" * 200}
    document = formats.read(json.dumps([row]).encode(), "rows.json")
    assert document.events == []
    (problem,) = document.problems
    assert problem.field == "CorrelationId"


def test_long_keys_stay_distinct_and_storable():
    # The registry and the id each fit their columns, but the key that joins them
    # does not, so cutting it would make the two pushes one.
    registry = "r" * 200 + ".azurecr.io"
    grids = [[{"id": DATA["id"], "topic": TOPIC, "subject": "team/app:v1",
               "eventType": "Microsoft.ContainerRegistry.ImagePushed",
               "eventTime": "2026-11-30T08:00:01Z", "dataVersion": "1.0",
               "data": {**DATA, "id": f"{'b' * 120}{n}",
                        "request": {**DATA["request"], "host": registry}}}]
             for n in range(2)]
    keys = [formats.read(json.dumps(grid).encode(), f"grid{n}.json").events[0].key
            for n, grid in enumerate(grids)]
    assert all(len(key) == 300 for key in keys)
    assert keys[0] != keys[1]
    again = formats.read(json.dumps(grids[0]).encode(), "again.json").events[0].key
    assert again == keys[0]
