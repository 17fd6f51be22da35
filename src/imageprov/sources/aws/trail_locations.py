"""Where CloudTrail files are read from: a local folder or an S3 bucket.

Both follow the key layout S3 delivery uses, `AWSLogs/<account>/CloudTrail/<region>/
YYYY/MM/DD/<file>`, with an organisation id before the account for organisation
trails; the account in the key is the fallback for records that name none.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from imageprov.errors import SourceError
from imageprov.sources import LogObject
from imageprov.sources.aws.cloudtrail import SOURCE
from imageprov.sources.files import SUFFIXES, LocalFolder, failing

logger = logging.getLogger(__name__)

_KEY_ACCOUNT = re.compile(r"AWSLogs/(?:o-[a-z0-9]+/)?(\d{12})/")
_REGION_FOLDER = re.compile(r"/CloudTrail/[^/]+/$")
# Folders beside CloudTrail/ that hold no API-call records.
_NOT_LOGS = frozenset({"CloudTrail-Digest", "CloudTrail-Insight"})


# How many folders below the prefix are searched for `.../CloudTrail/<region>/`.
# An organisation trail under `<prefix>/AWSLogs/<org>/<account>/CloudTrail/<region>/`
# is five below its own prefix, so this leaves room for a few folders above it.
MAX_FOLDER_DEPTH = 10

# Days before the checkpoint's day that are listed again on every read, by
# default. Files delivered in the same minute sort by a random suffix, and copied
# or replicated buckets can receive older keys late, so a new file can sort before
# the checkpoint. The daemon does not read a file that arrives later than this, by
# its key's date, but `imageprov ingest s3://...` lists the whole prefix.
REREAD_DAYS = 1
_DAY_FOLDER = re.compile(r"(\d{4})/(\d{2})/(\d{2})/")


def _listing_start(folder: str, after: str | None,
                   days: int = REREAD_DAYS) -> str | None:
    """Return the key to list `folder` after: the start of the day folder `days`
    before the checkpoint's day, or the checkpoint itself where the keys are not in
    the dated layout."""
    if after is None or not after.startswith(folder):
        return after
    match = _DAY_FOLDER.match(after, len(folder))
    if match is None:
        return after
    try:
        day = date(*(int(part) for part in match.groups()))
        earlier = day - timedelta(days=days)
    except (ValueError, OverflowError):
        return after
    # Every key of that day folder, and of later ones, sorts after this prefix.
    return f"{folder}{earlier.year:04d}/{earlier.month:02d}/{earlier.day:02d}/"


def _log_key(key: str, trail_folder: bool) -> bool:
    """Return whether an S3 key may hold audit-log JSON, by its name.

    In a CloudTrail region folder, every log file ends in `.json.gz`, so a stray
    object such as a README is left out. Elsewhere any object is read, since other
    delivery streams may write keys without a suffix.
    """
    if key.endswith("/"):
        return False
    return not trail_folder or key.lower().endswith(SUFFIXES)


def account_from_key(key: str) -> str | None:
    """Return the account id in an `AWSLogs/...` key, or None for another layout."""
    match = _KEY_ACCOUNT.search(key)
    return match.group(1) if match else None


class LocalTrail(LocalFolder):
    """Every CloudTrail file under a folder, or one file, in name order; the account
    in an `AWSLogs/...` path names the account of records that name none."""

    def __init__(self, path: str | Path, format: str | None = SOURCE,
                 quarantine_bad_path: bool = False) -> None:
        super().__init__(path, account_from_key, format, quarantine_bad_path)


class S3Trail:
    """The objects under a key prefix of a trail bucket, in key order.

    Under the S3 delivery layout every `.../CloudTrail/<region>/` folder is read on its
    own, from the day folder before the last key stored for it. Keys there are dated
    by delivery minute, but files of one minute sort by a random suffix, so a new
    file can sort before a key already read. Keys read before are skipped without a
    download. Digest and Insights folders are left out. A prefix with no CloudTrail
    folder under it is read whole, in key order.
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "",
                 start_after: Any = None, claim: Any = None, known: Any = None,
                 format: str | None = SOURCE, reread_days: int = REREAD_DAYS,
                 stop: threading.Event | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        # The log format of every object, or None to recognise it per object.
        self.format = format
        self.reread_days = reread_days
        # Once set, the search for region folders lists no further page, and no
        # folder is read.
        self.stop = stop
        self.name = f"s3://{bucket}/{prefix}"
        self.start_after = start_after or (lambda _name: None)
        # A folder another replica has claimed is left to it.
        self.claim = claim or (lambda _name: True)
        # Returns which of the given locations were read before, so they are not
        # downloaded again.
        self.known = known or (lambda _locations: set())

    def folders(self) -> list[str]:
        """Return the prefixes to read incrementally, one per account and region."""
        cut_off: list[str] = []
        try:
            found = self._region_folders(self.prefix, 0, cut_off)
        except (ClientError, BotoCoreError) as error:
            raise SourceError(self.name, f"listing the bucket failed: {error}") from error
        if cut_off:
            logger.warning("%s: %d folders %d levels below the prefix were not searched "
                           "for CloudTrail region folders, such as s3://%s/%s; give a "
                           "longer prefix", self.name, len(cut_off), MAX_FOLDER_DEPTH,
                           self.bucket, cut_off[0])
        return sorted(found) or [self.prefix]

    def _region_folders(self, prefix: str, depth: int, cut_off: list[str]) -> list[str]:
        if _REGION_FOLDER.search(prefix):
            return [prefix]
        if depth >= MAX_FOLDER_DEPTH:
            cut_off.append(prefix)
            return []
        if self._stopped():
            return []
        paginator = self.client.get_paginator("list_objects_v2")
        found: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            if self._stopped():
                return found
            for common in page.get("CommonPrefixes", []):
                child = common["Prefix"]
                if child.rstrip("/").rsplit("/", 1)[-1] in _NOT_LOGS:
                    continue
                found.extend(self._region_folders(child, depth + 1, cut_off))
        return found

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def objects(self) -> Iterator[LogObject]:
        folders = self.folders()
        if self._stopped():
            return
        for folder in folders:
            checkpoint = f"s3://{self.bucket}/{folder}"
            if not self.claim(checkpoint):
                logger.info("%s is being read by another replica", checkpoint)
                continue
            yield from self._folder_objects(folder, checkpoint,
                                            self.start_after(checkpoint))

    def _folder_objects(self, folder: str, checkpoint: str,
                        after: str | None) -> Iterator[LogObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        start = _listing_start(folder, after, self.reread_days)
        trail_folder = _REGION_FOLDER.search(folder) is not None
        options = {"StartAfter": start} if start else {}
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=folder, **options):
                keys = [item["Key"] for item in page.get("Contents", [])
                        if _log_key(item["Key"], trail_folder)]
                known = self.known([f"s3://{self.bucket}/{key}" for key in keys])
                for key in keys:
                    location = f"s3://{self.bucket}/{key}"
                    if location in known:
                        # Keys listed again only to find late files are not counted.
                        if after is None or key > after:
                            yield LogObject(location, account_from_key(key), None,
                                            format=self.format, read_before=True)
                        continue
                    # A late file re-listed before the checkpoint does not move the
                    # checkpoint back.
                    position = max(key, after) if after else key
                    yield LogObject(location, account_from_key(key), self._loader(key),
                                    checkpoint, position, self.format)
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
