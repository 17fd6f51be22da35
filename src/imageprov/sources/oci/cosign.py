"""Signatures and attestations stored beside images, as log documents to read.

For each image digest of a repository the evidence is found two ways:

- the Referrers API (`/v2/<name>/referrers/<digest>`, OCI 1.1), which lists the
  manifests whose `subject` is the digest, and, where the registry has no such
  API (it returns 404, as distribution 2.8 does), the referrers tag schema's
  index under the tag `sha256-<hex>`;
- the tags cosign writes, `sha256-<hex>.sig` and `sha256-<hex>.att`.

Each signature or attestation manifest becomes one `LogObject` whose bytes are a
JSON document holding the manifest and the layer blobs that carry signatures
(`application/vnd.dev.cosign.simplesigning.v1+json`) or DSSE envelopes
(`application/vnd.dsse.envelope.v1+json`); `evidence_documents` reads it. Nothing
is verified here: the policy holds the keys. Manifests are content-addressed, so
a document read before is recognised by its hash and not stored again.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable, Iterator

import orjson

from imageprov.sources import LogObject
from imageprov.sources.oci.inventory import EVIDENCE_TAG
from imageprov.sources.oci.registry import INDEXES, RegistryClient, RegistryError

logger = logging.getLogger(__name__)

FORMAT_NAME = "cosign-evidence"
SIGNATURE_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_LAYER = "application/vnd.dsse.envelope.v1+json"
EVIDENCE_LAYERS = frozenset({SIGNATURE_LAYER, DSSE_LAYER})
_SUFFIX = re.compile(r"^sha256-([0-9a-f]{64})(?:\.(sig|att))?$")


class RegistryEvidence:
    """The signature and attestation manifests of every image in one registry."""

    def __init__(self, client: RegistryClient, registry: str,
                 repositories: list[str] | None = None) -> None:
        self.client = client
        self.registry = registry
        self.repositories = repositories or []
        self.name = f"cosign:{registry}"
        self._referrers_api: bool | None = None

    def objects(self) -> Iterator[LogObject]:
        repositories = self.repositories or list(self.client.repositories())
        for repository in repositories:
            yield from self._repository_objects(repository)

    def _repository_objects(self, repository: str) -> Iterator[LogObject]:
        tags = list(self.client.tags(repository))
        image_tags = [tag for tag in tags if not EVIDENCE_TAG.match(tag)]
        if self._referrers_api is not False and image_tags:
            yield from self._from_referrers(repository, image_tags)
        # cosign writes its tags whether or not the registry has a Referrers API; the
        # referrers tag schema stands in for the API only where it is missing.
        for tag in sorted(tags):
            match = _SUFFIX.match(tag)
            if match is None:
                continue
            subject = f"sha256:{match.group(1)}"
            if match.group(2) is not None:
                yield self._object(repository, tag, subject, f"tag:{tag}")
            elif not self._referrers_api:
                yield from self._from_referrers_tag(repository, tag, subject)

    def _from_referrers(self, repository: str, tags: list[str]) -> Iterator[LogObject]:
        seen: set[str] = set()
        for tag in tags:
            manifest = self.client.manifest(repository, tag)
            if manifest is None or manifest.digest in seen:
                continue
            seen.add(manifest.digest)
            # The first digest probes the API, so a registry without one costs one
            # extra request per cycle.
            found = self.client.referrers(repository, manifest.digest)
            if found is None:
                self._referrers_api = False
                logger.debug("%s: no Referrers API, reading cosign tags", self.name)
                return
            self._referrers_api = True
            for descriptor in found:
                digest = descriptor.get("digest")
                if isinstance(digest, str):
                    yield self._object(repository, digest, manifest.digest, "referrers")

    def _from_referrers_tag(self, repository: str, tag: str,
                            subject: str) -> Iterator[LogObject]:
        index = self.client.manifest(repository, tag)
        if index is None or index.media_type not in INDEXES:
            return
        for descriptor in index.document.get("manifests") or ():
            digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
            if isinstance(digest, str):
                yield self._object(repository, digest, subject, f"tag:{tag}")

    def _object(self, repository: str, reference: str, subject: str,
                found_via: str) -> LogObject:
        location = f"oci://{self.registry}/{repository}:{reference}"
        return LogObject(location, self.registry,
                         self._loader(repository, reference, subject, found_via),
                         format=FORMAT_NAME)

    def _loader(self, repository: str, reference: str, subject: str,
                found_via: str) -> Callable[[], bytes]:
        def load() -> bytes:
            manifest = self.client.manifest(repository, reference)
            if manifest is None:
                raise RegistryError(self.name, f"{repository}:{reference} disappeared "
                                               "before it was read", 404)
            blobs: dict[str, str] = {}
            for layer in manifest.document.get("layers") or ():
                if not isinstance(layer, dict) or layer.get("mediaType") not in \
                        EVIDENCE_LAYERS or not isinstance(layer.get("digest"), str):
                    continue
                data = self.client.blob(repository, layer["digest"])
                blobs[layer["digest"]] = base64.b64encode(data).decode()
            return orjson.dumps({
                "registry": self.registry, "repository": repository,
                "subject": subject, "found_via": found_via,
                "manifest_digest": manifest.digest,
                "manifest": base64.b64encode(manifest.data).decode(),
                "blobs": blobs,
            }, option=orjson.OPT_SORT_KEYS)
        return load
