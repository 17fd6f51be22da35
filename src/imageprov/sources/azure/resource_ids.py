"""Azure resource ids and ACR login servers in the one case imageprov compares.

ARM treats resource ids as case-insensitive, and the Activity Log writes the same
id in several casings (`/SUBSCRIPTIONS/.../RESOURCEGROUPS/...` in exports, the
original casing in `properties.entity`). Every id is therefore kept lower-cased,
with no trailing slash: inventory, events, verdicts and policy exceptions all see
that one form, so comparing them is comparing text.
"""

from __future__ import annotations

import re

_SUBSCRIPTION = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)
_REGISTRY = re.compile(
    r"/providers/microsoft\.containerregistry/registries/([^/]+)", re.IGNORECASE)
_MANAGED_IMAGE = re.compile(
    r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.compute/images/[^/]+$")
_GALLERY_VERSION = re.compile(
    r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.compute/galleries/"
    r"[^/]+/images/[^/]+/versions/[^/]+$")
_GUID_HEX = re.compile(r"^[0-9a-f]{32}$")

# The login server of a registry in the Azure public cloud is `<name>.azurecr.io`.
# NOTE: sovereign clouds use other suffixes (azurecr.cn, azurecr.us). A registry
# there is named by its configured login server, but importImage records name the
# registry by resource id only, so they are read with this suffix.
ACR_SUFFIX = ".azurecr.io"


def canonical(resource_id: str) -> str:
    """Return a resource id in the form imageprov stores and compares."""
    return "/" + resource_id.strip().strip("/").lower()


def subscription_of(resource_id: str | None) -> str | None:
    """Return the subscription id a resource id starts with, lower-cased."""
    if not resource_id:
        return None
    match = _SUBSCRIPTION.match(resource_id.strip())
    return match.group(1).lower() if match else None


def is_managed_image(resource_id: str) -> bool:
    return _MANAGED_IMAGE.match(canonical(resource_id)) is not None


def is_gallery_version(resource_id: str) -> bool:
    return _GALLERY_VERSION.match(canonical(resource_id)) is not None


def registry_login_server(resource_id: str | None) -> str | None:
    """Return the login server of the registry a resource id names, if it names one."""
    if not resource_id:
        return None
    match = _REGISTRY.search(resource_id)
    return match.group(1).lower() + ACR_SUFFIX if match else None


def resource_group_of(resource_id: str) -> str | None:
    parts = canonical(resource_id).split("/")
    if len(parts) > 4 and parts[3] == "resourcegroups":
        return parts[4]
    return None


def dashed_guid(value: str) -> str:
    """Return a GUID in its dashed lower-case form; RBAC evidence writes it bare."""
    text = value.strip().lower()
    if _GUID_HEX.match(text):
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    return text
