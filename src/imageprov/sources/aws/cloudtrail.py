"""Turn CloudTrail records into creation events, following the event table."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from imageprov.errors import RecordError
from imageprov.sources.fields import json_type, parse_log_time
from imageprov.model import (
    CreationEvent,
    EventEffect,
    Principal,
    PrincipalKind,
    RecordOrigin,
)
from imageprov.sources.aws import event_table
from imageprov.sources.aws.event_table import EventRow, value_at, values_at

SOURCE = "cloudtrail"

_PRINCIPAL_KINDS = {
    "Root": PrincipalKind.ROOT,
    "IAMUser": PrincipalKind.USER,
    "AssumedRole": PrincipalKind.ROLE_SESSION,
    "Role": PrincipalKind.ROLE_SESSION,
    "FederatedUser": PrincipalKind.FEDERATED,
    "SAMLUser": PrincipalKind.FEDERATED,
    "WebIdentityUser": PrincipalKind.FEDERATED,
    "IdentityCenterUser": PrincipalKind.USER,
    "AWSService": PrincipalKind.SERVICE,
    "AWSAccount": PrincipalKind.ACCOUNT,
}


def parse_time(value: Any, location: str, index: int, field: str) -> datetime:
    """Parse a CloudTrail time.

    CloudTrail writes UTC with a `Z` suffix. Exports that reformat it (a space for
    the `T`, no offset) are read as UTC too, since the field is defined as UTC.
    """
    return parse_log_time(value, location, index, field)


def event_time_of(record: dict[str, Any]) -> Any:
    """Return a record's event time; Logstash exports move it to `@timestamp`."""
    when = record.get("eventTime")
    if when is None and "@version" in record:
        when = record.get("@timestamp")
    return when


# Fields of `userIdentity` that name the caller, always strings in CloudTrail.
_IDENTITY_TEXT = ("type", "arn", "accountId", "principalId", "userName", "invokedBy")
# Members of `userIdentity.sessionContext` that name the caller's role, with their
# type. A value of another type would hide the role that issued a session.
_CONTEXT_SHAPES = (("sessionIssuer", dict), ("sourceIdentity", str),
                   ("webIdFederationData", dict))
_JSON_NAMES = {dict: "an object", str: "a string"}


def _check_identity(identity: dict[str, Any] | None, location: str, index: int) -> None:
    """Raise RecordError for the first field of `userIdentity` that names the caller
    or its role with a value of another type.

    The text fields come first, the session issuer's ARN among them, then the
    containers of the session context.
    """
    if identity is None:
        return
    for name in _IDENTITY_TEXT:
        value = identity.get(name)
        if value is not None and not isinstance(value, str):
            raise RecordError(location, index, f"userIdentity.{name}",
                              f"expected a string, got {json_type(value)}")
    context = identity.get("sessionContext")
    if not isinstance(context, dict):
        if context is not None:
            raise RecordError(location, index, "userIdentity.sessionContext",
                              f"expected an object, got {json_type(context)}")
        return
    issuer = context.get("sessionIssuer")
    arn = issuer.get("arn") if isinstance(issuer, dict) else None
    if arn is not None and not isinstance(arn, str):
        raise RecordError(location, index, "userIdentity.sessionContext.sessionIssuer.arn",
                          f"expected a string, got {json_type(arn)}")
    for name, expected in _CONTEXT_SHAPES:
        value = context.get(name)
        if value is not None and not isinstance(value, expected):
            raise RecordError(location, index, f"userIdentity.sessionContext.{name}",
                              f"expected {_JSON_NAMES[expected]}, got {json_type(value)}")


def principal_of(identity: Any) -> Principal:
    """Build the acting principal from a record's `userIdentity`."""
    if not isinstance(identity, dict):
        return Principal(kind=PrincipalKind.UNKNOWN, id="unknown")
    native_type = identity.get("type")
    kind = _PRINCIPAL_KINDS.get(native_type, PrincipalKind.UNKNOWN)
    invoked_by = identity.get("invokedBy") or None
    context = identity.get("sessionContext")
    context = context if isinstance(context, dict) else {}
    issuer_block = context.get("sessionIssuer")
    issuer_block = issuer_block if isinstance(issuer_block, dict) else {}
    issuer = issuer_block.get("arn") or None

    # The role path is dropped from userIdentity.arn but kept in the issuer ARN,
    # so the issuer is the stable name of a role; the session name is chosen by
    # whoever assumed it.
    chain: list[str] = []
    if issuer:
        chain.append(issuer)
    source_identity = context.get("sourceIdentity")
    if isinstance(source_identity, str) and source_identity:
        chain.append(source_identity)
    web_identity = context.get("webIdFederationData")
    if isinstance(web_identity, dict) and web_identity.get("federatedProvider"):
        chain.append(str(web_identity["federatedProvider"]))

    arn = identity.get("arn")
    name = identity.get("userName")
    if kind is PrincipalKind.ROLE_SESSION and isinstance(arn, str) and "/" in arn:
        name = arn.rsplit("/", 1)[1]
    ident = arn or identity.get("principalId") or invoked_by or "unknown"
    if kind is PrincipalKind.SERVICE and invoked_by:
        ident = invoked_by
    return Principal(
        kind=kind,
        id=str(ident),
        account=identity.get("accountId") or None,
        name=name if isinstance(name, str) else None,
        issuer=issuer,
        chain=tuple(chain),
        invoked_by=invoked_by,
        native_type=native_type if isinstance(native_type, str) else None,
    )


def record_account(record: dict[str, Any]) -> str | None:
    """Return the account that received this copy of the record."""
    account = record.get("recipientAccountId")
    if isinstance(account, str) and account:
        return account
    identity = record.get("userIdentity")
    if isinstance(identity, dict):
        account = identity.get("accountId")
        if isinstance(account, str) and account:
            return account
    return None


def _launch_permission_changes(params: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Return the grantees added to and removed from an AMI's launch permissions.

    A grantee is an account id, an organisation or unit ARN, or `all` for public.
    """
    added: list[str] = []
    removed: list[str] = []
    permission = params.get("launchPermission")
    if permission is not None and not isinstance(permission, dict):
        raise _Shape("requestParameters.launchPermission", "an object", permission)
    if isinstance(permission, dict):
        for verb, bucket in (("add", added), ("remove", removed)):
            block = permission.get(verb)
            items = block.get("items") if isinstance(block, dict) else block
            if isinstance(items, dict):
                # One grant written without its list still grants.
                items = [items]
            if items is not None and not isinstance(items, list):
                raise _Shape(f"requestParameters.launchPermission.{verb}.items",
                             "an array", items)
            for item in items or []:
                bucket.extend(_grantees(item))
    # The CLI short form sends OperationType with UserId.N and UserGroup.N.
    operation = params.get("operationType")
    if isinstance(operation, str):
        bucket = added if operation.lower() == "add" else removed
        bucket.extend(_grantees({"userId": params.get("userId")}))
        bucket.extend(_grantees({"group": params.get("userGroup")}))
    return added, removed


class _Shape(Exception):
    """A field of a record has a type that its reader cannot use."""

    def __init__(self, field: str, expected: str, value: Any) -> None:
        super().__init__(f"expected {expected}, got {json_type(value)}")
        self.field = field


def _grantees(item: Any) -> list[str]:
    if not isinstance(item, dict):
        return []
    found: list[str] = []
    for key in ("userId", "group", "groups", "organizationArn", "organizationalUnitArn"):
        value = item.get(key)
        values = value.get("items") if isinstance(value, dict) else value
        for one in values if isinstance(values, list) else [values]:
            if isinstance(one, dict):
                one = next(iter(one.values()), None)
            if not isinstance(one, str) or not one:
                continue
            # `all` is the only launch-permission group EC2 has; it means public.
            if key in ("group", "groups"):
                if one.lower() == "all":
                    found.append("all")
                continue
            found.append(one)
    return found


def _ecr_registry(registry_id: Any, account: str, region: str, row: EventRow) -> str:
    if row.event_source == event_table.ECR_PUBLIC:
        return "public.ecr.aws"
    owner = registry_id if isinstance(registry_id, str) and registry_id else account
    return f"{owner}.dkr.ecr.{region}.amazonaws.com"


def _manifest_digest(record: dict[str, Any]) -> str | None:
    """Return the digest of the manifest a PutImage call sent.

    CloudTrail keeps the manifest text; the digest is the SHA-256 of those bytes.
    It is used only when the response carries no digest.
    """
    manifest = value_at(record, "requestParameters.imageManifest")
    if not isinstance(manifest, str):
        return None
    return "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()


# The maximum length the store keeps per field. Real records stay far below these.
_LIMITS = {"eventID": 128, "recipientAccountId": 128, "awsRegion": 64,
           "userIdentity.arn": 512}
_DEFAULT_LIMIT = 256


def _check_lengths(record: dict[str, Any], location: str, index: int,
                   values: dict[str, Any]) -> None:
    for field, value in values.items():
        limit = _LIMITS.get(field, _DEFAULT_LIMIT)
        if isinstance(value, str) and len(value) > limit:
            raise RecordError(location, index, field,
                              f"value of {len(value)} characters is longer than {limit}")


def events_from_record(
    record: dict[str, Any], origin: RecordOrigin, fallback_account: str | None = None
) -> list[CreationEvent]:
    """Return the image events in one CloudTrail record, or an empty list.

    Raises:
        RecordError: the record is an image event but lacks a field it needs.
    """
    row = event_table.lookup(record.get("eventSource"), record.get("eventName"))
    if row is None:
        return []
    location, index = origin.location, origin.index
    event_id = record.get("eventID")
    if event_id is not None and not isinstance(event_id, str):
        raise RecordError(location, index, "eventID",
                          f"expected a string, got {json_type(event_id)}")
    if not event_id:
        raise RecordError(location, index, "eventID", "missing on an image event")
    time = parse_time(event_time_of(record), location, index, "eventTime")
    account = record_account(record) or fallback_account
    if account is None:
        raise RecordError(location, index, "recipientAccountId", "no account in record")
    region = record.get("awsRegion")
    if not isinstance(region, str) or not region:
        raise RecordError(location, index, "awsRegion", "missing on an image event")

    identity = record.get("userIdentity")
    if identity is not None and not isinstance(identity, dict):
        raise RecordError(location, index, "userIdentity",
                          f"expected an object, got {json_type(identity)}")
    _check_identity(identity, location, index)

    error_code = record.get("errorCode")
    if error_code is not None and not isinstance(error_code, str):
        # A false or zero code would otherwise pass as a successful call.
        raise RecordError(location, index, "errorCode",
                          f"expected a string, got {json_type(error_code)}")
    error_code = error_code or None
    effect = row.effect
    shared: tuple[str, ...] = ()
    unshared: tuple[str, ...] = ()
    if row.event_name == "ModifyImageAttribute":
        params = record.get("requestParameters")
        try:
            added, removed = _launch_permission_changes(
                params if isinstance(params, dict) else {})
        except _Shape as error:
            raise RecordError(location, index, error.field, str(error)) from None
        shared, unshared = tuple(added), tuple(removed)
        if shared:
            effect = EventEffect.SHARE
        elif unshared:
            effect = EventEffect.UNSHARE
    elif row.event_name == "ResetImageAttribute":
        # launchPermission is the only attribute this call resets, and the reset
        # makes the image private: every grant is removed.
        unshared = ("*",)
        effect = EventEffect.UNSHARE

    source_image = value_at(record, row.source_image)
    source_region = value_at(record, row.source_region)
    registry_id = value_at(record, row.registry)
    repository = value_at(record, row.repository)
    tag = value_at(record, row.tag)
    for path, value in ((row.source_image, source_image), (row.source_region, source_region),
                        (row.registry, registry_id), (row.repository, repository),
                        (row.tag, tag)):
        if value is not None and not isinstance(value, str):
            raise RecordError(location, index, path,
                              f"expected a string, got {json_type(value)}")
    found = values_at(record, row.target)
    targets = [t for t in found if isinstance(t, str) and t]
    wrong = [t for t in found if t is not None and not isinstance(t, str)]
    if wrong and not targets:
        raise RecordError(location, index, row.target,
                          f"expected a string, got {json_type(wrong[0])}")
    if not targets and row.effect is EventEffect.PUSH and error_code is None:
        digest = _manifest_digest(record)
        targets = [digest] if digest else []
    if not targets:
        if error_code is not None:
            # A failed call names no new image; keep it so that history shows the try.
            targets = [None]  # type: ignore[list-item]
        else:
            raise RecordError(location, index, row.target, "missing on a successful call")

    principal = principal_of(identity)
    _check_lengths(record, location, index, {
        "eventID": event_id, "recipientAccountId": account, "awsRegion": region,
        "errorCode": error_code, "sourceIPAddress": record.get("sourceIPAddress"),
        row.target: next(iter(targets), None), row.repository or "repository": repository,
        row.tag or "tag": tag, row.source_image or "sourceImageId": source_image,
        "userIdentity.arn": principal.id,
    })
    base_key = f"{SOURCE}:{account}:{event_id}"
    registry = None
    if row.registry or row.repository:
        registry = _ecr_registry(registry_id, account, region, row)
    repositories = values_at(record, row.repository) if row.repository else []
    user_agent = record.get("userAgent")
    source_ip = record.get("sourceIPAddress")
    for field, value in (("sourceIPAddress", source_ip), ("userAgent", user_agent)):
        # A caller address of another type would pass as no address at all, and no
        # network check could hold against it.
        if value is not None and not isinstance(value, str):
            raise RecordError(origin.location, origin.index, field,
                              f"expected a string, got {json_type(value)}")

    events = []
    for position, target in enumerate(targets):
        key = base_key if len(targets) == 1 else f"{base_key}#{position}"
        if len(repositories) == len(targets) and len(targets) > 1:
            repository = repositories[position]
        events.append(
            CreationEvent(
                source=SOURCE,
                key=key,
                event_id=event_id,
                time=time,
                action=f"{row.event_source}:{row.event_name}",
                effect=effect,
                platform="aws",
                account=account,
                region=region,
                principal=principal,
                source_ip=source_ip if isinstance(source_ip, str) else None,
                user_agent=user_agent if isinstance(user_agent, str) else None,
                target=target,
                registry=registry,
                repository=repository if isinstance(repository, str) else None,
                tag=tag if isinstance(tag, str) else None,
                source_image=source_image,
                source_region=source_region,
                shared_with=shared,
                unshared_from=unshared,
                error_code=str(error_code) if error_code is not None else None,
                origin=origin,
            )
        )
    return events
