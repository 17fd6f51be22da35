"""Build Google Cloud API clients with explicit credentials, endpoint and TLS trust.

Credentials are always given: without them the client libraries look for
Application Default Credentials and, on failure, probe the GCE metadata server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from requests.adapters import HTTPAdapter

from imageprov.errors import SourceError

_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def credentials_from(kind: str, token_env: str | None = None,
                     key_file: Path | None = None) -> Credentials:
    """Return credentials of the configured kind.

    `anonymous` sends no `Authorization` header (for stand-ins); `token` reads an
    OAuth 2.0 access token from the environment variable `token_env`;
    `service_account_key` reads a service-account key file.

    Raises:
        SourceError: the variable is unset or the key file is unreadable.
    """
    if kind == "anonymous":
        return AnonymousCredentials()
    if kind == "token":
        from google.oauth2.credentials import Credentials as TokenCredentials

        token = os.environ.get(token_env or "")
        if not token:
            raise SourceError("gcp", f"environment variable {token_env} is missing or "
                                     "empty; set it to an OAuth 2.0 access token")
        return TokenCredentials(token=token)
    from google.oauth2 import service_account

    try:
        return service_account.Credentials.from_service_account_file(
            str(key_file), scopes=_SCOPES)
    except (OSError, ValueError) as error:
        # The message names the file, never its content.
        raise SourceError("gcp", f"cannot read service-account key {key_file}: "
                                 f"{type(error).__name__}") from None


class _TrustingAdapter(HTTPAdapter):
    """Verify the servers of one endpoint against one CA bundle.

    A session's own `verify` loses to REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE when
    the session trusts the environment, so the bundle is set per request here.
    """

    def __init__(self, ca_bundle: Path) -> None:
        super().__init__()
        self.ca_bundle = str(ca_bundle)

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["verify"] = self.ca_bundle
        return super().send(request, **kwargs)


def _trust(client: Any, endpoint: str | None, ca_bundle: Path | None) -> Any:
    # The REST transports take no CA option, so the adapter is mounted on the
    # transport's requests session for the endpoint's URLs alone.
    # NOTE: `_transport._session` is private to the client libraries (tested with
    # google-cloud-compute 1.57 and google-cloud-artifact-registry 1.23).
    if ca_bundle is not None and endpoint:
        prefix = endpoint if "://" in endpoint else f"https://{endpoint}"
        client._transport._session.mount(prefix.rstrip("/") + "/",
                                         _TrustingAdapter(ca_bundle))
    return client


def images_client(credentials: Credentials, endpoint: str | None,
                  ca_bundle: Path | None) -> Any:
    """Return a Compute `ImagesClient` on the REST transport."""
    from google.cloud import compute_v1

    options = ClientOptions(api_endpoint=endpoint) if endpoint else None
    return _trust(compute_v1.ImagesClient(credentials=credentials, transport="rest",
                                          client_options=options), endpoint, ca_bundle)


def artifact_registry_client(credentials: Credentials, endpoint: str | None,
                             ca_bundle: Path | None) -> Any:
    """Return an `ArtifactRegistryClient` on the REST transport."""
    from google.cloud import artifactregistry_v1

    options = ClientOptions(api_endpoint=endpoint) if endpoint else None
    return _trust(artifactregistry_v1.ArtifactRegistryClient(
        credentials=credentials, transport="rest", client_options=options),
        endpoint, ca_bundle)
