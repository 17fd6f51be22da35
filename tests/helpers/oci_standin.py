"""A loopback HTTPS stand-in for an OCI 1.1 registry with token authentication.

Stand-in, not an emulator: Debian's docker-registry (distribution 2.8) has no
Referrers API and needs a separate token server, so this covers what it cannot,
on the real API's paths, headers and JSON field names:

- `GET /v2/` and every other path return 401 with
  `WWW-Authenticate: Bearer realm=".../token",service="standin"` until the
  request carries a token; `GET /token` issues one for basic credentials;
- `/v2/_catalog` and `/v2/<name>/tags/list` page with `n`/`last` and a relative
  `Link: <...>; rel="next"` header;
- `/v2/<name>/manifests/<ref>` by tag or digest with `Docker-Content-Digest`;
- `/v2/<name>/blobs/<digest>`, with a 307 redirect to another host name
  (`localhost`) for blobs listed in `redirect`, as registries do for blob storage;
- `/v2/<name>/referrers/<digest>`: an image index of the manifests whose `subject`
  is the digest, each descriptor with `artifactType` and `annotations`.

Uploads are not served: the test puts content in with `add_manifest`/`add_blob`.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import secrets
import ssl
import threading
import urllib.parse
from base64 import b64decode
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imageprov standin")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "standin.crt", folder / "standin.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class StandinRegistry:
    """The stand-in's content, accounts and request log, served on 127.0.0.1."""

    def __init__(self, folder: Path, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.repositories: dict[str, dict[str, str]] = {}
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.blobs: dict[str, bytes] = {}
        self.redirect: set[str] = set()
        self.tokens: set[str] = set()
        self.redirected_authorization: list[str | None] = []
        self.ca_file, key_file = _certificate(folder)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, key_file)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return digest

    def add_manifest(self, repository: str, document: dict[str, Any],
                     tag: str | None = None) -> tuple[str, int]:
        data = json.dumps(document).encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.manifests[digest] = (data, document["mediaType"])
        tags = self.repositories.setdefault(repository, {})
        if tag is not None:
            tags[tag] = digest
        return digest, len(data)


def _page(values: list[str], query: dict[str, list[str]], path: str
          ) -> tuple[list[str], str | None]:
    count = int(query.get("n", ["100"])[0])
    last = query.get("last", [""])[0]
    remaining = [value for value in sorted(values) if value > last]
    page = remaining[:count]
    if len(remaining) > count:
        link = f"{path}?" + urllib.parse.urlencode({"last": page[-1], "n": count})
        return page, f'<{link}>; rel="next"'
    return page, None


def _handler(registry: StandinRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
                  ) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, code: str, extra: dict[str, str] | None = None) -> None:
            body = json.dumps({"errors": [{"code": code, "message": code.lower()}]})
            self._send(status, body.encode(), {"Content-Type": "application/json",
                                               **(extra or {})})

        def do_GET(self) -> None:  # noqa: N802
            parts = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parts.query)
            host = self.headers.get("Host", "")
            if parts.path.startswith("/redirected/"):
                registry.redirected_authorization.append(self.headers.get("Authorization"))
                self._send(200, registry.blobs[parts.path.removeprefix("/redirected/")])
                return
            if parts.path == "/token":
                self._token()
                return
            given = self.headers.get("Authorization", "")
            if given.removeprefix("Bearer ") not in registry.tokens:
                challenge = (f'Bearer realm="https://127.0.0.1:{registry.port}/token",'
                             'service="standin"')
                self._error(401, "UNAUTHORIZED", {"WWW-Authenticate": challenge})
                return
            self._route(parts.path, query, host)

        def _token(self) -> None:
            given = self.headers.get("Authorization", "")
            expected = f"{registry.username}:{registry.password}"
            if not given.startswith("Basic ") or \
                    b64decode(given[6:]).decode() != expected:
                self._error(401, "UNAUTHORIZED")
                return
            token = secrets.token_hex(16)
            registry.tokens.add(token)
            self._send(200, json.dumps({"token": token}).encode(),
                       {"Content-Type": "application/json"})

        def _route(self, path: str, query: dict[str, list[str]], host: str) -> None:
            if path == "/v2/":
                self._send(200, b"{}")
                return
            if path == "/v2/_catalog":
                page, link = _page(list(registry.repositories), query, path)
                self._json({"repositories": page}, link)
                return
            name, kind, reference = self._split(path)
            if name not in registry.repositories:
                self._error(404, "NAME_UNKNOWN")
            elif kind == "tags":
                page, link = _page(list(registry.repositories[name]), query,
                                   f"/v2/{name}/tags/list")
                self._json({"name": name, "tags": page}, link)
            elif kind == "manifests":
                digest = registry.repositories[name].get(reference, reference)
                if digest not in registry.manifests:
                    self._error(404, "MANIFEST_UNKNOWN")
                    return
                data, media_type = registry.manifests[digest]
                self._send(200, data, {"Content-Type": media_type,
                                       "Docker-Content-Digest": digest})
            elif kind == "blobs":
                if reference not in registry.blobs:
                    self._error(404, "BLOB_UNKNOWN")
                elif reference in registry.redirect:
                    port = registry.port
                    self._send(307, headers={
                        "Location": f"https://localhost:{port}/redirected/{reference}"})
                else:
                    self._send(200, registry.blobs[reference])
            elif kind == "referrers":
                self._referrers(reference)
            else:
                self._error(404, "NOT_FOUND")

        def _split(self, path: str) -> tuple[str, str, str]:
            body = path.removeprefix("/v2/")
            if body.endswith("/tags/list"):
                return body.removesuffix("/tags/list"), "tags", ""
            for kind in ("manifests", "blobs", "referrers"):
                marker = f"/{kind}/"
                if marker in body:
                    name, reference = body.rsplit(marker, 1)
                    return name, kind, reference
            return body, "", ""

        def _referrers(self, digest: str) -> None:
            found = []
            for key, (data, media_type) in registry.manifests.items():
                document = json.loads(data)
                if (document.get("subject") or {}).get("digest") != digest:
                    continue
                found.append({"mediaType": media_type, "digest": key, "size": len(data),
                              "artifactType": document.get("artifactType")
                              or document["config"]["mediaType"],
                              "annotations": document.get("annotations", {})})
            body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                               "manifests": found}).encode()
            self._send(200, body, {"Content-Type": OCI_INDEX})

        def _json(self, document: dict[str, Any], link: str | None) -> None:
            headers = {"Content-Type": "application/json"}
            if link:
                headers["Link"] = link
            self._send(200, json.dumps(document).encode(), headers)

    return Handler
