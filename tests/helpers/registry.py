"""A real Debian `docker-registry` on loopback, images built with `umoci` and pushed
with `skopeo`, and cosign signatures and attestations written by hand.

The registry uses htpasswd (bcrypt) accounts, so each push names its pusher, and
sends its notifications to the URL the test gives. Signatures follow cosign's
layout. A signature is an OCI manifest under the tag `sha256-<hex>.sig` with one
`application/vnd.dev.cosign.simplesigning.v1+json` layer per signature,
whose `dev.cosignproject.cosign/signature` annotation is the signature. An
attestation is a DSSE envelope layer under `sha256-<hex>.att`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import bcrypt
import urllib3
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from tests.conftest import free_port

ACCOUNTS = {"ci": "ci-password", "eve": "eve-password", "reader": "reader-password"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SIGNATURE_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_LAYER = "application/vnd.dsse.envelope.v1+json"


def require_tools() -> None:
    missing = [tool for tool in ("docker-registry", "skopeo", "umoci")
               if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}: apt-get install docker-registry "
                           "skopeo umoci")


class Registry:
    """One `docker-registry serve` process on 127.0.0.1 with its own storage."""

    def __init__(self, folder: Path, notify_url: str, secret: str) -> None:
        require_tools()
        self.folder = folder
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        lines = [f"{name}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}"
                 for name, password in ACCOUNTS.items()]
        (folder / "htpasswd").write_text("\n".join(lines) + "\n")
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(folder / "data")},
                        "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": "registry-upload-state"},
            "auth": {"htpasswd": {"realm": "imageprov-test",
                                  "path": str(folder / "htpasswd")}},
            "notifications": {"endpoints": [{
                "name": "imageprov", "url": notify_url,
                "headers": {"Authorization": [f"Bearer {secret}"]},
                "timeout": "2s", "threshold": 5, "backoff": "1s"}]},
        }
        # The registry reads YAML, and JSON is YAML.
        (folder / "config.yml").write_text(json.dumps(config))
        self.process: subprocess.Popen[bytes] | None = None
        self.http = urllib3.PoolManager()

    def start(self) -> None:
        self.log = open(self.folder / "registry.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(self.folder / "config.yml")],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.http.request("GET", f"{self.url}/v2/", timeout=1, retries=False)
                return
            except urllib3.exceptions.HTTPError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError((self.folder / "registry.log").read_text()) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None
            self.log.close()

    def _auth(self, user: str) -> dict[str, str]:
        return urllib3.make_headers(basic_auth=f"{user}:{ACCOUNTS[user]}")

    def push(self, layout: Path, tag: str, repository: str, dest_tag: str,
             user: str) -> None:
        """Copy `layout:tag` to `repository:dest_tag` as `user`, with skopeo."""
        subprocess.run(
            ["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
             "--dest-creds", f"{user}:{ACCOUNTS[user]}", f"oci:{layout}:{tag}",
             f"docker://{self.host}/{repository}:{dest_tag}"],
            check=True, capture_output=True, timeout=120)

    def put_blob(self, repository: str, data: bytes, user: str) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        started = self.http.request("POST", f"{self.url}/v2/{repository}/blobs/uploads/",
                                    headers=self._auth(user))
        assert started.status == 202, started.data
        location = urllib.parse.urljoin(self.url, started.headers["Location"])
        separator = "&" if "?" in location else "?"
        done = self.http.request(
            "PUT", f"{location}{separator}digest={urllib.parse.quote(digest)}", body=data,
            headers={**self._auth(user), "Content-Type": "application/octet-stream"})
        assert done.status == 201, done.data
        return digest

    def put_manifest(self, repository: str, reference: str, manifest: bytes,
                     user: str, media_type: str = OCI_MANIFEST) -> str:
        response = self.http.request(
            "PUT", f"{self.url}/v2/{repository}/manifests/{reference}", body=manifest,
            headers={**self._auth(user), "Content-Type": media_type})
        assert response.status == 201, response.data
        return "sha256:" + hashlib.sha256(manifest).hexdigest()

    def get_manifest(self, repository: str, reference: str) -> bytes:
        response = self.http.request(
            "GET", f"{self.url}/v2/{repository}/manifests/{reference}",
            headers={**self._auth("reader"), "Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
        assert response.status == 200, response.data
        return bytes(response.data)

    def get_manifest_digest(self, repository: str, tag: str) -> str:
        return "sha256:" + hashlib.sha256(self.get_manifest(repository, tag)).hexdigest()

    def evidence_manifest(self, repository: str, layers: list[tuple[str, bytes,
                                                                      dict[str, str]]],
                          user: str) -> bytes:
        """Push the blobs of an artifact manifest and return the manifest bytes."""
        config = b"{}"
        config_digest = self.put_blob(repository, config, user)
        descriptors = []
        for media_type, blob, annotations in layers:
            digest = self.put_blob(repository, blob, user)
            descriptors.append({"mediaType": media_type, "digest": digest,
                                "size": len(blob), "annotations": annotations})
        return json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": len(config)},
            "layers": descriptors}).encode()


# Images ----------------------------------------------------------------------------


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def build_image(layout: Path, tag: str, files: dict[str, bytes], *,
                base: str | None = None, author: str = "ci",
                labels: dict[str, str] | None = None, step: str = "add files") -> None:
    """Make `layout:tag` with umoci: a new image, or `base` plus one layer."""
    if not (layout / "index.json").exists():
        subprocess.run(["umoci", "init", "--layout", str(layout)], check=True,
                       capture_output=True)
    if base is None:
        subprocess.run(["umoci", "new", "--image", f"{layout}:{tag}"], check=True,
                       capture_output=True)
    else:
        subprocess.run(["umoci", "tag", "--image", f"{layout}:{base}", tag], check=True,
                       capture_output=True)
    label_args = [f"--config.label={key}={value}" for key, value in (labels or {}).items()]
    subprocess.run(["umoci", "config", "--image", f"{layout}:{tag}", "--author", author,
                    *label_args, "--no-history"], check=True, capture_output=True)
    with tempfile.NamedTemporaryFile(suffix=".tar") as layer:
        layer.write(_tar(files))
        layer.flush()
        subprocess.run(["umoci", "raw", "add-layer", "--image", f"{layout}:{tag}",
                        layer.name, "--history.created_by", step, "--history.author",
                        author], check=True, capture_output=True)


# Keys and signatures -------------------------------------------------------------


def new_key(kind: str = "ecdsa") -> Any:
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: Any) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def sign_bytes(key: Any, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def simple_signing_payload(reference: str, digest: str) -> bytes:
    return json.dumps({
        "critical": {"identity": {"docker-reference": reference},
                     "image": {"docker-manifest-digest": digest},
                     "type": "cosign container image signature"},
        "optional": {"creator": "imageprov tests"}}, separators=(",", ":")).encode()


def signature_layer(key: Any, payload: bytes, signed: bytes | None = None
                    ) -> tuple[str, bytes, dict[str, str]]:
    """A signature layer over `signed` (the payload itself unless given)."""
    signature = sign_bytes(key, signed if signed is not None else payload)
    return (SIGNATURE_LAYER, payload,
            {"dev.cosignproject.cosign/signature": base64.b64encode(signature).decode()})


def slsa_statement(digest: str, name: str, builder_id: str,
                   source: str = "git+https://git.example/team/app@refs/heads/main",
                   revision: str = "0123456789abcdef0123456789abcdef01234567") -> bytes:
    return json.dumps({
        "_type": "https://in-toto.io/Statement/v0.1",
        "subject": [{"name": name, "digest": {"sha256": digest.removeprefix("sha256:")}}],
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "predicate": {
            "builder": {"id": builder_id},
            "buildType": "https://ci.example/build-types/container@v1",
            "invocation": {"configSource": {"uri": source, "digest": {"sha1": revision},
                                            "entryPoint": "build.yml"}},
            "materials": [{"uri": source, "digest": {"sha1": revision}}],
        }}).encode()


def dsse_layer(key: Any, statement: bytes) -> tuple[str, bytes, dict[str, str]]:
    payload_type = b"application/vnd.in-toto+json"
    signed = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type, len(statement),
                                      statement)
    envelope = {"payloadType": payload_type.decode(),
                "payload": base64.b64encode(statement).decode(),
                "signatures": [{"keyid": "", "sig": base64.b64encode(
                    sign_bytes(key, signed)).decode()}]}
    return (DSSE_LAYER, json.dumps(envelope).encode(),
            {"predicateType": "https://slsa.dev/provenance/v0.2"})


def cosign_tag(digest: str, suffix: str) -> str:
    return digest.replace(":", "-") + f".{suffix}"
