"""Turn Cloud Audit Logs entries for images into creation events.

One row per method, matched on the method name without its API version prefix
(`v1.`, `beta.`, `alpha.`), so `beta.compute.images.insert` is read like
`v1.compute.images.insert`. Compute writes are long-running operations that log a
first and a last entry with one `operation.id`. The last entry (or one that is both)
decides. A first entry alone is kept in the history under the error code
`incomplete-operation`, so that it never attributes an image. An entry whose
`protoPayload.status.code` is set and not 0 is a failed call and attributes nothing.

Events are keyed by `logName` and `insertId`, which Cloud Logging documents as the
identity of an entry, so the same entry delivered by a Storage sink and a Pub/Sub
push is stored once.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from imageprov.errors import RecordError
from imageprov.sources.fields import parse_log_time
from imageprov.model import (
    INCOMPLETE_OPERATION,
    CreationEvent,
    EventEffect,
    Principal,
    PrincipalKind,
    RecordOrigin,
)

SOURCE = "gcp-audit"
COMPUTE = "compute.googleapis.com"
ARTIFACT_REGISTRY = "artifactregistry.googleapis.com"
INCOMPLETE = INCOMPLETE_OPERATION
# Compute image resources are global: the region of their events and coverage.
GLOBAL = "global"

# google.rpc.Code, by number.
_CODES = {
    1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
    13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}
# Members that make an image usable by anyone (allUsers) or by any Google account.
PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})

_VERSION_PREFIX = re.compile(r"^(?:v\d+|beta|alpha)\.")
_DOCKER_IMAGE = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/repositories/"
    r"(?P<repository>[^/]+)/dockerImages/(?P<image>.+?)(?:@(?P<digest>sha256:[0-9a-f]{64})"
    r"|:(?P<tag>[^:@/]+))?$")
_SA_PROJECT = re.compile(r"@(?P<project>[a-z][a-z0-9-]*)\.iam\.gserviceaccount\.com$")


@dataclass(frozen=True)
class MethodRow:
    """One image method: its service, the method name without version, and effect.

    The effect of `images.insert` becomes copy or import from its request body, and
    that of `setIamPolicy` share.
    """

    service: str
    method: str
    effect: EventEffect


ROWS: tuple[MethodRow, ...] = (
    MethodRow(COMPUTE, "compute.images.insert", EventEffect.CREATE),
    MethodRow(COMPUTE, "compute.images.delete", EventEffect.DELETE),
    # Deprecating the head of a family makes launches of the family resolve to the
    # next image, so it is kept in the history beside the inserts.
    MethodRow(COMPUTE, "compute.images.deprecate", EventEffect.MODIFY),
    MethodRow(COMPUTE, "compute.images.setIamPolicy", EventEffect.SHARE),
    # Docker pushes are Data Access (DATA_WRITE) entries, written only where that
    # audit log is enabled for artifactregistry.googleapis.com.
    MethodRow(ARTIFACT_REGISTRY, "Docker-PutManifest", EventEffect.PUSH),
    MethodRow(ARTIFACT_REGISTRY, "Docker-DeleteManifest", EventEffect.DELETE),
)
BY_KEY = {(row.service, row.method): row for row in ROWS}

# The maximum length the store keeps per field.
_LIMITS = {"key": 300, "insertId": 128, "project": 128, "region": 64, "target": 256,
           "principal": 512, "callerIp": 256, "action": 160, "repository": 256,
           "tag": 256, "sourceImage": 256}


def method_of(payload: dict[str, Any]) -> MethodRow | None:
    """Return the row of an audit payload's method, or None for other methods."""
    service = payload.get("serviceName")
    method = payload.get("methodName")
    if not isinstance(service, str) or not isinstance(method, str):
        return None
    return BY_KEY.get((service, _VERSION_PREFIX.sub("", method)))


def parse_time(value: Any, location: str, index: int, field: str) -> datetime:
    """Parse an RFC 3339 time with `Z` or an offset; text without one is UTC.

    Raises:
        RecordError: the value is not a time.
    """
    return parse_log_time(value, location, index, field, "an RFC 3339")


def project_of(entry: dict[str, Any]) -> str | None:
    """Return the project an entry was logged in: from `logName`, else the resource."""
    log_name = entry.get("logName")
    if isinstance(log_name, str) and log_name.startswith("projects/"):
        return log_name.split("/", 2)[1] or None
    resource = entry.get("resource")
    labels = resource.get("labels") if isinstance(resource, dict) else None
    project = labels.get("project_id") if isinstance(labels, dict) else None
    return project if isinstance(project, str) and project else None


@functools.lru_cache(maxsize=4096)
def _decoded_log_id(log_name: str) -> str:
    return unquote(log_name.split("/logs/", 1)[1])


def log_id_of(log_name: Any) -> str:
    """Return the decoded LOG_ID of a log name (`cloudaudit.googleapis.com/activity`)."""
    if not isinstance(log_name, str) or "/logs/" not in log_name:
        return ""
    # A file contains few log names, so each is decoded once.
    return _decoded_log_id(log_name)


def docker_image_of(resource_name: Any) -> dict[str, str] | None:
    """Split an Artifact Registry Docker image resource name into its parts."""
    if not isinstance(resource_name, str):
        return None
    match = _DOCKER_IMAGE.match(resource_name)
    if match is None:
        return None
    return {key: unquote(value) for key, value in match.groupdict().items() if value}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _delegation_chain(delegation: Any) -> tuple[str, ...]:
    chain: list[str] = []
    for item in delegation if isinstance(delegation, list) else []:
        if not isinstance(item, dict):
            continue
        first = item.get("firstPartyPrincipal")
        link = _text(first.get("principalEmail")) if isinstance(first, dict) else None
        link = link or _text(item.get("principalSubject"))
        third = item.get("thirdPartyPrincipal")
        claims = third.get("thirdPartyClaims") if isinstance(third, dict) else None
        if link is None and isinstance(claims, dict):
            pairs = ",".join(f"{key}={value}" for key, value in sorted(claims.items()))
            link = f"third-party:{pairs}"
        if link:
            chain.append(link)
    return tuple(chain)


def principal_of(authentication: Any) -> Principal:
    """Build the caller from `authenticationInfo`.

    The id is the principal email, else `principalSubject`. A service account's
    OAuth client id, which equals its unique id, and the subject are aliases, so a
    policy may name either. `chain` lists the identities of
    `serviceAccountDelegationInfo` in the order delegation happened: the first is the
    identity that started the impersonation.
    """
    if not isinstance(authentication, dict):
        return Principal(kind=PrincipalKind.UNKNOWN, id="unknown")
    email = _text(authentication.get("principalEmail"))
    subject = _text(authentication.get("principalSubject"))
    oauth = authentication.get("oauthInfo")
    # NOTE: `oauthInfo.oauthClientId` is read as the unique id of a service account;
    # no captured entry with it was available to confirm the field's presence.
    client_id = _text(oauth.get("oauthClientId")) if isinstance(oauth, dict) else None
    third_party = authentication.get("thirdPartyPrincipal")
    ident = email or subject or ("third-party" if third_party else "unknown")

    if (email or "").endswith(".gserviceaccount.com") or (subject or "").startswith(
            "serviceAccount:"):
        kind = PrincipalKind.SERVICE_ACCOUNT
    elif (subject or "").startswith("principal://") or third_party:
        kind = PrincipalKind.FEDERATED
    elif email and "@" in email:
        kind = PrincipalKind.USER
    else:
        kind = PrincipalKind.UNKNOWN
    aliases = tuple(dict.fromkeys(
        alias for alias in (subject, client_id) if alias and alias != ident))
    chain = _delegation_chain(authentication.get("serviceAccountDelegationInfo"))
    account = None
    match = _SA_PROJECT.search(email or "")
    if match:
        account = match.group("project")
    return Principal(kind=kind, id=ident, account=account,
                     name=email.split("@", 1)[0] if email else None,
                     chain=chain, native_type=kind.value, aliases=aliases)


def error_code_of(status: Any, location: str, index: int) -> str | None:
    """Return the name of a failed call's `google.rpc.Code`, or None on success.

    Raises:
        RecordError: `status.code` is neither a number nor a code name.
    """
    if not isinstance(status, dict) or status.get("code") in (None, 0, "0", "OK"):
        return None
    code = status["code"]
    if isinstance(code, bool) or not isinstance(code, int | str):
        raise RecordError(location, index, "protoPayload.status.code",
                          f"expected a google.rpc.Code, got {code!r}")
    if isinstance(code, str) and not code.isdigit():
        return code
    return _CODES.get(int(code), f"code {code}")


def _members(request: Any) -> list[str]:
    policy = request.get("policy") if isinstance(request, dict) else None
    bindings = policy.get("bindings") if isinstance(policy, dict) else None
    members: list[str] = []
    for binding in bindings if isinstance(bindings, list) else []:
        values = binding.get("members") if isinstance(binding, dict) else None
        if isinstance(values, list):
            members.extend(member for member in values if isinstance(member, str))
    return sorted(set(members))


def _insert_effect(request: Any) -> tuple[EventEffect, str | None]:
    """Return the effect of an insert and the image it copies, from its request."""
    if not isinstance(request, dict):
        return EventEffect.CREATE, None
    source_image = _text(request.get("sourceImage"))
    if source_image:
        # A URL (`https://.../compute/v1/projects/P/global/images/N`) or a path.
        marker = source_image.find("projects/")
        return EventEffect.COPY, source_image[marker:] if marker >= 0 else source_image
    raw_disk = request.get("rawDisk")
    if isinstance(raw_disk, dict) and _text(raw_disk.get("source")):
        return EventEffect.IMPORT, None
    return EventEffect.CREATE, None


def _compute_target(entry: dict[str, Any], payload: dict[str, Any]) -> str | None:
    resource = entry.get("resource")
    labels = resource.get("labels") if isinstance(resource, dict) else None
    image_id = labels.get("image_id") if isinstance(labels, dict) else None
    if image_id in (None, ""):
        response = payload.get("response")
        image_id = response.get("targetId") if isinstance(response, dict) else None
    if isinstance(image_id, int) and not isinstance(image_id, bool):
        image_id = str(image_id)
    return image_id if isinstance(image_id, str) and image_id else None


def _check_lengths(values: dict[str, Any], location: str, index: int) -> None:
    for field, value in values.items():
        limit = _LIMITS[field]
        if isinstance(value, str) and len(value) > limit:
            raise RecordError(location, index, field,
                              f"value of {len(value)} characters is longer than {limit}")


def _operation_error(entry: dict[str, Any], payload: dict[str, Any], location: str,
                     index: int) -> str | None:
    """Return the error code of a failed call, `incomplete-operation` for a first
    entry without its last, or None for a completed call."""
    error_code = error_code_of(payload.get("status"), location, index)
    operation = entry.get("operation")
    if (error_code is None and isinstance(operation, dict)
            and operation.get("first") is True and operation.get("last") is not True):
        return INCOMPLETE
    return error_code


def _compute_fields(row: MethodRow, entry: dict[str, Any], payload: dict[str, Any],
                    first_request: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"target": _compute_target(entry, payload)}
    request = payload.get("request")
    if row.method == "compute.images.insert":
        body = request if isinstance(request, dict) and len(request) > 1 else first_request
        fields["effect"], fields["source_image"] = _insert_effect(body)
    elif row.method == "compute.images.setIamPolicy":
        # The request carries the whole new policy, which replaces every grant.
        fields["shared_with"] = tuple(_members(request))
        fields["unshared_from"] = ("*",)
    return fields


def _docker_fields(payload: dict[str, Any], location: str, index: int) -> dict[str, Any]:
    parts = docker_image_of(payload.get("resourceName"))
    if parts is None:
        raise RecordError(location, index, "protoPayload.resourceName",
                          f"not a Docker image name: {payload.get('resourceName')!r:.200}")
    return {
        "account": parts["project"], "region": parts["location"],
        "registry": f"{parts['location']}-docker.pkg.dev",
        "repository": f"{parts['project']}/{parts['repository']}/{parts['image']}",
        "target": parts.get("digest"), "tag": parts.get("tag"),
    }


def events_from_entry(entry: dict[str, Any], origin: RecordOrigin,
                      first_request: Any = None,
                      fallback_account: str | None = None) -> list[CreationEvent]:
    """Return the image event in one LogEntry, or an empty list.

    `first_request` is the request body of the operation's first entry, when the
    document contains it: the last entry of an insert keeps only the request's
    `@type`.

    Raises:
        RecordError: the entry names an image method but lacks a field it needs.
    """
    payload = entry.get("protoPayload")
    if not isinstance(payload, dict):
        return []
    row = method_of(payload)
    if row is None:
        return []
    location, index = origin.location, origin.index
    insert_id = entry.get("insertId")
    if not isinstance(insert_id, str) or not insert_id:
        raise RecordError(location, index, "insertId", "missing on an image event")
    log_name = entry.get("logName")
    if not isinstance(log_name, str) or not log_name:
        raise RecordError(location, index, "logName", "missing on an image event")
    time = parse_time(entry.get("timestamp"), location, index, "timestamp")
    project = project_of(entry) or fallback_account
    if project is None:
        raise RecordError(location, index, "logName", "names no project")
    error_code = _operation_error(entry, payload, location, index)

    fields: dict[str, Any] = {"account": project, "region": GLOBAL, "effect": row.effect}
    if row.service == COMPUTE:
        fields.update(_compute_fields(row, entry, payload, first_request))
    else:
        fields.update(_docker_fields(payload, location, index))
    # NOTE: a push named by tag (`IMAGE:TAG`, a resource-name form not confirmed in
    # captured entries) has no digest, so it is kept but joins no image.
    if fields["target"] is None and error_code is None and fields.get("tag") is None:
        field = ("resource.labels.image_id" if row.service == COMPUTE
                 else "protoPayload.resourceName")
        raise RecordError(location, index, field, "no image id on a successful call")

    metadata = payload.get("requestMetadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    # Some exports spell the field `callerIP`.
    source_ip = _text(metadata.get("callerIp")) or _text(metadata.get("callerIP"))
    principal = principal_of(payload.get("authenticationInfo"))
    key = f"gcp:{log_name}:{insert_id}"
    action = payload["methodName"]
    _check_lengths({"key": key, "insertId": insert_id, "project": fields["account"],
                    "region": fields["region"], "target": fields["target"],
                    "principal": principal.id, "callerIp": source_ip, "action": action,
                    "repository": fields.get("repository"), "tag": fields.get("tag"),
                    "sourceImage": fields.get("source_image")}, location, index)
    return [CreationEvent(
        source=SOURCE, key=key, event_id=insert_id, time=time, action=action,
        platform="gcp", principal=principal, source_ip=source_ip,
        user_agent=_text(metadata.get("callerSuppliedUserAgent")),
        error_code=error_code, origin=origin, **fields,
    )]


def span_scope(entry: dict[str, Any], project: str) -> tuple[str, str] | None:
    """Return the (project, region) an audit entry shows the logs cover, or None.

    Artifact Registry Data Access entries cover their repository's location, because
    Docker pushes are logged there. Every other audit entry covers the project's
    global Compute image events, which Admin Activity always logs.
    """
    payload = entry.get("protoPayload")
    log_id = log_id_of(entry.get("logName"))
    if not isinstance(payload, dict) or not log_id.startswith("cloudaudit.googleapis.com/"):
        return None
    if (payload.get("serviceName") == ARTIFACT_REGISTRY
            and log_id == "cloudaudit.googleapis.com/data_access"):
        parts = docker_image_of(payload.get("resourceName"))
        location = parts["location"] if parts else None
        if location is None:
            resource = entry.get("resource")
            labels = resource.get("labels") if isinstance(resource, dict) else None
            location = _text(labels.get("location")) if isinstance(labels, dict) else None
        return (project, location) if location else None
    return (project, GLOBAL)
