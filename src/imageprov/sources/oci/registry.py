"""A client of the OCI distribution API: catalog, tags, manifests, blobs, referrers.

- Lists follow the `Link: <...>; rel="next"` header, which registries send as a
  relative URL (distribution 2.8 percent-encodes `last` in it), never a `last`
  built here.
- Every manifest type handled is sent in `Accept`, because distribution 2.8
  returns 404 MANIFEST_UNKNOWN for an OCI manifest when the header lacks its type.
- Digests are computed over the exact bytes received and checked against the
  digest asked for and against `Docker-Content-Digest` when present.
- Credentials come from the configuration: a static bearer token, or a user and
  password sent as basic auth and exchanged for a token when the registry answers
  with a `Bearer` challenge. No message, log line or error carries them, and they
  are dropped on a redirect to another host (blob storage).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import urllib3
from urllib3.exceptions import HTTPError
from urllib3.util import Retry, Timeout

from imageprov.errors import SourceError

logger = logging.getLogger(__name__)

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_MANIFESTS = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEXES = frozenset({DOCKER_LIST, OCI_INDEX})
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
# Entries asked for per page of the catalog and of a tag list.
PAGE_SIZE = 1000
# Largest manifest or config blob read; real ones are a few KiB.
MAX_DOCUMENT = 4 * 2**20


@dataclass(frozen=True)
class Credentials:
    """The credentials sent to the registry; `repr` shows no secret."""

    username: str | None = None
    password: str | None = None
    token: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r})"


@dataclass(frozen=True)
class Manifest:
    """A manifest as received: its bytes, media type, digest and parsed JSON."""

    data: bytes
    media_type: str
    digest: str
    document: dict[str, Any]


class RegistryError(SourceError):
    """A registry request failed; `status` is the HTTP status, 0 for no response."""

    def __init__(self, source: str, detail: str, status: int = 0,
                 code: str | None = None) -> None:
        super().__init__(source, detail)
        self.status = status
        self.code = code


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryClient:
    """One registry at `base_url` (scheme, host and port), read with `credentials`."""

    def __init__(self, base_url: str, credentials: Credentials | None = None,
                 tls_verify: bool = True, ca_file: str | None = None,
                 timeout: float = 30.0, page_size: int = PAGE_SIZE) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"registry URL {base_url!r} needs http:// or https:// and a host")
        if parsed.username or parsed.password:
            raise ValueError("put registry credentials in username/password, not the URL")
        self.base = f"{parsed.scheme}://{parsed.netloc}"
        self.host = parsed.netloc
        self.name = f"registry:{self.host}"
        self.credentials = credentials or Credentials()
        self.page_size = page_size
        self._tokens: dict[str, str] = {}
        # urllib3 removes Authorization when a redirect leaves the host, so a 307 to
        # blob storage never carries the registry credentials.
        retries = Retry(total=3, connect=2, read=0, redirect=5, status=0,
                        backoff_factor=0.2, allowed_methods=frozenset({"GET", "HEAD"}))
        self._http = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED" if tls_verify else "CERT_NONE",
            ca_certs=ca_file, retries=retries,
            timeout=Timeout(connect=min(timeout, 10.0), read=timeout))

    # Requests ------------------------------------------------------------------

    def _auth_header(self, scope: str | None) -> dict[str, str]:
        creds = self.credentials
        if creds.token:
            return {"Authorization": f"Bearer {creds.token}"}
        if scope is not None and scope in self._tokens:
            return {"Authorization": f"Bearer {self._tokens[scope]}"}
        if creds.username is not None:
            pair = f"{creds.username}:{creds.password or ''}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        return {}

    def _send(self, method: str, url: str, headers: dict[str, str]) -> Any:
        try:
            return self._http.request(method, url, headers=headers, redirect=True,
                                      preload_content=False)
        except HTTPError as error:
            # The URL is ours and carries no credentials; the error text may quote it.
            raise RegistryError(self.name, f"{method} {_path(url)} failed: "
                                           f"{type(error).__name__}: {error}") from error

    def request(self, path_or_url: str, accept: str | None = None,
                scope: str | None = None, method: str = "GET",
                allow: tuple[int, ...] = ()) -> tuple[int, dict[str, str], bytes]:
        """Send one request and return status, headers (lower-case names) and body.

        After a 401 with a Bearer challenge, the request is sent once more with a
        token from the challenge's realm.

        Raises:
            RegistryError: no response, or a status other than 2xx or one in `allow`.
        """
        url = urllib.parse.urljoin(self.base + "/", path_or_url)
        if urllib.parse.urlsplit(url).netloc != self.host:
            raise RegistryError(self.name, f"refusing to follow a link to another host: "
                                           f"{_path(url)}")
        headers = {"User-Agent": "imageprov"}
        if accept:
            headers["Accept"] = accept
        response = self._send(method, url, {**headers, **self._auth_header(scope)})
        if response.status == 401 and not self.credentials.token:
            challenge = response.headers.get("WWW-Authenticate", "")
            response.drain_conn()
            if challenge.lower().startswith("bearer ") and scope is not None:
                self._fetch_token(challenge, scope)
                response = self._send(method, url, {**headers, **self._auth_header(scope)})
        body = _read(response, self.name, url)
        status = response.status
        lowered = {name.lower(): value for name, value in response.headers.items()}
        if 200 <= status < 300 or status in allow:
            return status, lowered, body
        raise _status_error(self.name, method, url, status, body)

    def _fetch_token(self, challenge: str, scope: str) -> None:
        fields = dict(_CHALLENGE.findall(challenge))
        realm = fields.get("realm")
        if not realm:
            raise RegistryError(self.name, "Bearer challenge without a realm")
        query = {"scope": fields.get("scope") or scope}
        if fields.get("service"):
            query["service"] = fields["service"]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers = {"User-Agent": "imageprov"}
        creds = self.credentials
        if creds.username is not None:
            pair = f"{creds.username}:{creds.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        response = self._send("GET", url, headers)
        body = _read(response, self.name, url)
        if response.status != 200:
            raise RegistryError(self.name, f"token request to {_path(realm)} returned "
                                           f"HTTP {response.status}", response.status)
        try:
            document = orjson.loads(body)
            token = document.get("token") or document.get("access_token")
        except (orjson.JSONDecodeError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(self.name, f"token response of {_path(realm)} has no token")
        self._tokens[scope] = token

    # The distribution API --------------------------------------------------------

    def ping(self) -> None:
        """Check that the registry answers `/v2/` and accepts the credentials."""
        self.request("/v2/", scope="registry:catalog:*")

    def _pages(self, path: str, key: str, scope: str) -> Iterator[str]:
        next_url: str | None = f"{path}?n={self.page_size}"
        seen: set[str] = set()
        while next_url is not None:
            if next_url in seen:
                raise RegistryError(self.name, f"paging loops back to {_path(next_url)}")
            seen.add(next_url)
            _, headers, body = self.request(next_url, scope=scope)
            document = _json(body, self.name, next_url)
            values = document.get(key) if isinstance(document, dict) else None
            if values is None:
                values = []
            if not isinstance(values, list):
                raise RegistryError(self.name, f"{_path(next_url)}: {key} is not a list")
            yield from (value for value in values if isinstance(value, str))
            match = _LINK.search(headers.get("link", ""))
            next_url = match.group(1) if match else None

    def repositories(self) -> Iterator[str]:
        """Yield every repository `/v2/_catalog` lists, page by page."""
        yield from self._pages("/v2/_catalog", "repositories", "registry:catalog:*")

    def tags(self, repository: str) -> Iterator[str]:
        """Yield every tag of a repository; a repository that is gone yields none."""
        try:
            yield from self._pages(f"/v2/{repository}/tags/list", "tags",
                                   _pull(repository))
        except RegistryError as error:
            if error.status != 404:
                raise
            logger.info("%s: repository %s disappeared during inventory", self.name,
                        repository)

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """Fetch a manifest by tag or digest; None when the registry has none.

        Raises:
            RegistryError: the request failed, or the bytes do not match the digest.
        """
        path = f"/v2/{repository}/manifests/{reference}"
        status, headers, body = self.request(path, accept=ACCEPT, scope=_pull(repository),
                                             allow=(404,))
        if status == 404:
            return None
        digest = sha256_digest(body)
        if DIGEST.match(reference) and reference != digest:
            raise RegistryError(self.name, f"manifest {repository}@{reference} has "
                                           f"content of digest {digest}")
        claimed = headers.get("docker-content-digest")
        if claimed and claimed.startswith("sha256:") and claimed != digest:
            raise RegistryError(self.name, f"manifest {repository}:{reference}: "
                                           f"Docker-Content-Digest {claimed} does not "
                                           f"match the content ({digest})")
        document = _json(body, self.name, path)
        if not isinstance(document, dict):
            raise RegistryError(self.name, f"manifest {repository}:{reference} is not "
                                           "a JSON object")
        media_type = document.get("mediaType") or headers.get("content-type", "")
        media_type = str(media_type).split(";")[0].strip()
        return Manifest(body, media_type, digest, document)

    def blob(self, repository: str, digest: str) -> bytes:
        """Fetch a blob and check it against its digest."""
        if not DIGEST.match(digest):
            raise RegistryError(self.name, f"unsupported blob digest {digest!r}")
        _, _, body = self.request(f"/v2/{repository}/blobs/{digest}",
                                  scope=_pull(repository))
        if sha256_digest(body) != digest:
            raise RegistryError(self.name, f"blob {repository}@{digest} does not match "
                                           "its digest")
        return body

    def referrers(self, repository: str, digest: str) -> list[dict[str, Any]] | None:
        """Return the referrer descriptors of a digest; None without a Referrers API."""
        path: str | None = f"/v2/{repository}/referrers/{digest}"
        found: list[dict[str, Any]] = []
        while path is not None:
            status, headers, body = self.request(path, accept=OCI_INDEX,
                                                 scope=_pull(repository), allow=(404,))
            if status == 404:
                # 404 means the registry has no Referrers API; an empty answer is an
                # index with no manifests.
                return None
            document = _json(body, self.name, path)
            manifests = document.get("manifests") if isinstance(document, dict) else None
            found.extend(item for item in manifests or () if isinstance(item, dict))
            match = _LINK.search(headers.get("link", ""))
            path = match.group(1) if match else None
        return found


def _pull(repository: str) -> str:
    return f"repository:{repository}:pull"


def _path(url: str) -> str:
    """Return a URL without its query, which may carry upload state or tokens."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _read(response: Any, source: str, url: str) -> bytes:
    try:
        body = response.read(MAX_DOCUMENT + 1, decode_content=True)
    except HTTPError as error:
        raise RegistryError(source, f"reading {_path(url)} failed: {error}") from error
    finally:
        response.release_conn()
    if len(body) > MAX_DOCUMENT:
        raise RegistryError(source, f"{_path(url)} is larger than {MAX_DOCUMENT} bytes")
    return body


def _json(body: bytes, source: str, path: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise RegistryError(source, f"{_path(path)} is not JSON: {error}") from None


def _status_error(source: str, method: str, url: str, status: int,
                  body: bytes) -> RegistryError:
    code = message = None
    try:
        errors = orjson.loads(body).get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code, message = errors[0].get("code"), errors[0].get("message")
    except (orjson.JSONDecodeError, AttributeError):
        pass
    text = f"{method} {_path(url)} returned HTTP {status}"
    if code:
        text += f" {code}"
    if message:
        text += f": {str(message)[:200]}"
    if status == 401:
        text += " (check the registry username, password or token)"
    return RegistryError(source, text, status, code)
