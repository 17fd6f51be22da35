"""Who made an Azure call, from the token claims the Activity Log keeps.

Claim keys come both as short JWT names (`oid`, `upn`, `appid`) and as the SAML
URIs ARM writes (`http://schemas.microsoft.com/identity/claims/objectidentifier`).
A user is named by UPN, with the object id as an alias. A service principal is
named by its application (client) id, with the object id as an alias. A managed
identity is named by the resource id in `xms_mirid`, with both ids as aliases. A policy's principal patterns
match the id or any alias, so a builder may name whichever it knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imageprov.model import Principal, PrincipalKind
from imageprov.sources.azure.resource_ids import canonical, dashed_guid

_OBJECT_ID = ("oid", "http://schemas.microsoft.com/identity/claims/objectidentifier")
_UPN = ("upn", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
        "unique_name")
_NAME = ("name", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name")
_APP_ID = ("appid", "azp")

# The application id of the "Azure Virtual Machine Image Builder" first-party app,
# which Microsoft's Image Builder guides grant roles to by this id.
IMAGE_BUILDER_APP_ID = "cf32a0cc-373c-47c9-9156-0db11f6a6dfc"
IMAGE_BUILDER_ALIAS = "azure-image-builder"


def _claim(claims: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def principal_from_claims(claims: Mapping[str, Any], caller: str | None = None,
                          evidence: Mapping[str, Any] | None = None) -> Principal:
    """Build the principal of one Activity Log record.

    `caller` is the record's computed caller (a UPN, or a GUID for applications),
    and `evidence` the RBAC decision with `principalId` and `principalType`.
    """
    evidence = evidence or {}
    object_id = _claim(claims, _OBJECT_ID)
    evidence_id = evidence.get("principalId")
    if object_id is None and isinstance(evidence_id, str) and evidence_id:
        object_id = evidence_id
    object_id = dashed_guid(object_id) if object_id else None
    upn = _claim(claims, _UPN)
    if upn is not None and "@" not in upn:
        upn = None
    caller = caller.strip() if isinstance(caller, str) and caller.strip() else None
    if upn is None and caller is not None and "@" in caller:
        upn = caller
    app_id = _claim(claims, _APP_ID)
    identity_resource = _claim(claims, ("xms_mirid",))
    name = _claim(claims, _NAME)
    native_type = evidence.get("principalType")
    native_type = native_type if isinstance(native_type, str) and native_type else None

    aliases: list[str] = []
    if upn is not None:
        kind, ident = PrincipalKind.USER, upn.lower()
        aliases += [object_id or ""]
    elif identity_resource is not None:
        kind, ident = PrincipalKind.MANAGED_IDENTITY, canonical(identity_resource)
        aliases += [(app_id or "").lower(), object_id or ""]
    elif app_id or claims.get("idtyp") == "app" or native_type == "ServicePrincipal":
        kind = PrincipalKind.SERVICE_PRINCIPAL
        ident = (app_id or object_id or caller or "unknown").lower()
        aliases += [object_id or ""]
    elif caller is not None:
        # The caller of an application is its object id (a GUID); anything else here
        # is a name this code cannot place.
        kind = PrincipalKind.SERVICE_PRINCIPAL if _is_guid(caller) else PrincipalKind.UNKNOWN
        ident = caller.lower()
    elif object_id is not None:
        kind, ident = PrincipalKind.UNKNOWN, object_id
    else:
        return Principal(kind=PrincipalKind.UNKNOWN, id="unknown")
    if caller is not None:
        aliases.append(caller.lower())
    if app_id is not None and app_id.lower() == IMAGE_BUILDER_APP_ID:
        aliases.append(IMAGE_BUILDER_ALIAS)
        name = name or "Azure Virtual Machine Image Builder"
    unique = tuple(dict.fromkeys(a for a in aliases if a and a != ident))
    # The tenant is left out of `issuer` on purpose: a builder's `roles` patterns
    # match the issuer, and a tenant id there would approve every caller in it.
    return Principal(kind=kind, id=ident, name=name, aliases=unique,
                     native_type=native_type)


def principal_from_login(identity: Any) -> Principal:
    """Build the principal of an ACR repository event from its `Identity` column.

    NOTE: the format of that column per identity kind is not documented. A value
    with `@` is read as a user, and a GUID as a service principal (its app id, as
    used for `docker login`). Any other value, such as a token or the admin user's
    name, is kept as it is with kind unknown.
    """
    if not isinstance(identity, str) or not identity.strip():
        return Principal(kind=PrincipalKind.UNKNOWN, id="unknown")
    value = identity.strip()
    if "@" in value:
        return Principal(kind=PrincipalKind.USER, id=value.lower(), native_type="User")
    if _is_guid(value):
        return Principal(kind=PrincipalKind.SERVICE_PRINCIPAL, id=dashed_guid(value),
                         native_type="ServicePrincipal")
    return Principal(kind=PrincipalKind.UNKNOWN, id=value)


def _is_guid(value: str) -> bool:
    text = dashed_guid(value)
    parts = text.split("-")
    return (len(parts) == 5 and [len(p) for p in parts] == [8, 4, 4, 4, 12]
            and all(c in "0123456789abcdef" for c in text.replace("-", "")))
