"""Builders of CloudTrail digest files, chained and signed as CloudTrail does it.

Each digest covers one hour of delivered log files, lists each with the hex
SHA-256 of its uncompressed bytes, links to the previous digest by key, hash and
signature, and is signed with RSA PKCS#1 v1.5 over SHA-256 of the signed text
(end time, bucket/key, digest hash, previous signature or `null`). The key pair
is made by the test; its fingerprint here is the MD5 of the DER key, which is
a choice of these tests, since the verifier only compares fingerprints.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.helpers.trail import stamp

TRAIL = "management-events"


@dataclass
class Signer:
    """An RSA key pair standing in for a Region's CloudTrail signing key."""

    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537,
                                                         key_size=2048))

    def der(self, form: str = "pkcs1") -> bytes:
        public_format = (serialization.PublicFormat.PKCS1 if form == "pkcs1"
                         else serialization.PublicFormat.SubjectPublicKeyInfo)
        return self.key.public_key().public_bytes(serialization.Encoding.DER,
                                                  public_format)

    @property
    def fingerprint(self) -> str:
        return hashlib.md5(self.der("x509")).hexdigest()  # noqa: S324 - an id, not security

    def public_key_list(self, form: str = "pkcs1") -> dict[str, Any]:
        """Return what `aws cloudtrail list-public-keys` prints for this key."""
        return {"PublicKeyList": [{
            "Value": base64.b64encode(self.der(form)).decode(),
            "ValidityStartTime": "2026-11-01T00:00:00Z",
            "ValidityEndTime": "2027-11-01T00:00:00Z",
            "Fingerprint": self.fingerprint,
        }]}

    def sign(self, text: bytes) -> str:
        return self.key.sign(text, padding.PKCS1v15(), hashes.SHA256()).hex()


@dataclass
class Digest:
    """One digest as CloudTrail stores it: key, gzip bytes and the signature."""

    key: str
    body: bytes
    signature: str
    fields: dict[str, Any]


def digest_key(account: str, region: str, end: datetime) -> str:
    return (f"AWSLogs/{account}/CloudTrail-Digest/{region}/{end:%Y/%m/%d}/"
            f"{account}_CloudTrail-Digest_{region}_{TRAIL}_{region}_{end:%Y%m%dT%H%M%SZ}"
            ".json.gz")


def build_chain(signer: Signer, bucket: str, account: str, region: str,
                hours: list[tuple[datetime, list[tuple[str, bytes]]]]) -> list[Digest]:
    """Return one digest per hour, each listing that hour's (key, gzip bytes) files."""
    digests: list[Digest] = []
    previous: Digest | None = None
    for start, files in hours:
        end = start + timedelta(hours=1)
        key = digest_key(account, region, end)
        fields = {
            "awsAccountId": account,
            "digestStartTime": stamp(start),
            "digestEndTime": stamp(end),
            "digestS3Bucket": bucket,
            "digestS3Object": key,
            "digestPublicKeyFingerprint": signer.fingerprint,
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": stamp(end) if files else None,
            "oldestEventTime": stamp(start) if files else None,
            "previousDigestS3Bucket": bucket if previous else None,
            "previousDigestS3Object": previous.key if previous else None,
            "previousDigestHashValue": (hashlib.sha256(gzip.decompress(previous.body))
                                        .hexdigest() if previous else None),
            "previousDigestHashAlgorithm": "SHA-256" if previous else None,
            "previousDigestSignature": previous.signature if previous else None,
            "logFiles": [
                {"s3Bucket": bucket, "s3Object": log_key,
                 "hashValue": hashlib.sha256(gzip.decompress(data)).hexdigest(),
                 "hashAlgorithm": "SHA-256",
                 "newestEventTime": stamp(end), "oldestEventTime": stamp(start)}
                for log_key, data in files
            ],
        }
        text = json.dumps(fields).encode()
        signed = "\n".join([
            fields["digestEndTime"], f"{bucket}/{key}", hashlib.sha256(text).hexdigest(),
            fields["previousDigestSignature"] or "null",
        ]).encode()
        digest = Digest(key, gzip.compress(text, mtime=0), signer.sign(signed), fields)
        digests.append(digest)
        previous = digest
    return digests
