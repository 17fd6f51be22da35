"""CloudTrail log file integrity: digest files, their chain and their signatures.

With log file validation on, CloudTrail writes one digest per trail, Region and
hour under `AWSLogs/<account>/CloudTrail-Digest/<region>/`. A digest lists the log
files delivered in its hour with the hex SHA-256 of their uncompressed bytes, links
to the previous digest by key, hash and signature, and is signed with RSA PKCS#1
v1.5 over SHA-256. The signed text is `digestEndTime`, `digestS3Bucket/
digestS3Object`, the hex SHA-256 of the uncompressed digest and
`previousDigestSignature` (the literal `null` for the first digest), joined by
line feeds. On S3 the signature is the object's `x-amz-meta-signature`; a local
copy keeps it in a `<digest>.signature` file beside the digest. An older digest
without its own signature is checked with the signature its successor records.

The public keys come from the saved output of `aws cloudtrail list-public-keys`
(`PublicKeyList[].Value` is base64 DER, PKCS#1 or X.509 SubjectPublicKeyInfo).
This module returns facts: which digests hold, which log files they list with
which hash, and what failed, each naming the file. Matching them to the files
that were read is `match_log_files`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from imageprov.errors import SourceError
from imageprov.model import LogValidation
from imageprov.sources.compression import decompress

_DIGEST_FOLDER = "/CloudTrail-Digest/"
_KEY = re.compile(r"(?:^|/)(AWSLogs/.*)$")
_REQUIRED = ("digestEndTime", "digestS3Bucket", "digestS3Object",
             "digestPublicKeyFingerprint", "logFiles")


def object_key(location: str) -> str | None:
    """Return the `AWSLogs/...` key of an S3 location or a local path, if it has one."""
    match = _KEY.search(location.replace("\\", "/"))
    return match.group(1) if match else None


@dataclass(frozen=True)
class DigestFile:
    """One digest as stored: where it was read, its bytes and its own signature."""

    location: str
    data: bytes
    signature: str | None
    bucket: str | None = None


@dataclass(frozen=True)
class DigestProblem:
    """A failed check, named by the digest or log file it concerns."""

    file: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.file}: {self.kind}: {self.detail}"


@dataclass
class DigestResult:
    """The facts the digests establish.

    `listed` maps a log file key to the hash a valid digest lists and that digest's
    location; `rejected` maps a log file key to why the digest that lists it failed.
    """

    digests: int = 0
    valid: int = 0
    listed: dict[str, tuple[str, str]] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    problems: list[DigestProblem] = field(default_factory=list)


def rsa_public_key(der: bytes) -> RSAPublicKey:
    """Read an RSA public key from DER, as X.509 SubjectPublicKeyInfo or PKCS#1.

    Raises:
        ValueError: the bytes are neither form of an RSA key.
    """
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        # NOTE: cryptography 50 reads both DER forms above, so this PEM fallback
        # for PKCS#1 is not exercised by the tests.
        body = base64.encodebytes(der).decode()
        pem = f"-----BEGIN RSA PUBLIC KEY-----\n{body}-----END RSA PUBLIC KEY-----\n"
        key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, RSAPublicKey):
        raise ValueError(f"expected an RSA key, got {type(key).__name__}")
    return key


def load_public_keys(path: Path) -> dict[str, RSAPublicKey]:
    """Read saved `list-public-keys` output into keys by fingerprint.

    Raises:
        SourceError: the file cannot be read or an entry is not an RSA key; the
            message names the entry and field.
    """
    origin = f"public keys {path}"
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise SourceError(origin, f"cannot read the file: {error}") from None
    items = document.get("PublicKeyList") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise SourceError(origin, "expected the output of `aws cloudtrail "
                                  "list-public-keys`, with a PublicKeyList array")
    keys: dict[str, RSAPublicKey] = {}
    for index, item in enumerate(items):
        fingerprint = item.get("Fingerprint") if isinstance(item, dict) else None
        value = item.get("Value") if isinstance(item, dict) else None
        if not isinstance(fingerprint, str) or not isinstance(value, str):
            raise SourceError(origin, f"PublicKeyList[{index}] needs the string fields "
                                      "Fingerprint and Value")
        try:
            keys[fingerprint.lower()] = rsa_public_key(base64.b64decode(value))
        except ValueError as error:
            raise SourceError(origin, f"PublicKeyList[{index}].Value: {error}") from None
    return keys


def signed_text(digest: dict[str, Any], data: bytes) -> bytes:
    """Return the text a digest's signature covers; `data` is the uncompressed digest."""
    previous = digest.get("previousDigestSignature") or "null"
    return "\n".join([
        str(digest["digestEndTime"]),
        f"{digest['digestS3Bucket']}/{digest['digestS3Object']}",
        hashlib.sha256(data).hexdigest(),
        previous,
    ]).encode()


@dataclass
class _Parsed:
    file: DigestFile
    key: str
    text: bytes
    fields: dict[str, Any]
    signature: str | None
    failure: str | None = None


def _parse(item: DigestFile, result: DigestResult) -> _Parsed | None:
    def fail(kind: str, detail: str) -> None:
        result.problems.append(DigestProblem(item.location, kind, detail))

    try:
        text = decompress(item.data)
        fields = orjson.loads(text)
    except (EOFError, OSError, orjson.JSONDecodeError) as error:
        fail("invalid-digest", f"not a readable digest file: {error}")
        return None
    missing = [name for name in _REQUIRED if not isinstance(fields, dict)
               or name not in fields]
    if missing:
        fail("invalid-digest", f"missing field {', '.join(missing)}")
        return None
    key = object_key(item.location) or item.location
    parsed = _Parsed(item, key, text, fields, item.signature)
    # A digest copied to another key would vouch for a different hour or trail.
    if fields["digestS3Object"] != key:
        parsed.failure = f"digestS3Object {fields['digestS3Object']} is not where it was read"
        fail("moved-digest", parsed.failure)
    elif item.bucket is not None and fields["digestS3Bucket"] != item.bucket:
        parsed.failure = (f"digestS3Bucket {fields['digestS3Bucket']} is not the bucket "
                          f"{item.bucket} it was read from")
        fail("moved-digest", parsed.failure)
    return parsed


def _link_chain(parsed: dict[str, _Parsed], result: DigestResult) -> None:
    """Check each digest's link to its predecessor and pass the signature back."""
    for digest in sorted(parsed.values(), key=lambda d: str(d.fields["digestEndTime"])):
        fields = digest.fields
        previous_key = fields.get("previousDigestS3Object")
        if not previous_key:
            continue
        previous = parsed.get(previous_key)
        if previous is None:
            result.problems.append(DigestProblem(
                digest.file.location, "chain-gap",
                f"the previous digest {previous_key} is missing"))
            continue
        expected = fields.get("previousDigestHashValue")
        actual = hashlib.sha256(previous.text).hexdigest()
        if expected != actual:
            result.problems.append(DigestProblem(
                digest.file.location, "chain-gap",
                f"the previous digest {previous_key} has SHA-256 {actual}, but this "
                f"digest records {expected}"))
            continue
        recorded = fields.get("previousDigestSignature")
        if previous.signature is None:
            previous.signature = recorded
        elif recorded and previous.signature.lower() != recorded.lower():
            result.problems.append(DigestProblem(
                digest.file.location, "chain-gap",
                f"records a signature of {previous_key} that differs from its own"))


def _check_signature(digest: _Parsed, keys: dict[str, RSAPublicKey],
                     result: DigestResult) -> None:
    def fail(kind: str, detail: str) -> None:
        digest.failure = detail
        result.problems.append(DigestProblem(digest.file.location, kind, detail))

    if digest.failure is not None:
        return
    if not digest.signature:
        fail("missing-signature", "no signature in the object metadata, and no newer "
                                  "digest records one")
        return
    fingerprint = str(digest.fields["digestPublicKeyFingerprint"]).lower()
    key = keys.get(fingerprint)
    if key is None:
        fail("unknown-key", f"no public key with fingerprint {fingerprint}")
        return
    try:
        key.verify(bytes.fromhex(digest.signature), signed_text(digest.fields, digest.text),
                   padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        fail("bad-signature", f"the signature does not verify with key {fingerprint}")


def validate_digests(digests: Iterable[DigestFile],
                     keys: dict[str, RSAPublicKey]) -> DigestResult:
    """Check every digest: location, chain links and signature.

    The log files a valid digest lists go to `listed`; those of a digest that
    failed go to `rejected`. Each failure is also a problem naming the digest.
    """
    result = DigestResult()
    parsed: dict[str, _Parsed] = {}
    for item in digests:
        result.digests += 1
        digest = _parse(item, result)
        if digest is not None:
            parsed[digest.key] = digest
    _link_chain(parsed, result)
    for digest in parsed.values():
        _check_signature(digest, keys, result)
        for entry in digest.fields.get("logFiles") or ():
            log_key = entry.get("s3Object") if isinstance(entry, dict) else None
            if not isinstance(log_key, str):
                continue
            if digest.failure is None:
                result.listed[log_key] = (str(entry.get("hashValue", "")).lower(),
                                          digest.file.location)
            else:
                result.rejected[log_key] = (f"its digest {digest.file.location} failed: "
                                            f"{digest.failure}")
        if digest.failure is None:
            result.valid += 1
    return result


def match_log_files(
    result: DigestResult, stored: Iterable[tuple[int, str, str | None]],
) -> tuple[dict[int, tuple[LogValidation, str | None]], list[DigestProblem]]:
    """Judge stored log files (id, location, uncompressed hash) by the digests.

    Returns the outcome of every stored file under `AWSLogs/`, and a problem for
    each file a digest lists whose hash differs or that was never read.
    """
    outcomes: dict[int, tuple[LogValidation, str | None]] = {}
    problems: list[DigestProblem] = []
    seen: set[str] = set()
    for file_id, location, content_sha256 in stored:
        key = object_key(location)
        if key is None or _DIGEST_FOLDER in f"/{key}":
            continue
        seen.add(key)
        if key in result.listed and content_sha256 is None:
            outcomes[file_id] = (LogValidation.UNVALIDATED,
                                 "read before digest checks were set up, so the hash of "
                                 "its content is unknown")
        elif key in result.listed:
            expected, digest = result.listed[key]
            if content_sha256 == expected:
                outcomes[file_id] = (LogValidation.VALIDATED, f"listed in {digest}")
            else:
                detail = (f"SHA-256 of the uncompressed file is {content_sha256}, but "
                          f"digest {digest} lists {expected}")
                outcomes[file_id] = (LogValidation.FAILED, detail)
                problems.append(DigestProblem(location, "hash-mismatch", detail))
        elif key in result.rejected:
            outcomes[file_id] = (LogValidation.FAILED, result.rejected[key])
        else:
            outcomes[file_id] = (LogValidation.UNVALIDATED, "no valid digest lists this file")
    for key, (_, digest) in sorted(result.listed.items()):
        if key not in seen:
            problems.append(DigestProblem(key, "missing-log-file",
                                          f"listed in digest {digest} but not in the trail"))
    return outcomes, problems


def content_hashes(objects: Iterable[Any]) -> Iterator[tuple[int, str, str | None]]:
    """Yield (number, location, SHA-256 of the uncompressed bytes) of log objects.

    Digest files among them are left out. A file that is not valid gzip is hashed
    as stored, so it fails its check instead of being skipped.

    Raises:
        SourceError: an object cannot be read.
    """
    for number, item in enumerate(objects, start=1):
        if _DIGEST_FOLDER in item.location.replace("\\", "/"):
            continue
        data = item.load()
        try:
            text = decompress(data)
        except EOFError:
            text = data
        yield number, item.location, hashlib.sha256(text).hexdigest()


def local_digests(path: Path) -> Iterator[DigestFile]:
    """Yield the digest files under a local folder, with `.signature` files beside them."""
    for folder, _, names in sorted(os.walk(path)):
        for name in sorted(names):
            full = Path(folder) / name
            if _DIGEST_FOLDER not in f"/{full.as_posix()}/" or not name.endswith(".json.gz"):
                continue
            sidecar = full.with_name(name + ".signature")
            signature = sidecar.read_text().strip() if sidecar.is_file() else None
            yield DigestFile(str(full), full.read_bytes(), signature)


def s3_digests(client: Any, bucket: str, log_folders: Iterable[str]) -> Iterator[DigestFile]:
    """Yield the digests beside each `.../CloudTrail/<region>/` folder of a bucket.

    Raises:
        SourceError: listing or reading an object failed.
    """
    paginator = client.get_paginator("list_objects_v2")
    for folder in log_folders:
        if "/CloudTrail/" not in folder:
            continue
        prefix = folder.replace("/CloudTrail/", _DIGEST_FOLDER, 1)
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    response = client.get_object(Bucket=bucket, Key=item["Key"])
                    yield DigestFile(f"s3://{bucket}/{item['Key']}",
                                     response["Body"].read(),
                                     response.get("Metadata", {}).get("signature"),
                                     bucket)
        except (ClientError, BotoCoreError) as error:
            raise SourceError(f"s3://{bucket}/{prefix}",
                              f"reading digest files failed: {error}") from error
