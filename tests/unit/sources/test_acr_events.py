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
