"""The ASGI application of the gate: routes, bearer tokens and error bodies."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from imageprov import __version__
from imageprov.api import admission
from imageprov.api.gate import Answer, Gate
from imageprov.api.openapi import describe
from imageprov.api.references import InvalidReference, parse_reference

logger = logging.getLogger(__name__)

_JSON = "application/json"
_VERDICTS = "/v1/verdicts/"
_CONTENT_TYPE = (b"content-type", b"application/json")
# etcd stores objects of up to 1.5 MiB by default, and a review carries the object
# and the old object. A decision body contains one reference.
MAX_REVIEW_BYTES = 4 * 1024 * 1024
MAX_DECISION_BYTES = 16 * 1024


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """Return the request body, raising _TooLarge past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)
_UNAUTHORIZED = orjson.dumps({"error": "missing, invalid or revoked bearer token"})
_UNAVAILABLE = orjson.dumps({"error": "the store cannot be read; try again"})


def _json(status: int, document: Any) -> Response:
    return Response(orjson.dumps(document), status_code=status, media_type=_JSON)


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


class GateApp:
    """The gate's ASGI application: a fast path for fresh cached verdicts in front of
    the Starlette routes.

    A `GET /v1/verdicts/{image}` with a valid token whose answer is cached and fresh
    is sent from here, before routing. On this route the framework's request and
    response objects cost about 40% of the throughput (benchmarks/bench_gate.py),
    and every other request, miss or error goes through the routes unchanged.
    """

    def __init__(self, gate: Gate, routes: Starlette) -> None:
        self.gate = gate
        self.routes = routes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            if path.startswith(_VERDICTS):
                answer = self.gate.cached(path[len(_VERDICTS):])
                if answer is not None and self._authorized(scope["headers"]):
                    await send({"type": "http.response.start", "status": 200,
                                "headers": [_CONTENT_TYPE, (b"content-length",
                                                            b"%d" % len(answer.body))]})
                    await send({"type": "http.response.body", "body": answer.body})
                    return
        await self.routes(scope, receive, send)

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        for name, value in headers:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                token = token.strip()
                return (scheme.lower() == "bearer" and bool(token)
                        and self.gate.token_name(token) is not None)
        return False


def create_app(gate: Gate) -> GateApp:
    """Build the gate's ASGI application around `gate`."""
    handlers = _Handlers(gate)
    routes = [
        Route("/healthz", handlers.health, methods=["GET"]),
        Route("/openapi.json", handlers.openapi, methods=["GET"]),
        Route("/v1/verdicts/{image:path}", handlers.verdict, methods=["GET"]),
        Route("/v1/decisions", handlers.decisions, methods=["POST"]),
        Route("/v1/admission", handlers.admit, methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(gate.start)
        # The answers loaded at start live as long as the process; frozen, they are
        # left out of the collector's full passes, which would otherwise walk
        # every one of them and delay requests.
        gc.freeze()
        watcher = asyncio.create_task(gate.watch())
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    return GateApp(gate, Starlette(routes=routes, lifespan=lifespan))


class _Handlers:
    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.openapi_body = orjson.dumps(describe(__version__))

    async def _authenticate(self, request: Request) -> Response | None:
        """Return a 401 response unless the request carries a valid bearer token."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            logger.debug("rejected %s %s: no bearer token", request.method,
                         request.url.path)
            return _unauthorized()
        if self.gate.token_name(token) is not None:
            return None
        try:
            name = await anyio.to_thread.run_sync(self.gate.lookup_token, token)
        except Exception:  # noqa: BLE001 - the store failure is logged by the watcher
            return Response(_UNAVAILABLE, status_code=503, media_type=_JSON)
        if name is None:
            # The token itself is never logged, not even a prefix of it.
            logger.debug("rejected %s %s: invalid or revoked token", request.method,
                         request.url.path)
            return _unauthorized()
        return None

    async def health(self, _request: Request) -> Response:
        health = self.gate.health()
        return _json(503 if self.gate.store_error else 200, health)

    async def openapi(self, request: Request) -> Response:
        if (denied := await self._authenticate(request)) is not None:
            return denied
        return Response(self.openapi_body, media_type=_JSON)

    async def verdict(self, request: Request) -> Response:
        if (denied := await self._authenticate(request)) is not None:
            return denied
        text = request.path_params["image"]
        # The hot path: a fresh cached answer is sent without another step.
        answer = self.gate.cached(text)
        if answer is None:
            return await self._decide(text)
        return Response(answer.body, media_type=_JSON)

    async def decisions(self, request: Request) -> Response:
        if (denied := await self._authenticate(request)) is not None:
            return denied
        try:
            body = orjson.loads(await _read_body(request, MAX_DECISION_BYTES))
        except _TooLarge:
            return _error(413, f"the body is larger than {MAX_DECISION_BYTES} bytes")
        except orjson.JSONDecodeError as error:
            return _error(400, f"the body is not JSON: {error}")
        if not isinstance(body, dict) or set(body) != {"image"}:
            return _error(422, 'the body must be an object with one field, "image"')
        if not isinstance(body["image"], str):
            return _error(422, '"image" must be a string')
        return await self._decide(body["image"])

    async def _decide(self, text: str) -> Response:
        try:
            reference = parse_reference(text)
        except InvalidReference as error:
            return _error(422, str(error))
        try:
            answer = await self.gate.decide(reference)
        except Exception:
            logger.exception("decision for %r failed", text)
            return Response(_UNAVAILABLE, status_code=503, media_type=_JSON)
        # GateApp sends cached GET answers without a log line; denials here are logged.
        if not answer.allowed:
            logger.info("denied image=%s ref=%s status=%s", text, answer.ref, answer.status)
        return Response(answer.body, media_type=_JSON)

    async def admit(self, request: Request) -> Response:
        if (denied := await self._authenticate(request)) is not None:
            return denied
        try:
            review = admission.parse_review(
                orjson.loads(await _read_body(request, MAX_REVIEW_BYTES)))
        except _TooLarge:
            return _error(413, f"the body is larger than {MAX_REVIEW_BYTES} bytes")
        except orjson.JSONDecodeError as error:
            return _error(400, f"the body is not JSON: {error}")
        except admission.InvalidReview as error:
            return _error(400, str(error))
        try:
            answers = await self._judge_images(review)
        except Exception:
            logger.exception("admission uid=%s failed", review.uid)
            return Response(_UNAVAILABLE, status_code=503, media_type=_JSON)
        return _json(200, self._review_response(review, answers))

    async def _judge_images(self, review: admission.AdmissionRequest) -> dict[str, Answer | str]:
        """Return the answer for each distinct image, or why its reference is invalid."""
        found: dict[str, Answer | str] = {}
        pending: dict[str, Any] = {}
        for item in review.images:
            if item.image in found or item.image in pending:
                continue
            try:
                reference = parse_reference(item.image)
            except InvalidReference as error:
                found[item.image] = str(error)
                continue
            pending[item.image] = self.gate.decide(reference)
        results = await asyncio.gather(*pending.values())
        found.update(zip(pending, results, strict=True))
        return found

    def _review_response(self, review: admission.AdmissionRequest,
                         answers: dict[str, Answer | str]) -> dict[str, Any]:
        denied: list[str] = []
        notes: list[str] = []
        for item in review.images:
            answer = answers[item.image]
            if isinstance(answer, str):
                denied.append(f"{item.label} image {item.image}: invalid reference: {answer}")
                continue
            named = item.image if answer.ref in (None, item.image) else (
                f"{item.image} ({answer.ref})")
            if not answer.allowed:
                denied.append(f"{item.label} image {named}: {answer.status}: {answer.reason}")
            elif answer.status in ("unknown", "pending"):
                notes.append(f"{item.label} image {named} is {answer.status} and admitted "
                             f"because {self.gate.settings.unknown_images} is configured")
        mode = self.gate.settings.admission.mode_for(review.namespace)
        where = f"{review.kind} {review.namespace or '-'}/{review.name or '-'}"
        logger.info("admission uid=%s object=%s operation=%s mode=%s images=%d denied=%d",
                    review.uid, where, review.operation, mode, len(review.images),
                    len(denied))
        if not denied:
            return admission.review_response(review.uid, True, warnings=notes)
        message = f"imageprov denied {len(denied)} image(s): " + "; ".join(denied)
        if mode == "enforce":
            return admission.review_response(review.uid, False, message)
        annotations = {"denied-images": message[:4096]}
        if mode == "warn":
            warnings = [f"imageprov would deny {text}" for text in denied] + notes
            return admission.review_response(review.uid, True, warnings=warnings,
                                             annotations=annotations)
        return admission.review_response(review.uid, True, warnings=notes,
                                         annotations=annotations)


def _unauthorized() -> Response:
    return Response(_UNAUTHORIZED, status_code=401, media_type=_JSON,
                    headers={"WWW-Authenticate": "Bearer"})
