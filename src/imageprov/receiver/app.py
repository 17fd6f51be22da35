"""An ASGI app that stores registry notifications and Docker Hub webhooks.

Routes:

- `POST /registry/<name>`: a distribution notification envelope from the
  configured registry `<name>`, authenticated by a shared secret in a header;
- `POST /dockerhub/<secret>`: a Docker Hub webhook payload, which carries no
  header of its own, so the secret is the last path segment;
- `GET /healthz`.

A body is stored with `Store.save_documents`, the path every log file takes,
before the response is sent. A 2xx means the events are in the database, so
nothing accepted is lost when inventory or evaluation is down, and any other
status makes the registry send the event again. A body read before (same bytes) is
acknowledged and not stored twice, and an event redelivered in another envelope
is kept once under its id. A body with no manifest event (only blob or pull
events) is acknowledged and not stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.exc import SQLAlchemyError

from imageprov import formats
from imageprov.sources.oci import dockerhub, notifications
from imageprov.store import Store

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_JSON_TYPES = frozenset({"application/json", *notifications.CONTENT_TYPES})


@dataclass(frozen=True)
class ReceiverSettings:
    """What the receiver accepts; `repr` shows no secret.

    `registries` maps a path name to the registry name images are filed under.
    `header` carries the secret, as `Bearer <secret>` when it is `Authorization`.
    """

    registries: dict[str, str]
    secret: str = field(repr=False)
    header: str = "Authorization"
    dockerhub_secret: str | None = field(default=None, repr=False)
    max_body: int = 4 * 2**20


class _Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class NotificationReceiver:
    """The ASGI application; `store` is written from a worker thread."""

    def __init__(self, store: Store, settings: ReceiverSettings) -> None:
        if not settings.secret:
            raise ValueError("the receiver needs a shared secret")
        self.store = store
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            status, body = await self._route(scope, receive)
        except _Reject as rejection:
            status, body = rejection.status, {"error": rejection.message}
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": orjson.dumps(body)})

    async def _route(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        method, path = scope["method"], scope["path"]
        if path == "/healthz" and method in ("GET", "HEAD"):
            return 200, {"status": "ok"}
        parts = path.strip("/").split("/")
        if len(parts) != 2 or parts[0] not in ("registry", "dockerhub"):
            raise _Reject(404, "not found: POST to /registry/<name> or /dockerhub/<secret>")
        if method != "POST":
            raise _Reject(405, "only POST is accepted here")
        headers = {name.decode("latin-1").lower(): value.decode("latin-1")
                   for name, value in scope.get("headers", [])}
        client = (scope.get("client") or ("?", 0))[0]
        if parts[0] == "registry":
            registry = self.settings.registries.get(parts[1])
            if registry is None:
                raise _Reject(404, f"no registry named {parts[1][:64]!r} is configured")
            self._check_header(headers, client, parts[1])
            body = await self._body(receive, headers)
            _check_type(headers)
            return await self._store(body, f"registry/{parts[1]}", registry,
                                     notifications.FORMAT.name)
        if not self.settings.dockerhub_secret or not hmac.compare_digest(
                parts[1].encode(), self.settings.dockerhub_secret.encode()):
            logger.warning("receiver: Docker Hub webhook from %s with a wrong secret",
                           client)
            raise _Reject(401, "unknown webhook path")
        body = await self._body(receive, headers)
        return await self._store(body, "dockerhub", dockerhub.REGISTRY,
                                 dockerhub.FORMAT.name)

    def _check_header(self, headers: dict[str, str], client: str, name: str) -> None:
        given = headers.get(self.settings.header.lower(), "")
        expected = self.settings.secret
        if self.settings.header.lower() == "authorization":
            expected = f"Bearer {expected}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            logger.warning("receiver: notification for %s from %s without the shared "
                           "secret in %s", name, client, self.settings.header)
            raise _Reject(401, f"missing or wrong shared secret in {self.settings.header}")

    async def _body(self, receive: Receive, headers: dict[str, str]) -> bytes:
        limit = self.settings.max_body
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _Reject(413, f"body larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Reject(400, "client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Reject(413, f"body larger than {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _store(self, body: bytes, route: str, registry: str,
                     format_name: str) -> tuple[int, dict[str, Any]]:
        sha256 = hashlib.sha256(body).hexdigest()
        received = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        location = f"receiver:{route}/{received}-{sha256[:12]}"
        document = formats.read(body, location, registry, format_name)
        unreadable = [p for p in document.problems if p.index < 0]
        if unreadable:
            raise _Reject(400, str(unreadable[0]))
        if not document.events and not document.problems:
            return 202, {"stored": 0, "ignored": document.records}
        loop = asyncio.get_running_loop()
        try:
            new = await loop.run_in_executor(
                None, self.store.save_documents, [(document, sha256)])
        except SQLAlchemyError as error:
            # The sender retries; the error names no secret of the database URL.
            logger.error("receiver: storing %s failed: %s", location,
                         type(error).__name__)
            raise _Reject(503, "the database is unavailable; send again later") from None
        for problem in document.problems:
            logger.warning("receiver: quarantined %s", problem)
        logger.info("receiver: stored %s events=%d new_events=%d quarantined=%d",
                    location, len(document.events), new, len(document.problems))
        return 200, {"stored": len(document.events), "new": new,
                     "quarantined": len(document.problems)}


def _check_type(headers: dict[str, str]) -> None:
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type not in _JSON_TYPES:
        raise _Reject(415, f"unsupported content type {content_type[:100]!r}; expected "
                           "application/vnd.docker.distribution.events.v1+json, v2+json "
                           "or application/json")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
