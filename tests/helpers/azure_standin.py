"""A loopback HTTPS stand-in for Azure Resource Manager and the ACR data plane.

This is not Azure. It serves the few calls imageprov's Azure inventory makes, over
TLS with a throwaway CA made here, with the real paths, query parameters and JSON
field names. So `azure-mgmt-compute` and `azure-containerregistry` talk to it
unchanged apart from their endpoint and `connection_verify`:

- ARM (any `api-version` is accepted and recorded, a bearer token is required):
  `GET /subscriptions/{s}/providers/Microsoft.Compute/images`,
  `.../Microsoft.Compute/galleries`,
  `/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Compute/galleries/{n}/images`
  and `.../images/{i}/versions`; pages of `page_size` items linked by absolute
  `nextLink` URLs carrying a `$skiptoken`. Paths match case-insensitively, as ARM's do.
- ACR: the challenge (`401` with `WWW-Authenticate: Bearer realm=...,service=...,
  scope=...`), `POST /oauth2/exchange` (AAD token for a refresh token) and
  `POST /oauth2/token` (refresh token for an access token), then
  `GET /acr/v1/_catalog` and `GET /acr/v1/{name}/_manifests` paged by `n` and `last`
  with a relative `Link: <...>; rel="next"` header. Repository names arrive
  percent-encoded and are decoded before routing.

Not covered: writes, `$filter`, `$expand`, errors other than 401 and 404, tag and
single-manifest calls, throttling, and any check of the tokens beyond their presence.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """Write a CA and a server certificate for 127.0.0.1; return (ca, cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imageprov test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage(
                [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def jwt_shaped(subject: str) -> str:
    """Return an unsigned JWT-shaped token with an `exp` an hour away."""
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    return ".".join([part({"alg": "none", "typ": "JWT"}),
                     part({"sub": subject, "exp": int(time.time()) + 3600}), "sig"])


@dataclass
class AzureState:
    """What the stand-in serves: ARM resources by subscription, ACR repositories."""

    managed_images: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    galleries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # gallery id (lower case) -> image definitions; definition id -> versions
    gallery_images: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # repository -> manifest attribute objects as the ACR API writes them
    repositories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    page_size: int = 2
    requests: list[tuple[str, str]] = field(default_factory=list)
    api_versions: set[str] = field(default_factory=set)
    token_exchanges: int = 0


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None
              ) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        state = self.server.state
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        state.requests.append(("POST", url.path))
        if url.path == "/oauth2/exchange":
            if form.get("grant_type") != ["access_token"] or not form.get("access_token"):
                self._send(400, {"errors": [{"code": "UNSUPPORTED", "message": "grant"}]})
                return
            state.token_exchanges += 1
            self._send(200, {"refresh_token": jwt_shaped("refresh")})
        elif url.path == "/oauth2/token":
            if form.get("grant_type") != ["refresh_token"] or not form.get("refresh_token"):
                self._send(400, {"errors": [{"code": "UNSUPPORTED", "message": "grant"}]})
                return
            self._send(200, {"access_token": jwt_shaped("access")})
        else:
            self._send(404, {"error": {"code": "NotFound", "message": url.path}})

    def do_GET(self) -> None:  # noqa: N802
        state = self.server.state
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        state.requests.append(("GET", self.path))
        if url.path.startswith("/acr/v1/"):
            self._acr(url.path, query)
            return
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            self._send(401, {"error": {"code": "AuthenticationFailed", "message": "no token"}})
            return
        if "api-version" not in query:
            self._send(400, {"error": {"code": "MissingApiVersionParameter",
                                       "message": "api-version is required"}})
            return
        state.api_versions.add(query["api-version"][0])
        items = self._arm_items(url.path.lower())
        if items is None:
            self._send(404, {"error": {"code": "ResourceNotFound", "message": url.path}})
            return
        start = int(query.get("$skiptoken", ["0"])[0])
        page = items[start:start + state.page_size]
        body: dict[str, Any] = {"value": page}
        if start + state.page_size < len(items):
            body["nextLink"] = (f"{self.server.url}{url.path}?api-version="
                                f"{query['api-version'][0]}&$skiptoken={start + state.page_size}")
        self._send(200, body)

    def _arm_items(self, path: str) -> list[dict[str, Any]] | None:
        state = self.server.state
        parts = path.strip("/").split("/")
        if len(parts) == 5 and parts[2:4] == ["providers", "microsoft.compute"]:
            if parts[4] == "images":
                return state.managed_images.get(parts[1], [])
            if parts[4] == "galleries":
                return state.galleries.get(parts[1], [])
        if len(parts) == 9 and parts[8] == "images":
            return state.gallery_images.get("/" + "/".join(parts[:8]), [])
        if len(parts) == 11 and parts[10] == "versions":
            return state.versions.get("/" + "/".join(parts[:10]), [])
        return None

    def _acr(self, path: str, query: dict[str, list[str]]) -> None:
        state = self.server.state
        host = self.headers.get("Host", "")
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            scope = ("registry:catalog:*" if path == "/acr/v1/_catalog" else
                     f"repository:{unquote(path.split('/')[3])}:metadata_read")
            challenge = (f'Bearer realm="https://{host}/oauth2/token",service="{host}",'
                         f'scope="{scope}"')
            self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "auth"}]},
                       {"WWW-Authenticate": challenge})
            return
        size = int(query.get("n", [str(state.page_size)])[0] or state.page_size)
        size = min(size, state.page_size)
        last = query.get("last", [""])[0]
        if path == "/acr/v1/_catalog":
            names = sorted(state.repositories)
            page = [n for n in names if n > last][:size]
            headers = {}
            if page and page[-1] != names[-1]:
                headers["Link"] = (f'</acr/v1/_catalog?last={quote(page[-1], safe="")}'
                                   f'&n={size}&orderby=>; rel="next"')
            self._send(200, {"repositories": page}, headers)
            return
        parts = path.split("/")
        if len(parts) == 5 and parts[4] == "_manifests":
            name = unquote(parts[3])
            manifests = state.repositories.get(name)
            if manifests is None:
                self._send(404, {"errors": [{"code": "NAME_UNKNOWN", "message": name}]})
                return
            ordered = sorted(manifests, key=lambda m: m["digest"])
            page = [m for m in ordered if m["digest"] > last][:size]
            headers = {}
            if page and page[-1]["digest"] != ordered[-1]["digest"]:
                headers["Link"] = (f'</acr/v1/{quote(name, safe="")}/_manifests?last='
                                   f'{page[-1]["digest"]}&n={size}&orderby=>; rel="next"')
            self._send(200, {"registry": host, "imageName": name, "manifests": page},
                       headers)
            return
        self._send(404, {"errors": [{"code": "NAME_UNKNOWN", "message": path}]})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: AzureState
    url: str


class AzureStandIn:
    """The stand-in server, started on a free loopback port with its own CA."""

    def __init__(self, state: AzureState | None = None) -> None:
        self.state = state or AzureState()
        self._folder = tempfile.TemporaryDirectory(prefix="imageprov-azure-")
        self.ca, cert, key = make_certificates(Path(self._folder.name))
        self._server = _Server(("127.0.0.1", 0), _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.state = self.state
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._server.url = self.url
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> AzureStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._folder.cleanup()


def managed_image(subscription: str, group: str, name: str, source_vm: str | None = None,
                  tags: dict[str, str] | None = None) -> dict[str, Any]:
    """A managed image as `images.list` returns it."""
    base = f"/subscriptions/{subscription}/resourceGroups/{group}/providers"
    body: dict[str, Any] = {
        "id": f"{base}/Microsoft.Compute/images/{name}", "name": name,
        "type": "Microsoft.Compute/images", "location": "westeurope", "tags": tags or {},
        "properties": {
            "provisioningState": "Succeeded", "hyperVGeneration": "V2",
            "storageProfile": {"osDisk": {"osType": "Linux", "osState": "Generalized",
                                          "storageAccountType": "Standard_LRS"},
                               "dataDisks": []}}}
    if source_vm:
        body["properties"]["sourceVirtualMachine"] = {
            "id": f"{base}/Microsoft.Compute/virtualMachines/{source_vm}"}
    return body


def gallery(subscription: str, group: str, name: str) -> dict[str, Any]:
    return {"id": f"/subscriptions/{subscription}/resourceGroups/{group}/providers/"
                  f"Microsoft.Compute/galleries/{name}",
            "name": name, "type": "Microsoft.Compute/galleries", "location": "westeurope",
            "properties": {"provisioningState": "Succeeded",
                           "identifier": {"uniqueName": f"{subscription}-{name.upper()}"}}}


def gallery_image(gallery_id: str, name: str) -> dict[str, Any]:
    return {"id": f"{gallery_id}/images/{name}", "name": name,
            "type": "Microsoft.Compute/galleries/images", "location": "westeurope",
            "properties": {"osType": "Linux", "osState": "Generalized",
                           "identifier": {"publisher": "contoso", "offer": "base",
                                          "sku": name}, "provisioningState": "Succeeded"}}


def gallery_version(image_id: str, name: str, published: str,
                    source_id: str | None = None) -> dict[str, Any]:
    """A gallery image version as `list_by_gallery_image` returns it."""
    return {"id": f"{image_id}/versions/{name}", "name": name,
            "type": "Microsoft.Compute/galleries/images/versions", "location": "westeurope",
            "tags": {},
            "properties": {
                "publishingProfile": {"publishedDate": published, "replicaCount": 1,
                                      "excludeFromLatest": False,
                                      "targetRegions": [{"name": "West Europe",
                                                         "regionalReplicaCount": 1}]},
                "storageProfile": {"source": {"id": source_id} if source_id else {},
                                   "osDiskImage": {"sizeInGB": 30, "hostCaching": "ReadOnly"}},
                "safetyProfile": {"reportedForPolicyViolation": False},
                "provisioningState": "Succeeded"}}


def acr_manifest(digest: str, tags: list[str], created: str) -> dict[str, Any]:
    """A manifest entry of `GET /acr/v1/{name}/_manifests`, wire field names."""
    return {"digest": digest, "imageSize": 2048, "createdTime": created,
            "lastUpdateTime": created, "architecture": "amd64", "os": "linux",
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "tags": tags,
            "changeableAttributes": {"deleteEnabled": True, "writeEnabled": True,
                                     "readEnabled": True, "listEnabled": True}}
