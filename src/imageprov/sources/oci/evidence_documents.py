"""Read the signature and attestation documents that `cosign` collects.

One document is one manifest with its evidence blobs. Each simple-signing layer
becomes a `sign` event and each DSSE envelope layer an `attest` event, both
naming the image digest the evidence is about. `evidence` keeps the signed bytes
and signatures as found; whether they verify, and under which key, is decided by
the policy, which has the keys.

The signing time comes from the Rekor bundle (`integratedTime`) or the
manifest's `org.opencontainers.image.created` annotation.
NOTE: evidence with neither gets the Unix epoch as its time, since the registry
records none.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from imageprov.errors import RecordError
from imageprov.model import (
    CreationEvent,
    EventEffect,
    LogDocument,
    Principal,
    PrincipalKind,
    RecordOrigin,
    RecordProblem,
)
from imageprov.sources import LogFormat
from imageprov.sources import json_head
from imageprov.sources.fields import record_json
from imageprov.sources.oci.cosign import DSSE_LAYER, FORMAT_NAME, SIGNATURE_LAYER
from imageprov.sources.oci.notifications import parse_rfc3339

SOURCE = "cosign"
PLATFORM = "oci"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
# The cosign specification names the certificate annotation with both prefixes.
CERTIFICATE_ANNOTATIONS = ("dev.sigstore.cosign/certificate",
                           "dev.cosignproject.cosign/certificate")
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def recognises(head: bytes) -> bool:
    keys = json_head.scan(head).keys
    return (head.startswith(b"{") and b'"found_via"' in keys
            and b'"manifest_digest"' in keys)


def _signing_time(annotations: dict[str, Any], manifest: dict[str, Any],
                  origin: RecordOrigin) -> datetime:
    bundle = annotations.get(BUNDLE_ANNOTATION)
    if isinstance(bundle, str):
        try:
            integrated = orjson.loads(bundle)["Payload"]["integratedTime"]
            if isinstance(integrated, int) and not isinstance(integrated, bool):
                return datetime.fromtimestamp(integrated, UTC)
        except (orjson.JSONDecodeError, KeyError, TypeError, OverflowError, OSError,
                ValueError):
            pass
    created = (manifest.get("annotations") or {}).get("org.opencontainers.image.created")
    if isinstance(created, str):
        return parse_rfc3339(created, origin.location, origin.index,
                             "annotations.org.opencontainers.image.created")
    return _EPOCH


def _evidence(kind: str, layer: dict[str, Any], blob: bytes,
              annotations: dict[str, Any], common: dict[str, Any],
              origin: RecordOrigin) -> dict[str, Any]:
    found = dict(common, kind=kind, layer=layer["digest"])
    if kind == "signature":
        signature = annotations.get(SIGNATURE_ANNOTATION)
        if not isinstance(signature, str) or not signature:
            raise RecordError(origin.location, origin.index,
                              f"layers[{origin.index}].annotations.{SIGNATURE_ANNOTATION}",
                              "missing on a signature layer")
        found["payload"] = base64.b64encode(blob).decode()
        found["signature"] = signature
        certificate = next((annotations[name] for name in CERTIFICATE_ANNOTATIONS
                            if isinstance(annotations.get(name), str)), None)
        found["certificate"] = certificate
        found["chain"] = annotations.get(CHAIN_ANNOTATION)
        return found
    try:
        envelope = orjson.loads(blob)
    except orjson.JSONDecodeError as error:
        raise RecordError(origin.location, origin.index, f"layers[{origin.index}]",
                          f"DSSE envelope is not JSON: {error}") from None
    if not isinstance(envelope, dict):
        raise RecordError(origin.location, origin.index, f"layers[{origin.index}]",
                          "DSSE envelope is not an object")
    found["envelope"] = envelope
    found["predicate_type"] = next(
        (value for key, value in annotations.items()
         if key.lower().endswith("predicatetype") or key.endswith("predicate-type")), None)
    return found


def read(data: bytes, location: str, fallback_account: str | None = None) -> LogDocument:
    """Read one evidence document into sign and attest events."""
    document = LogDocument(location=location, source=SOURCE, platform=PLATFORM)
    try:
        outer = orjson.loads(data)
        manifest_bytes = base64.b64decode(outer["manifest"], validate=True)
        manifest = orjson.loads(manifest_bytes)
        blobs = {key: base64.b64decode(value, validate=True)
                 for key, value in outer["blobs"].items()}
        registry, repository, subject = (outer["registry"], outer["repository"],
                                         outer["subject"])
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError,
            binascii.Error, ValueError) as error:
        document.problems.append(RecordProblem(
            location, -1, "(file)", f"not an evidence document: {type(error).__name__}: "
                                    f"{error}"))
        return document
    document.shapes.add("cosign-evidence")
    if not isinstance(manifest, dict) or not _DIGEST.match(str(subject)):
        document.problems.append(RecordProblem(location, -1, "manifest",
                                               "manifest is not an object or the subject "
                                               "is not a sha256 digest"))
        return document
    named = (manifest.get("subject") or {}).get("digest") if isinstance(
        manifest.get("subject"), dict) else None
    if named is not None and named != subject:
        document.problems.append(RecordProblem(
            location, -1, "subject.digest",
            f"manifest names subject {named}, not {subject} it was found for"))
        return document
    common = {"subject": subject, "manifest": outer.get("manifest_digest"),
              "found_via": outer.get("found_via"), "registry": registry,
              "repository": repository}
    for index, layer in enumerate(manifest.get("layers") or ()):
        if not isinstance(layer, dict):
            continue
        kind = {SIGNATURE_LAYER: "signature", DSSE_LAYER: "attestation"}.get(
            layer.get("mediaType"))
        if kind is None:
            continue
        document.records += 1
        origin = RecordOrigin(location=location, index=index, shape="cosign-evidence")
        try:
            event = _event(kind, layer, blobs, common, manifest, origin)
        except RecordError as error:
            document.problems.append(error.problem)
            continue
        document.events.append(event)
    return document


def _event(kind: str, layer: dict[str, Any], blobs: dict[str, bytes],
           common: dict[str, Any], manifest: dict[str, Any],
           origin: RecordOrigin) -> CreationEvent:
    digest = layer.get("digest")
    if not isinstance(digest, str) or digest not in blobs:
        raise RecordError(origin.location, origin.index, f"layers[{origin.index}].digest",
                          "layer blob missing from the document")
    annotations = layer.get("annotations") if isinstance(layer.get("annotations"),
                                                         dict) else {}
    found = _evidence(kind, layer, blobs[digest], annotations, common, origin)
    evidence = record_json(found, option=orjson.OPT_SORT_KEYS)
    registry = str(common["registry"])
    # The same signature may be listed by the Referrers API and under a cosign tag,
    # so the key leaves out where it was found.
    signed = {key: value for key, value in found.items()
              if key not in ("found_via", "manifest")}
    identity = hashlib.sha256(orjson.dumps(signed, option=orjson.OPT_SORT_KEYS)
                              ).hexdigest()[:40]
    return CreationEvent(
        source=SOURCE,
        key=f"{SOURCE}:{registry}:{identity}",
        event_id=digest,
        time=_signing_time(annotations, manifest, origin),
        action=f"cosign:{kind}",
        effect=EventEffect.SIGN if kind == "signature" else EventEffect.ATTEST,
        platform=PLATFORM,
        account=registry,
        region="",
        principal=Principal(kind=PrincipalKind.UNKNOWN, id="unverified",
                            native_type=f"cosign-{kind}"),
        target=str(common["subject"]),
        registry=registry,
        repository=str(common["repository"]),
        origin=origin,
        evidence=evidence,
    )


FORMAT = LogFormat(name=FORMAT_NAME, platform=PLATFORM, recognises=recognises, read=read)
