"""The notification receiver over real HTTP on loopback, storing into each backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from datetime import UTC, datetime
from typing import Any

import pytest
import urllib3
import yaml

from imageprov.model import EventEffect, Flag, Image, ImageKind, Platform, VerdictStatus
from imageprov.policy import evaluate_images
from imageprov.policy.schema import parse_policy
from imageprov.receiver import AsgiServer, NotificationReceiver, ReceiverSettings
from imageprov.store import Store
from tests.conftest import free_port

SECRET = "shared-secret-0c4f"
HUB_SECRET = "hub-path-secret-77aa"
REGISTRY = "registry.example:5000"
V1 = "application/vnd.docker.distribution.events.v1+json"
V2 = "application/vnd.docker.distribution.events.v2+json"
DIGEST = "sha256:" + "ab" * 32


def _event(event_id: str, action: str = "push", url_part: str = "manifests",
           media_type: str = "application/vnd.oci.image.manifest.v1+json") -> dict[str, Any]:
    return {
        "id": event_id, "timestamp": "2026-12-01T10:00:00.123456789Z", "action": action,
        "target": {"mediaType": media_type, "digest": DIGEST, "size": 500, "length": 500,
                   "repository": "team/app", "tag": "v1",
                   "url": f"http://{REGISTRY}/v2/team/app/{url_part}/{DIGEST}"},
        "request": {"id": "r1", "addr": "10.1.2.3:40000", "host": REGISTRY,
                    "method": "PUT", "useragent": "skopeo/1.9.3"},
        "actor": {"name": "ci"},
        "source": {"addr": "registry-host:5000", "instanceID": "i1"},
    }


HUB_PAYLOAD = {
    "callback_url": "https://registry.hub.docker.com/u/team/app/hook/callback-token-123/",
    "push_data": {"pushed_at": 1764583200, "pusher": "release-bot", "tag": "latest"},
    "repository": {"repo_name": "team/app", "name": "app", "namespace": "team",
                   "owner": "team", "is_private": True, "status": "Active",
                   "repo_url": "https://hub.docker.com/r/team/app"},
}


class Client:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = urllib3.PoolManager()

    def post(self, path: str, body: Any, content_type: str = V1,
             secret: str | None = SECRET) -> urllib3.BaseHTTPResponse:
        headers = {"Content-Type": content_type}
        if secret is not None:
            headers["Authorization"] = f"Bearer {secret}"
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.http.request("POST", self.base + path, body=data, headers=headers)


@pytest.fixture
def receiver(database_url: str) -> Iterator[tuple[Client, Store]]:
    store = Store.open(database_url)
    app = NotificationReceiver(store, ReceiverSettings(
        registries={"local": REGISTRY}, secret=SECRET, dockerhub_secret=HUB_SECRET))
    server = AsgiServer(app, "127.0.0.1", 0)
    server.start()
    try:
        yield Client(f"http://127.0.0.1:{server.port}"), store
    finally:
        server.stop()
        store.close()


def test_redelivered_event_stored_once(receiver: tuple[Client, Store]) -> None:
    client, store = receiver
    first = client.post("/registry/local", {"events": [_event("e-1")]})
    again = client.post("/registry/local", {"events": [_event("e-1")]})
    batched = client.post("/registry/local", {"events": [_event("e-2"), _event("e-1")]},
                          content_type=V2)

    assert (first.status, again.status, batched.status) == (200, 200, 200)
    events = store.events("oci")
    assert sorted(event.event_id for event in events) == ["e-1", "e-2"]
    event = next(event for event in events if event.event_id == "e-1")
    assert event.effect is EventEffect.PUSH
    assert event.registry == REGISTRY
    assert event.principal.id == "ci"
    assert event.source_ip == "10.1.2.3"
    assert event.tag == "v1"
    assert store.log_file_count() == 2


def test_wrong_secret_rejected(receiver: tuple[Client, Store]) -> None:
    client, store = receiver

    wrong = client.post("/registry/local", {"events": [_event("e-1")]}, secret="guess")
    missing = client.post("/registry/local", {"events": [_event("e-1")]}, secret=None)
    unknown = client.post("/registry/other", {"events": [_event("e-1")]})

    assert wrong.status == 401
    assert missing.status == 401
    assert unknown.status == 404
    assert store.events() == []


def test_blob_and_pull_events_ignored(receiver: tuple[Client, Store]) -> None:
    client, store = receiver
    body = {"events": [
        _event("blob", url_part="blobs", media_type="application/octet-stream"),
        _event("pull", action="pull"),
        _event("mount", action="mount", url_part="blobs"),
    ]}

    response = client.post("/registry/local", body)

    assert response.status == 202
    assert json.loads(response.data) == {"stored": 0, "ignored": 3}
    assert store.events() == []
    assert store.log_file_count() == 0


def test_bad_bodies_rejected_or_quarantined(receiver: tuple[Client, Store]) -> None:
    client, store = receiver

    not_json = client.post("/registry/local", b"{not json")
    wrong_type = client.post("/registry/local", {"events": []}, content_type="text/plain")
    bad = dict(_event("bad"), timestamp="yesterday")
    mixed = client.post("/registry/local", {"events": [bad, _event("good")]})

    assert not_json.status == 400
    assert wrong_type.status == 415
    assert mixed.status == 200
    assert [event.event_id for event in store.events()] == ["good"]
    [problem] = store.quarantined()
    assert problem.field == "timestamp"
    assert problem.record_index == 0
    assert "yesterday" in problem.error


def test_dockerhub_webhook_joins_current_tag(receiver: tuple[Client, Store]) -> None:
    client, store = receiver

    wrong = client.post("/dockerhub/guess", HUB_PAYLOAD, content_type="application/json",
                        secret=None)
    accepted = client.post(f"/dockerhub/{HUB_SECRET}", HUB_PAYLOAD,
                           content_type="application/json", secret=None)

    assert wrong.status == 401
    assert accepted.status == 200
    [event] = store.events("oci")
    assert event.principal.id == "release-bot"
    assert event.target is None
    assert event.source_ip is None
    assert (event.registry, event.repository, event.tag) == ("docker.io", "team/app",
                                                             "latest")
    raw = store.raw_record(event.key) or b""
    assert b"callback-token-123" not in raw
    assert b"release-bot" in raw

    image = Image(ref=f"docker.io/team/app@{DIGEST}", platform=Platform.OCI,
                  kind=ImageKind.CONTAINER, account="docker.io", region="",
                  native_id=DIGEST, digest=DIGEST, registry="docker.io",
                  repository="team/app", names=("latest",))
    policy = parse_policy(
        "builders:\n  - name: hub\n    principals: [release-bot]\n    platforms: [oci]\n",
        "policy.yaml")
    evaluation = evaluate_images([image], store.events(), policy, {},
                                 datetime(2026, 12, 2, tzinfo=UTC))
    verdict = evaluation.verdicts[image.ref]
    assert verdict.status is VerdictStatus.APPROVED
    assert verdict.actor == "release-bot"
    assert Flag.UNEXPECTED_ACTOR not in verdict.flags


def test_receive_command_stores_notifications(tmp_path: Path) -> None:
    port = free_port()
    database = f"sqlite:///{tmp_path / 'imageprov.db'}"
    (tmp_path / "policy.yaml").write_text("builders:\n  - name: ci\n    principals: [ci]\n")
    config = tmp_path / "imageprov.yaml"
    config.write_text(yaml.safe_dump({
        "database": database, "policy": "policy.yaml",
        "registries": [{"name": "local", "url": f"http://{REGISTRY}",
                        "registry": REGISTRY}],
        "receiver": {"port": port}}))
    process = subprocess.Popen(
        [sys.executable, "-m", "imageprov", "receive", "--config", str(config)],
        env={**os.environ, "IMAGEPROV_RECEIVER_SECRET": SECRET},
        stderr=subprocess.PIPE, text=True)
    client = Client(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = client.post("/registry/local", {"events": [_event("cli-1")]})
                break
            except urllib3.exceptions.HTTPError:
                assert time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.2)
        assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert SECRET not in stderr
    store = Store.open(database)
    assert [event.event_id for event in store.events()] == ["cli-1"]
    store.close()


def test_daemon_serves_receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imageprov.config import load_config
    from imageprov.daemon import Daemon

    monkeypatch.setenv("IMAGEPROV_RECEIVER_SECRET", SECRET)
    (tmp_path / "policy.yaml").write_text("builders:\n  - name: ci\n    principals: [ci]\n")
    config = tmp_path / "imageprov.yaml"
    config.write_text(yaml.safe_dump({
        "policy": "policy.yaml",
        "registries": [{"name": "local", "url": f"http://{REGISTRY}"}],
        "receiver": {"port": 0}}))
    store = Store.open(f"sqlite:///{tmp_path / 'imageprov.db'}")
    daemon = Daemon(load_config(config), store)

    port = daemon.start_receiver()
    try:
        assert port is not None
        response = Client(f"http://127.0.0.1:{port}").post(
            "/registry/local", {"events": [_event("daemon-1")]})
    finally:
        daemon.receiver.stop()

    assert response.status == 200
    assert [event.event_id for event in store.events()] == ["daemon-1"]
    store.close()


@pytest.mark.parametrize(("registry", "message"), [
    ({"name": "r", "url": "ftp://host"}, "url"),
    ({"name": "r", "url": "https://user:pw@host"}, "url"),
    ({"name": "r", "url": "https://host", "password_env": "X"}, "password_env needs username"),
    ({"name": "r", "url": "https://host", "username": "u", "password_env": "X",
      "token_env": "Y"}, "give password_env or token_env, not both"),
])
def test_registry_config_rejected(tmp_path: Path, registry: dict[str, Any],
                                  message: str) -> None:
    from imageprov.config import load_config
    from imageprov.errors import ConfigError

    config = tmp_path / "imageprov.yaml"
    config.write_text(yaml.safe_dump({"policy": "policy.yaml", "registries": [registry]}))

    with pytest.raises(ConfigError) as raised:
        load_config(config)

    assert message in str(raised.value)
    assert "pw@" not in str(raised.value)


def test_oversized_body_rejected(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'imageprov.db'}")
    app = NotificationReceiver(store, ReceiverSettings(
        registries={"local": REGISTRY}, secret=SECRET, max_body=1024))
    server = AsgiServer(app, "127.0.0.1", 0)
    server.start()
    try:
        events = [_event(f"e-{n}") for n in range(10)]
        response = Client(f"http://127.0.0.1:{server.port}").post(
            "/registry/local", {"events": events})
    finally:
        server.stop()

    assert response.status == 413
    assert store.events() == []
    store.close()
