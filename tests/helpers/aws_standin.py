"""A loopback HTTP stand-in for the EC2 and ECR inventory calls, with real paging.

moto 5.2.1 returns every item in one response for EC2 DescribeImages and for ECR
DescribeRepositories and DescribeImages, and ignores MaxResults. This server pages the
way AWS does, so boto3 paginators can be tested through `endpoint_url` with no change
to the client. One server at `url` serves both services on path `/`. A request with an
`X-Amz-Target` header is ECR, and any other request is EC2.

What it follows:

- EC2 Query protocol, Version 2016-11-15, action DescribeImages. It reads `Owner.N`
  (an account id, `self`, or an alias matched against `imageOwnerAlias`),
  `IncludeDeprecated`, `IncludeDisabled`, `MaxResults` and `NextToken`. The response
  is a `DescribeImagesResponse` in the 2016-11-15 namespace whose `imagesSet` items
  carry imageId, imageLocation, imageState, imageOwnerId, imageOwnerAlias,
  creationDate, isPublic, architecture, imageType, name, rootDeviceType,
  virtualizationType, deprecationTime and tagSet. Errors use the EC2 shape
  `<Response><Errors><Error><Code>` with `<RequestID>`.
- Visibility as the DescribeImages reference documents it: disabled AMIs are left out
  unless IncludeDisabled is true, and deprecated AMIs are left out unless
  IncludeDeprecated is true, except that the owner always sees its own deprecated AMIs.
  An AMI the caller does not own is visible only when it is public.
- ECR JSON 1.1 protocol (`X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Action>`)
  for DescribeRepositories (registryId, maxResults, nextToken) and DescribeImages
  (registryId, repositoryName, filter.tagStatus, filter.imageStatus, maxResults,
  nextToken). Field names are the API's. Timestamps are epoch seconds as JSON numbers,
  which is how the JSON protocol sends them. `imageTags` is left out of an untagged
  image, as ECR does. Errors are `{"__type": ..., "message": ...}`.
- ECR filters: a missing `imageStatus` means ACTIVE only, as the DescribeImagesFilter
  reference states. A missing `tagStatus` means ANY, so tagged and untagged images are
  both returned. NOTE: the ECR reference gives no default for `tagStatus`, so returning
  both is the expected behaviour of an unfiltered DescribeImages, not a documented rule.
- Paging: a page contains min(MaxResults, `page_size`) items, so the server can return
  fewer items than requested, as AWS may. Without MaxResults or NextToken, EC2 returns
  every match in one response. ECR uses its documented default of 100 when maxResults
  is missing, capped by `page_size`. `nextToken` is absent from the last page. A token
  is opaque and only valid for the query that produced it.

What it leaves out: request signatures (any Authorization header is accepted),
DescribeImages Filters, ImageIds, ExecutableBy and DryRun, ECR repositoryNames and
imageIds, launch permissions other than public, other actions, MaxResults bounds,
eventual consistency and varying element order. An unimplemented parameter gets an
HTTP 400 `UnsupportedParameter` error (a code of this stand-in, not of AWS), so a test
cannot pass while the stand-in ignores part of the request.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

EC2_VERSION = "2016-11-15"
EC2_NAMESPACE = f"http://ec2.amazonaws.com/doc/{EC2_VERSION}/"
ECR_TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
ECR_DEFAULT_MAX_RESULTS = 100
ECR_TAG_STATUSES = ("TAGGED", "UNTAGGED", "ANY")
ECR_IMAGE_STATUSES = ("ACTIVE", "ARCHIVED", "ACTIVATING", "ANY")
_EC2_CONTENT_TYPE = "text/xml;charset=UTF-8"
_ECR_CONTENT_TYPE = "application/x-amz-json-1.1"

_EC2_PARAMETERS = {
    "Action",
    "Version",
    "IncludeDeprecated",
    "IncludeDisabled",
    "MaxResults",
    "NextToken",
}
_ECR_PARAMETERS = {
    "DescribeRepositories": {"registryId", "maxResults", "nextToken"},
    "DescribeImages": {
        "registryId",
        "repositoryName",
        "filter",
        "maxResults",
        "nextToken",
    },
}


@dataclass
class Ami:
    """One AMI as EC2 stores it, with `creation_date` in the EC2 string format."""

    image_id: str
    owner_id: str
    name: str
    creation_date: str = "2026-01-05T10:00:00.000Z"
    state: str = "available"
    public: bool = False
    owner_alias: str | None = None
    deprecation_time: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def is_deprecated(self, now: datetime) -> bool:
        if self.deprecation_time is None:
            return False
        return datetime.fromisoformat(self.deprecation_time) <= now


@dataclass
class Repository:
    """One ECR repository, with `created_at` in epoch seconds."""

    name: str
    registry_id: str
    created_at: float = 1767607200.0


@dataclass
class ContainerImage:
    """One ECR image, named by its manifest digest, with `pushed_at` in epoch seconds.

    `status` is the ECR imageStatus: ACTIVE, ARCHIVED or ACTIVATING.
    """

    registry_id: str
    repository_name: str
    digest: str
    tags: list[str] = field(default_factory=list)
    pushed_at: float = 1767607200.0
    size: int = 31_457_280
    media_type: str = "application/vnd.oci.image.manifest.v1+json"
    status: str = "ACTIVE"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stand-in received and the token it sent back.

    `params` are the decoded form fields for EC2 (all strings, for example
    `{"Owner.1": "self"}`) and the decoded JSON body for ECR. `next_token` is the token
    of the response, or None for the last page and for errors.
    """

    service: str
    action: str
    params: dict[str, Any]
    status: int
    next_token: str | None


@dataclass
class _Failure:
    code: str
    message: str
    status: int
    after: int


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass
class _Response:
    status: int
    content_type: str
    body: bytes
    next_token: str | None = None


class AwsStandIn:
    """A threaded HTTP server on 127.0.0.1 that serves EC2 and ECR inventory calls.

    Tests fill `amis`, `repositories` and `container_images`, point boto3 at `url`,
    and read `requests` afterwards. Use it as a context manager. The operating system
    chooses the port.
    """

    def __init__(
        self,
        account: str = "111122223333",
        region: str = "us-east-1",
        page_size: int = 1000,
    ) -> None:
        self.account = account
        self.region = region
        self.page_size = page_size
        self.amis: list[Ami] = []
        self.repositories: list[Repository] = []
        self.container_images: list[ContainerImage] = []
        self.requests: list[RecordedRequest] = []
        self._tokens: dict[str, tuple[tuple[Any, ...], int]] = {}
        self._failures: dict[tuple[str, str], _Failure] = {}
        self._served: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.standin = self  # type: ignore[attr-defined]
        # A short poll interval keeps shutdown, and so each test's teardown, quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def fail(
        self,
        service: str,
        action: str,
        code: str,
        *,
        status: int,
        message: str = "Request limit exceeded.",
        after: int = 0,
    ) -> None:
        """Fail every call of `action` on `service` after the first `after` calls."""
        self._failures[(service, action)] = _Failure(code, message, status, after)

    def requests_for(self, service: str, action: str) -> list[RecordedRequest]:
        with self._lock:
            recorded = list(self.requests)
        return [r for r in recorded if (r.service, r.action) == (service, action)]

    def handle(self, headers: Any, body: bytes) -> _Response:
        """Serve one request, record it, and return the response to send."""
        target = headers.get("X-Amz-Target")
        if target is None:
            service = "ec2"
            form = parse_qsl(body.decode(), keep_blank_values=True)
            params: dict[str, Any] = dict(form)
            action = params.get("Action", "")
        else:
            service = "ecr"
            params = {}
            action = target.removeprefix(ECR_TARGET_PREFIX)

        try:
            if service == "ecr":
                params = _decode_json(body)
            self._raise_planned_failure(service, action)
            if service == "ec2":
                response = self._serve_ec2(action, params)
            else:
                response = self._serve_ecr(action, params)
        except _ApiError as error:
            response = _ec2_error(error) if service == "ec2" else _ecr_error(error)

        recorded = RecordedRequest(
            service, action, params, response.status, response.next_token
        )
        with self._lock:
            self.requests.append(recorded)
        return response

    def _raise_planned_failure(self, service: str, action: str) -> None:
        with self._lock:
            self._served[(service, action)] += 1
            served = self._served[(service, action)]
        failure = self._failures.get((service, action))
        if failure is not None and served > failure.after:
            raise _ApiError(failure.status, failure.code, failure.message)

    def _page(
        self,
        items: Sequence[Any],
        query: tuple[Any, ...],
        max_results: int,
        token: str | None,
        bad_token_code: str,
    ) -> tuple[Sequence[Any], str | None]:
        start = 0
        if token is not None:
            with self._lock:
                issued = self._tokens.get(token)
            # NOTE: the error codes for an unknown token are a guess, because AWS
            # documents none for it on either API.
            if issued is None or issued[0] != query:
                raise _bad_request(bad_token_code, f"Invalid NextToken {token!r}.")
            start = issued[1]
        size = min(max_results, self.page_size)
        page = items[start : start + size]
        if start + size >= len(items):
            return page, None
        next_token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[next_token] = (query, start + size)
        return page, next_token

    # EC2

    def _serve_ec2(self, action: str, params: dict[str, str]) -> _Response:
        if params.get("Version") != EC2_VERSION:
            message = f"Version must be {EC2_VERSION}, not {params.get('Version')!r}."
            raise _bad_request("InvalidParameterValue", message)
        if action != "DescribeImages":
            raise _bad_request("InvalidAction", f"The action {action!r} is not valid.")
        for name in params:
            if name not in _EC2_PARAMETERS and not name.startswith("Owner."):
                raise _unsupported(name)

        owners = _numbered(params, "Owner")
        matches = [ami for ami in self.amis if self._ami_visible(ami, owners, params)]
        if "MaxResults" not in params and "NextToken" not in params:
            body = _describe_images_xml(matches, None)
            return _Response(200, _EC2_CONTENT_TYPE, body)

        query = (
            action,
            tuple(owners),
            _flag(params, "IncludeDeprecated"),
            _flag(params, "IncludeDisabled"),
        )
        page, token = self._page(
            matches,
            query,
            int(params.get("MaxResults", self.page_size)),
            params.get("NextToken"),
            "InvalidParameterValue",
        )
        body = _describe_images_xml(page, token)
        return _Response(200, _EC2_CONTENT_TYPE, body, token)

    def _ami_visible(self, ami: Ami, owners: list[str], params: dict[str, str]) -> bool:
        owned = ami.owner_id == self.account
        if owners and not any(_owner_matches(ami, owner, owned) for owner in owners):
            return False
        if not owned and not ami.public:
            return False
        if ami.state == "disabled" and not _flag(params, "IncludeDisabled"):
            return False
        # Owners always see their own deprecated AMIs, even without IncludeDeprecated.
        if ami.is_deprecated(datetime.now(UTC)) and not owned:
            return _flag(params, "IncludeDeprecated")
        return True

    # ECR

    def _serve_ecr(self, action: str, body: dict[str, Any]) -> _Response:
        known = _ECR_PARAMETERS.get(action)
        if known is None:
            message = f"Unknown operation {action!r}."
            raise _bad_request("UnknownOperationException", message)
        for name in body:
            if name not in known:
                raise _unsupported(name)
        registry_id = body.get("registryId", self.account)
        if action == "DescribeRepositories":
            items = [r for r in self.repositories if r.registry_id == registry_id]
            query: tuple[Any, ...] = (action, registry_id)
            result_key, render = "repositories", self._repository_json
        else:
            items = self._matching_images(registry_id, body)
            query = (
                action,
                registry_id,
                body["repositoryName"],
                json.dumps(body.get("filter"), sort_keys=True),
            )
            result_key, render = "imageDetails", _image_detail_json
        page, token = self._page(
            items,
            query,
            body.get("maxResults", ECR_DEFAULT_MAX_RESULTS),
            body.get("nextToken"),
            "InvalidParameterException",
        )
        document: dict[str, Any] = {result_key: [render(item) for item in page]}
        if token is not None:
            document["nextToken"] = token
        return _Response(200, _ECR_CONTENT_TYPE, json.dumps(document).encode(), token)

    def _matching_images(
        self, registry_id: str, body: dict[str, Any]
    ) -> list[ContainerImage]:
        repository = body.get("repositoryName")
        known = {(r.registry_id, r.name) for r in self.repositories}
        if (registry_id, repository) not in known:
            raise _bad_request(
                "RepositoryNotFoundException",
                f"The repository with name '{repository}' does not exist in the "
                f"registry with id '{registry_id}'",
            )
        requested_filter = body.get("filter") or {}
        for name in requested_filter:
            if name not in ("tagStatus", "imageStatus"):
                raise _unsupported(f"filter.{name}")
        tag_status = requested_filter.get("tagStatus", "ANY")
        image_status = requested_filter.get("imageStatus", "ACTIVE")
        if tag_status not in ECR_TAG_STATUSES or image_status not in ECR_IMAGE_STATUSES:
            message = f"Invalid filter {requested_filter!r}."
            raise _bad_request("InvalidParameterException", message)
        return [
            image
            for image in self.container_images
            if (image.registry_id, image.repository_name) == (registry_id, repository)
            and _tag_status_matches(image, tag_status)
            and image_status in ("ANY", image.status)
        ]

    def _repository_json(self, repository: Repository) -> dict[str, Any]:
        host = f"{repository.registry_id}.dkr.ecr.{self.region}.amazonaws.com"
        return {
            "repositoryArn": f"arn:aws:ecr:{self.region}:{repository.registry_id}:"
            f"repository/{repository.name}",
            "registryId": repository.registry_id,
            "repositoryName": repository.name,
            "repositoryUri": f"{host}/{repository.name}",
            "createdAt": repository.created_at,
            "imageTagMutability": "MUTABLE",
        }


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps botocore's pooled connections open between pages.
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        standin: AwsStandIn = self.server.standin  # type: ignore[attr-defined]
        response = standin.handle(self.headers, body)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the access log, because `requests` already records each call."""


def _decode_json(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        message = "The request body is not valid JSON."
        raise _bad_request("SerializationException", message) from None
    if not isinstance(document, dict):
        message = "The request body is not a JSON object."
        raise _bad_request("SerializationException", message)
    return document


def _bad_request(code: str, message: str) -> _ApiError:
    return _ApiError(400, code, message)


def _unsupported(name: str) -> _ApiError:
    message = f"The stand-in does not implement the parameter {name}."
    return _bad_request("UnsupportedParameter", message)


def _flag(params: dict[str, str], name: str) -> bool:
    return params.get(name, "").lower() == "true"


def _numbered(params: dict[str, str], prefix: str) -> list[str]:
    """Return the values of `Prefix.1`, `Prefix.2`, ... in index order."""
    indexed = [
        (int(name.split(".", 1)[1]), value)
        for name, value in params.items()
        if name.startswith(f"{prefix}.")
    ]
    return [value for _, value in sorted(indexed)]


def _owner_matches(ami: Ami, owner: str, owned: bool) -> bool:
    if owner == "self":
        return owned
    return owner in (ami.owner_id, ami.owner_alias)


def _tag_status_matches(image: ContainerImage, tag_status: str) -> bool:
    if tag_status == "TAGGED":
        return bool(image.tags)
    if tag_status == "UNTAGGED":
        return not image.tags
    return True


def _element(name: str, value: str | None) -> str:
    return "" if value is None else f"<{name}>{escape(value)}</{name}>"


def _ami_xml(ami: Ami) -> str:
    tags = "".join(
        f"<item>{_element('key', key)}{_element('value', value)}</item>"
        for key, value in ami.tags.items()
    )
    return (
        "<item>"
        + _element("imageId", ami.image_id)
        + _element("imageLocation", f"{ami.owner_id}/{ami.name}")
        + _element("imageState", ami.state)
        + _element("imageOwnerId", ami.owner_id)
        + _element("imageOwnerAlias", ami.owner_alias)
        + _element("creationDate", ami.creation_date)
        + _element("isPublic", "true" if ami.public else "false")
        + _element("architecture", "x86_64")
        + _element("imageType", "machine")
        + _element("name", ami.name)
        + _element("rootDeviceType", "ebs")
        + _element("virtualizationType", "hvm")
        + _element("deprecationTime", ami.deprecation_time)
        + f"<tagSet>{tags}</tagSet>"
        + "</item>"
    )


def _describe_images_xml(page: Sequence[Ami], next_token: str | None) -> bytes:
    items = "".join(_ami_xml(ami) for ami in page)
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<DescribeImagesResponse xmlns="{EC2_NAMESPACE}">'
        f"<requestId>{uuid.uuid4()}</requestId>"
        f"<imagesSet>{items}</imagesSet>"
        f"{_element('nextToken', next_token)}"
        "</DescribeImagesResponse>"
    )
    return document.encode()


def _ec2_error(error: _ApiError) -> _Response:
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error>{_element('Code', error.code)}"
        f"{_element('Message', error.message)}</Error></Errors>"
        f"<RequestID>{uuid.uuid4()}</RequestID></Response>"
    )
    return _Response(error.status, _EC2_CONTENT_TYPE, document.encode())


def _ecr_error(error: _ApiError) -> _Response:
    document = {"__type": error.code, "message": error.message}
    return _Response(error.status, _ECR_CONTENT_TYPE, json.dumps(document).encode())


def _image_detail_json(image: ContainerImage) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "registryId": image.registry_id,
        "repositoryName": image.repository_name,
        "imageDigest": image.digest,
        "imageSizeInBytes": image.size,
        "imagePushedAt": image.pushed_at,
        "imageManifestMediaType": image.media_type,
        "imageStatus": image.status,
    }
    # ECR leaves imageTags out of an untagged image rather than sending [].
    if image.tags:
        detail["imageTags"] = list(image.tags)
    return detail
