"""Verify cosign signatures and in-toto attestations against the policy's keys.

The evidence events name an image digest and carry the signed bytes as found in
the registry. A piece of evidence counts only when all of this holds:

- its signature verifies under a key of the policy: a simple-signing payload is
  signed as it is, a DSSE envelope over its pre-authentication encoding
  (`DSSEv1 <len> <type> <len> <payload>`);
- what it signed names the digest judged (`critical.image.docker-manifest-digest`
  of a signature, `subject[].digest.sha256` of a statement), because a valid
  signature copied from another image proves nothing about this one.

A signature by a key the policy does not list counts as none. Keyless signatures
(a Fulcio certificate in place of a key) are not verified here and count as none.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from imageprov.model import CreationEvent, EventEffect

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
SIGNATURE_TYPE = "cosign container image signature"
IN_TOTO_PAYLOAD = "application/vnd.in-toto+json"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_V1 = "https://slsa.dev/provenance/v1"
MIN_RSA_BITS = 2048


def load_public_key(pem: str) -> PublicKey:
    """Read a PEM public key of a supported type.

    Raises:
        ValueError: the text is not a PEM public key, or its type or size is not
            supported.
    """
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as error:
        raise ValueError(f"not a PEM public key: {error}") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"ECDSA curve {key.curve.name} is not supported; use P-256")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {key.key_size} bits is shorter than "
                             f"{MIN_RSA_BITS}")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise ValueError(f"key type {type(key).__name__} is not supported; use ECDSA P-256, "
                     "Ed25519 or RSA")


def _verifies(key: PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            try:
                key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                key.verify(signature, data, padding.PSS(
                    mgf=padding.MGF1(hashes.SHA256()),
                    salt_length=padding.PSS.AUTO), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def pre_authentication_encoding(payload_type: str, payload: bytes) -> bytes:
    """Return the bytes a DSSE signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class Provenance:
    """The SLSA provenance facts the policy matches."""

    predicate_type: str
    builder_id: str | None
    build_type: str | None
    source_repository: str | None
    revision: str | None

    def describe(self) -> str:
        source = self.source_repository or "no source repository"
        if self.revision:
            source += f" at {self.revision}"
        return (f"provenance ({self.predicate_type}) from builder "
                f"{self.builder_id or '(none)'} ({self.build_type or 'no build type'}, "
                f"{source})")


@dataclass(frozen=True)
class Finding:
    """One signature or attestation, checked: the key that verified it, or why
    it does not count."""

    kind: str
    layer: str
    key: str | None
    problem: str | None
    provenance: Provenance | None = None

    @property
    def valid(self) -> bool:
        return self.problem is None


def _signer(keys: dict[str, PublicKey], signature: bytes, data: bytes) -> str | None:
    for name, key in keys.items():
        if _verifies(key, signature, data):
            return name
    return None


def _unverified(keys: dict[str, PublicKey]) -> str:
    listed = ", ".join(keys) or "none listed"
    return (f"does not verify under any policy key ({listed}): the payload was changed "
            "after signing, or a key the policy does not list signed it")


def _manifest_digest(payload: dict[str, Any]) -> Any:
    critical = payload.get("critical") if isinstance(payload.get("critical"), dict) else {}
    image = critical.get("image") if isinstance(critical.get("image"), dict) else {}
    # The specification's example writes Docker-manifest-digest; cosign writes it in
    # lower case.
    return next((value for key, value in image.items()
                 if key.lower() == "docker-manifest-digest"), None)


def _check_signature(found: dict[str, Any], subject: str, layer: str,
                     keys: dict[str, PublicKey]) -> Finding:
    try:
        payload = base64.b64decode(found["payload"], validate=True)
        signature = base64.b64decode(found["signature"], validate=True)
    except (KeyError, TypeError, binascii.Error) as error:
        return Finding("signature", layer, None, f"unreadable signature: {error}")
    signer = _signer(keys, signature, payload)
    if signer is None and found.get("certificate"):
        return Finding("signature", layer, None,
                       "keyless signature (a certificate, no listed key) is not verified")
    if signer is None:
        return Finding("signature", layer, None, f"signature {_unverified(keys)}")
    try:
        claims = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return Finding("signature", layer, signer, "signed payload is not JSON")
    if not isinstance(claims, dict):
        return Finding("signature", layer, signer, "signed payload is not an object")
    named = _manifest_digest(claims)
    if named != subject:
        return Finding("signature", layer, signer,
                       f"signature by {signer} is for {named!r}, not this image")
    kind = (claims.get("critical") or {}).get("type")
    if kind != SIGNATURE_TYPE:
        return Finding("signature", layer, signer,
                       f"signed payload has type {kind!r}, not {SIGNATURE_TYPE!r}")
    return Finding("signature", layer, signer, None)


def _check_attestation(found: dict[str, Any], subject: str, layer: str,
                       keys: dict[str, PublicKey]) -> Finding:
    envelope = found.get("envelope")
    if not isinstance(envelope, dict):
        return Finding("attestation", layer, None, "no DSSE envelope")
    payload_type = envelope.get("payloadType")
    try:
        payload = base64.b64decode(envelope.get("payload") or "", validate=True)
    except (TypeError, binascii.Error) as error:
        return Finding("attestation", layer, None, f"unreadable DSSE payload: {error}")
    if not isinstance(payload_type, str):
        return Finding("attestation", layer, None, "DSSE envelope has no payloadType")
    data = pre_authentication_encoding(payload_type, payload)
    signer = None
    for item in envelope.get("signatures") or ():
        try:
            signature = base64.b64decode(item.get("sig") or "", validate=True)
        except (AttributeError, TypeError, binascii.Error):
            continue
        signer = _signer(keys, signature, data)
        if signer is not None:
            break
    if signer is None:
        return Finding("attestation", layer, None, f"attestation {_unverified(keys)}")
    if payload_type != IN_TOTO_PAYLOAD:
        return Finding("attestation", layer, signer,
                       f"payload type {payload_type!r} is not an in-toto statement")
    try:
        statement = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return Finding("attestation", layer, signer, "signed statement is not JSON")
    if not isinstance(statement, dict):
        return Finding("attestation", layer, signer, "signed statement is not an object")
    hexdigest = subject.removeprefix("sha256:")
    subjects = [item.get("digest", {}).get("sha256") for item in
                statement.get("subject") or () if isinstance(item, dict)
                and isinstance(item.get("digest"), dict)]
    if hexdigest not in subjects:
        return Finding("attestation", layer, signer,
                       f"statement signed by {signer} is about "
                       f"{', '.join(f'sha256:{s}' for s in subjects) or 'no subject'}, "
                       "not this image")
    return Finding("attestation", layer, signer, None, _provenance(statement))


def _get(document: Any, *path: str) -> Any:
    for step in path:
        if not isinstance(document, dict):
            return None
        document = document.get(step)
    return document


def _first_text(*values: Any) -> str | None:
    return next((value for value in values if isinstance(value, str) and value), None)


def _revision(digest: Any) -> str | None:
    if not isinstance(digest, dict):
        return None
    return _first_text(digest.get("gitCommit"), digest.get("sha1"), digest.get("sha256"))


def _provenance(statement: dict[str, Any]) -> Provenance | None:
    predicate_type = statement.get("predicateType")
    predicate = statement.get("predicate")
    if not isinstance(predicate_type, str) or not isinstance(predicate, dict):
        return None
    if predicate_type.startswith(SLSA_V02) or predicate_type.startswith(
            "https://slsa.dev/provenance/v0.1"):
        source = _get(predicate, "invocation", "configSource")
        materials = [m for m in predicate.get("materials") or () if isinstance(m, dict)]
        return Provenance(
            predicate_type, _first_text(_get(predicate, "builder", "id")),
            _first_text(predicate.get("buildType")),
            _first_text(_get(source, "uri"), materials[0].get("uri") if materials else None),
            _revision(_get(source, "digest")) or
            (_revision(materials[0].get("digest")) if materials else None))
    if predicate_type.startswith(SLSA_V1):
        definition = predicate.get("buildDefinition") or {}
        external = _get(definition, "externalParameters") or {}
        dependencies = [d for d in _get(definition, "resolvedDependencies") or ()
                        if isinstance(d, dict)]
        workflow = _get(external, "workflow") or {}
        return Provenance(
            predicate_type, _first_text(_get(predicate, "runDetails", "builder", "id")),
            _first_text(_get(definition, "buildType")),
            _first_text(_get(workflow, "repository"), _get(external, "source"),
                        dependencies[0].get("uri") if dependencies else None),
            _revision(dependencies[0].get("digest")) if dependencies else None)
    return None


def check(event: CreationEvent, keys: dict[str, PublicKey]) -> Finding | None:
    """Check one sign or attest event; None for any other event."""
    if event.effect not in (EventEffect.SIGN, EventEffect.ATTEST) or not event.evidence:
        return None
    kind = "signature" if event.effect is EventEffect.SIGN else "attestation"
    try:
        found = orjson.loads(event.evidence)
    except orjson.JSONDecodeError:
        return Finding(kind, event.event_id, None, "stored evidence is not JSON")
    subject = event.target or ""
    if event.effect is EventEffect.SIGN:
        return _check_signature(found, subject, event.event_id, keys)
    return _check_attestation(found, subject, event.event_id, keys)


def source_matches(repository: str, patterns: list[str]) -> bool:
    """Match a provenance source repository as written and without `git+` and ref."""
    bare = repository.removeprefix("git+").split("@", 1)[0]
    if bare.endswith(".git"):
        bare = bare[:-4]
    return any(fnmatch.fnmatchcase(form, pattern) for pattern in patterns
               for form in (repository, bare))
