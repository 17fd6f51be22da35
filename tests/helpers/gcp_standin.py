"""A loopback HTTPS stand-in for the Compute Engine images API and the Artifact
Registry Docker image listing, which no emulator serves.

It follows the REST paths, query parameters and JSON field names that
`google-cloud-compute` and `google-cloud-artifact-registry` (REST transport) use:

- `GET /compute/v1/projects/{project}/global/images` with `maxResults` (default and
  maximum 500) and `pageToken`; the reply is `{"kind": "compute#imageList", "items",
  "nextPageToken", "selfLink"}` and `nextPageToken` is present while pages remain;
- `GET /compute/v1/projects/{project}/global/images/family/{family}`
  (`images.getFromFamily`): the newest image of the family by `creationTimestamp`
  whose `deprecated.state` is unset or `ACTIVE`, else 404 with a Google error body;
- `GET /compute/v1/projects/{project}/global/images/{image}/getIamPolicy`: the
  policy set with `iam_policies[(project, image)]`, else `{"etag": "ACAB"}` (no
  bindings), as for an image nobody shared;
- `GET /v1/projects/{p}/locations/{l}/repositories` and
  `GET /v1/projects/{p}/locations/{l}/repositories/{r}/dockerImages`, with `pageSize`
  and `pageToken`, replying `repositories` or `dockerImages` and `nextPageToken`.

Image ids, `archiveSizeBytes`, `diskSizeGb` and `imageSizeBytes` are JSON strings, as
the real APIs send 64-bit integers. Images and Docker images are stored as the JSON
objects the test gives, so field names are the test's to choose. It serves TLS with a
self-signed certificate for 127.0.0.1 made at start and records each request path.
It leaves out every write method, `filter`, `orderBy`, IAM policies, zonal family
views, long-running operations and authentication (any `Authorization` is accepted).
"""

from __future__ import annotations

import json
import ssl
import tempfile
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.helpers.cloudtrail_standin import self_signed


def _created(image: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(image["creationTimestamp"])


class GcpStandIn:
    """Compute images per project and Docker images per repository, over HTTPS."""

    def __init__(self) -> None:
        self.images: dict[str, list[dict[str, Any]]] = {}
        self.repositories: dict[tuple[str, str], list[str]] = {}
        self.docker_images: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self.iam_policies: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[str] = []
        self._folder = tempfile.TemporaryDirectory()
        self.ca_path, key_path = self_signed(Path(self._folder.name))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_path, key_path)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> GcpStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._folder.cleanup()

    def add_image(self, project: str, image: dict[str, Any]) -> None:
        self.images.setdefault(project, []).append(image)

    def add_docker_image(self, project: str, location: str, repository: str,
                         image: dict[str, Any]) -> None:
        names = self.repositories.setdefault((project, location), [])
        if repository not in names:
            names.append(repository)
        self.docker_images.setdefault((project, location, repository), []).append(image)

    def family_head(self, project: str, family: str) -> dict[str, Any] | None:
        members = [
            image for image in self.images.get(project, [])
            if image.get("family") == family
            and image.get("deprecated", {}).get("state", "ACTIVE") == "ACTIVE"
        ]
        return max(members, key=_created, default=None)


def _page(items: list[Any], query: dict[str, list[str]], size_name: str,
          default: int, maximum: int) -> tuple[list[Any], str | None]:
    size = min(int(query.get(size_name, [default])[0] or default), maximum)
    start = int(query.get("pageToken", ["0"])[0] or 0)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def _handler(standin: GcpStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _not_found(self, what: str) -> None:
            self._reply(404, {"error": {"code": 404, "message": f"The resource '{what}' "
                                        "was not found", "status": "NOT_FOUND",
                                        "errors": [{"reason": "notFound",
                                                    "message": f"{what} not found"}]}})

        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            split = urlsplit(self.path)
            standin.requests.append(self.path)
            query = parse_qs(split.query)
            parts = [unquote(part) for part in split.path.strip("/").split("/")]
            if parts[:2] == ["compute", "v1"]:
                self._compute(parts[2:], query)
            elif parts[:1] == ["v1"]:
                self._artifact_registry(parts[1:], query)
            else:
                self._not_found(split.path)

        def _compute(self, parts: list[str], query: dict[str, list[str]]) -> None:
            if len(parts) == 4 and parts[0] == "projects" and parts[2:] == ["global",
                                                                          "images"]:
                project = parts[1]
                items, token = _page(standin.images.get(project, []), query,
                                     "maxResults", 500, 500)
                body: dict[str, Any] = {
                    "kind": "compute#imageList", "id": f"projects/{project}/global/images",
                    "items": items,
                    "selfLink": f"{standin.url}/compute/v1/projects/{project}/global/images",
                }
                if token:
                    body["nextPageToken"] = token
                self._reply(200, body)
                return
            if (len(parts) == 6 and parts[0] == "projects"
                    and parts[2:5] == ["global", "images", "family"]):
                head = standin.family_head(parts[1], parts[5])
                if head is None:
                    self._not_found(f"projects/{parts[1]}/global/images/family/{parts[5]}")
                    return
                self._reply(200, head)
                return
            if (len(parts) == 6 and parts[0] == "projects" and parts[2:4] == ["global",
                                                                          "images"]
                    and parts[5] == "getIamPolicy"):
                names = {image["name"] for image in standin.images.get(parts[1], [])}
                if parts[4] not in names:
                    self._not_found(f"projects/{parts[1]}/global/images/{parts[4]}")
                    return
                self._reply(200, standin.iam_policies.get((parts[1], parts[4]),
                                                          {"etag": "ACAB"}))
                return
            self._not_found("/".join(parts))

        def _artifact_registry(self, parts: list[str], query: dict[str, list[str]]) -> None:
            if len(parts) == 5 and parts[0] == "projects" and parts[4] == "repositories":
                project, location = parts[1], parts[3]
                names = standin.repositories.get((project, location), [])
                repositories = [
                    {"name": f"projects/{project}/locations/{location}/repositories/{name}",
                     "format": "DOCKER"} for name in names
                ]
                items, token = _page(repositories, query, "pageSize", 1000, 1000)
                self._reply(200, {"repositories": items,
                                  **({"nextPageToken": token} if token else {})})
                return
            if len(parts) == 7 and parts[0] == "projects" and parts[6] == "dockerImages":
                key = (parts[1], parts[3], parts[5])
                if key not in standin.docker_images:
                    self._not_found("/".join(parts[:6]))
                    return
                items, token = _page(standin.docker_images[key], query, "pageSize",
                                     100, 1000)
                self._reply(200, {"dockerImages": items,
                                  **({"nextPageToken": token} if token else {})})
                return
            self._not_found("/".join(parts))

    return Handler
