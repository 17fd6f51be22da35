"""SDK clients built from the `azure:` settings, with explicit endpoints and trust.

Endpoints always come from the configuration, and `ca_bundle`, when set, is the
only CA the clients trust (azure-core's `connection_verify`).
"""

from __future__ import annotations

import os
from typing import Any

from imageprov.errors import SourceError
from imageprov.sources.azure.credentials import build_credential

# The token scope of Azure Resource Manager; it is an audience, not an address.
ARM_SCOPE = "https://management.azure.com/.default"


def _verify(azure: Any) -> Any:
    return str(azure.ca_bundle) if azure.ca_bundle is not None else True


def compute_client(azure: Any, subscription: str) -> Any:
    from azure.mgmt.compute import ComputeManagementClient

    return ComputeManagementClient(
        build_credential(azure.credential), subscription, base_url=azure.arm_endpoint,
        credential_scopes=[ARM_SCOPE], connection_verify=_verify(azure))


def registry_client(azure: Any, registry: Any) -> Any:
    from azure.containerregistry import ContainerRegistryClient

    endpoint = registry.endpoint or f"https://{registry.login_server}"
    return ContainerRegistryClient(
        endpoint, build_credential(azure.credential), audience=registry.audience,
        connection_verify=_verify(azure))


def blob_container(azure: Any, location: Any) -> Any:
    """Return a `ContainerClient` for an export location.

    Raises:
        SourceError: the connection string's environment variable is not set.
    """
    from azure.storage.blob import BlobServiceClient

    if location.connection_string_env:
        text = os.environ.get(location.connection_string_env)
        if not text:
            raise SourceError(location.name, f"environment variable "
                              f"{location.connection_string_env} is not set")
        service = BlobServiceClient.from_connection_string(
            text, connection_verify=_verify(azure))
    else:
        if azure.credential is None:
            raise SourceError(location.name, "a blob_account_url needs azure.credential "
                              "or connection_string_env")
        service = BlobServiceClient(location.blob_account_url,
                                    credential=build_credential(azure.credential),
                                    connection_verify=_verify(azure))
    return service.get_container_client(location.container)
