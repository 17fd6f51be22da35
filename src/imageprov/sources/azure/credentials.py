"""Credentials for the Azure SDK clients, always built from explicit settings.

No default credential chain is used: `DefaultAzureCredential` would try the
environment, the CLI and the instance metadata service in turn, and a scan must
call no metadata server unless it is configured to. `managed_identity` is the one
kind that contacts the metadata service, and only when configured.
"""

from __future__ import annotations

import os
import time
from typing import Any

from azure.core.credentials import AccessToken

from imageprov.errors import SourceError


class StaticTokenCredential:
    """A bearer token obtained elsewhere, read from an environment variable.

    The token is never logged; `expires_on` is an hour from when it is first asked
    for, since the token's own expiry is not known here.
    """

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token, int(time.time()) + 3600)


def _environment(name: str | None, what: str) -> str:
    value = os.environ.get(name or "")
    if not value:
        raise SourceError("azure.credential",
                          f"{what}: environment variable {name} is not set or empty")
    return value


def build_credential(settings: Any) -> Any:
    """Return the credential the `azure.credential` settings describe.

    Raises:
        SourceError: an environment variable the settings name is not set, so the
            sources that need the credential fail and the others still run.
    """
    kind = settings.kind
    if kind == "static_token":
        return StaticTokenCredential(_environment(settings.token_env, "static_token"))
    from azure import identity

    if kind == "client_secret":
        return identity.ClientSecretCredential(
            settings.tenant_id, settings.client_id,
            _environment(settings.secret_env, "client_secret"),
            authority=settings.authority_host)
    if kind == "certificate":
        return identity.CertificateCredential(
            settings.tenant_id, settings.client_id, str(settings.certificate_path),
            authority=settings.authority_host)
    return identity.ManagedIdentityCredential(client_id=settings.client_id)
