"""Where CloudTrail files are read from: a local folder or an S3 bucket.

Both follow the key layout S3 delivery uses, `AWSLogs/<account>/CloudTrail/<region>/
YYYY/MM/DD/<file>`, with an organisation id before the account for organisation
trails; the account in the key is the fallback for records that name none.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from imageprov.errors import SourceError

_KEY_ACCOUNT = re.compile(r"AWSLogs/(?:o-[a-z0-9]+/)?(\d{12})/")
_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".gz")


def account_from_key(key: str) -> str | None:
    """Return the account id in an `AWSLogs/...` key, or None for another layout."""
    match = _KEY_ACCOUNT.search(key)
    return match.group(1) if match else None


@dataclass(frozen=True)
class LogObject:
    """One file or object to read; `load` returns its bytes as stored."""

    location: str
    fallback_account: str | None
    loader: Any

    def load(self) -> bytes:
        return self.loader()


class LocalTrail:
    """Every log file under a folder, or one file, in name order."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path}"

    def objects(self) -> Iterator[LogObject]:
        if self.path.is_file():
            paths = [self.path]
        elif self.path.is_dir():
            paths = sorted(
                p for p in self.path.rglob("*")
                if p.is_file() and p.name.lower().endswith(_SUFFIXES)
            )
        else:
            raise SourceError(self.name, "no such file or folder")
        for path in paths:
            location = str(path)
            yield LogObject(location, account_from_key(location.replace("\\", "/")),
                            path.read_bytes)


class S3Trail:
    """Every object under a key prefix of a trail bucket, in key order."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.name = f"s3://{bucket}/{prefix}"

    def objects(self) -> Iterator[LogObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key.endswith("/"):
                        continue
                    yield LogObject(f"s3://{self.bucket}/{key}", account_from_key(key),
                                    self._loader(key))
        except (ClientError, BotoCoreError) as error:
            raise SourceError(self.name, f"listing the bucket failed: {error}") from error

    def _loader(self, key: str) -> Any:
        def load() -> bytes:
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
                return response["Body"].read()
            except (ClientError, BotoCoreError) as error:
                raise SourceError(f"s3://{self.bucket}/{key}",
                                  f"reading the object failed: {error}") from error
        return load
