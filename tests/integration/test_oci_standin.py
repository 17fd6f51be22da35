"""Token authentication, TLS, Docker media types and the Referrers API, against the
loopback HTTPS stand-in (distribution 2.8 has no Referrers API)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from imageprov.policy.signatures import check, load_public_key
from imageprov.sources.oci import evidence_documents
from imageprov.sources.oci.cosign import RegistryEvidence
from imageprov.sources.oci.inventory import RegistryInventory
from imageprov.sources.oci.registry import Credentials, RegistryClient, RegistryError
from tests.helpers import registry as oci
from tests.helpers.oci_standin import StandinRegistry

PASSWORD = "standin-password-91b2"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def _image(standin: StandinRegistry, repository: str, arch: str,
           tag: str | None) -> tuple[str, int]:
    config = json.dumps({
        "created": "2026-11-30T08:00:00.123456789Z", "author": "release team",
        "architecture": arch, "os": "linux",
        "config": {"Labels": {"org.opencontainers.image.revision": "abc123",
                              "maintainer": "not kept"}},
        "history": [{"created_by": "/bin/sh -c #(nop) ADD file:1 in /"},
                    {"created_by": "RUN make install", "empty_layer": False}],
    }).encode()
    config_digest = standin.add_blob(config)
    standin.redirect.add(config_digest)
    layer = standin.add_blob(f"layer {arch}".encode())
    return standin.add_manifest(repository, {
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": config_digest,
                   "size": len(config)},
        "layers": [{"mediaType": DOCKER_LAYER, "digest": layer, "size": 7}]}, tag)


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[StandinRegistry]:
    registry = StandinRegistry(tmp_path, "reader", PASSWORD)
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


def _client(standin: StandinRegistry, password: str = PASSWORD) -> RegistryClient:
    return RegistryClient(standin.url, Credentials("reader", password),
                          ca_file=str(standin.ca_file), page_size=1)


def test_inventory_with_token_paging_and_lists(standin: StandinRegistry) -> None:
    app, _ = _image(standin, "team/app", "amd64", "v1")
    for tag in ("v2", "v3"):
        standin.repositories["team/app"][tag] = app
    arm, arm_size = _image(standin, "team/multi", "arm64", None)
    amd, amd_size = _image(standin, "team/multi", "amd64", None)
    listing, _ = standin.add_manifest("team/multi", {
        "schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": arm, "size": arm_size,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
            {"mediaType": DOCKER_MANIFEST, "digest": amd, "size": amd_size,
             "platform": {"architecture": "amd64", "os": "linux"}}]}, "latest")
    tool, _ = _image(standin, "zeta/tool", "amd64", "1.0")

    images = list(RegistryInventory(_client(standin), "registry.example").images())

    by_ref = {image.ref: image for image in images}
    assert sorted(by_ref) == sorted([
        f"registry.example/team/app@{app}", f"registry.example/team/multi@{listing}",
        f"registry.example/team/multi@{arm}", f"registry.example/team/multi@{amd}",
        f"registry.example/zeta/tool@{tool}"])
    image = by_ref[f"registry.example/team/app@{app}"]
    assert image.names == ("v1", "v2", "v3")
    assert image.tags["author"] == "release team"
    assert image.tags["label:org.opencontainers.image.revision"] == "abc123"
    assert "label:maintainer" not in image.tags
    assert image.tags["history"] == "2"
    assert image.tags["history[1]"] == "RUN make install"
    assert image.created is not None and image.created.microsecond == 123456
    child = by_ref[f"registry.example/team/multi@{arm}"]
    assert child.tags["platform"] == "linux/arm64/v8"
    assert child.tags["index"] == listing
    assert by_ref[f"registry.example/team/multi@{listing}"].names == ("latest",)
    # Config blobs are redirected to another host; the credentials stay behind.
    assert standin.redirected_authorization
    assert set(standin.redirected_authorization) == {None}


def test_referrers_api_finds_signatures(standin: StandinRegistry) -> None:
    key = oci.new_key()
    app, app_size = _image(standin, "team/app", "amd64", "v1")
    payload = oci.simple_signing_payload("registry.example/team/app", app)
    _, blob, annotations = oci.signature_layer(key, payload)
    empty = standin.add_blob(b"{}")
    layer = standin.add_blob(blob)
    signature_manifest, _ = standin.add_manifest("team/app", {
        "schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty,
                   "size": 2},
        "layers": [{"mediaType": oci.SIGNATURE_LAYER, "digest": layer,
                    "size": len(blob), "annotations": annotations}],
        "subject": {"mediaType": DOCKER_MANIFEST, "digest": app, "size": app_size}})

    # cosign also tags the same signature manifest, whatever the registry supports.
    standin.repositories["team/app"][oci.cosign_tag(app, "sig")] = signature_manifest

    objects = list(RegistryEvidence(_client(standin), "registry.example").objects())

    assert [item.location.rsplit(":", 1)[-1] for item in objects] == [
        signature_manifest.removeprefix("sha256:"), oci.cosign_tag(app, "sig")]
    documents = [evidence_documents.read(item.load(), item.location) for item in objects]
    assert documents[0].events[0].key == documents[1].events[0].key
    [event] = documents[0].events
    assert event.target == app
    assert orjson.loads(event.evidence or b"")["found_via"] == "referrers"
    finding = check(event, {"ci": load_public_key(oci.public_pem(key))})
    assert finding is not None and finding.valid
    # The signature manifest names a subject, so it is evidence and not an image.
    images = list(RegistryInventory(_client(standin), "registry.example").images())
    assert [image.digest for image in images] == [app]


def test_wrong_password_names_no_secret(standin: StandinRegistry) -> None:
    _image(standin, "team/app", "amd64", "v1")

    with pytest.raises(RegistryError) as raised:
        list(RegistryInventory(_client(standin, "wrong-password-x"),
                               "registry.example").images())

    assert raised.value.status == 401
    assert "token request" in str(raised.value)
    assert "wrong-password-x" not in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_untrusted_certificate_fails(standin: StandinRegistry) -> None:
    client = RegistryClient(standin.url, Credentials("reader", PASSWORD))

    with pytest.raises(RegistryError) as raised:
        client.ping()

    assert "SSL" in str(raised.value) or "certificate" in str(raised.value)


def test_static_token_from_configuration(standin: StandinRegistry,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from imageprov import cycle
    from imageprov.config import RegistrySource
    from imageprov.errors import SourceError

    app, _ = _image(standin, "team/app", "amd64", "v1")
    standin.tokens.add("static-token-4242")
    source = RegistrySource(name="standin", url=standin.url, token_env="STANDIN_TOKEN",
                            ca_file=standin.ca_file, registry="registry.example")
    with pytest.raises(SourceError) as raised:
        cycle.registry_client(source)
    assert "environment variable STANDIN_TOKEN is not set" in str(raised.value)
    monkeypatch.setenv("STANDIN_TOKEN", "static-token-4242")

    client = cycle.registry_client(source)
    images = list(RegistryInventory(client, source.host).images())

    assert [image.ref for image in images] == [f"registry.example/team/app@{app}"]
    assert "static-token-4242" not in repr(client.credentials)
