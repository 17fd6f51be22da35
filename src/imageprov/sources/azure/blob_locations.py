"""Azure Monitor export blobs in a storage container, read incrementally.

Diagnostic settings write one blob per hour under a folder per resource:
`resourceId=/SUBSCRIPTIONS/<id>/y=YYYY/m=MM/d=DD/h=HH/m=00/PT1H.json` for the
Activity Log (container `insights-activity-logs`), and the resource's full id for
resource logs such as ACR's `insights-logs-containerregistryrepositoryevents`.

Each folder is one incremental source, and its checkpoint is the newest blob
stored. Every blob from `reread` hours before that blob's hour on is listed again,
because the current hour's blob keeps growing and the previous one may still get
records just after the hour. A grown blob has a new content hash, so it is read
again whole. Its events keep their keys, so the store adds only the new ones.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError

from imageprov.errors import SourceError
from imageprov.sources import LogObject
from imageprov.sources.azure.resource_ids import subscription_of

_HOUR = re.compile(r"/y=(\d{4})/m=(\d{2})/d=(\d{2})/h=(\d{2})/")


def folder_of(name: str) -> str:
    """Return the resource folder of a blob name: the text before `/y=`."""
    cut = name.find("/y=")
    return name[:cut] if cut >= 0 else name.rsplit("/", 1)[0]


def reread_from(folder: str, checkpoint: str | None, reread: timedelta) -> str | None:
    """Return the first blob name to list again, `reread` before the checkpoint's hour."""
    if checkpoint is None:
        return None
    match = _HOUR.search(checkpoint)
    if match is None:
        return checkpoint
    year, month, day, hour = (int(part) for part in match.groups())
    try:
        start = datetime(year, month, day, hour) - reread
    except (ValueError, OverflowError):
        # A blob name with an impossible hour, or one too early to step back
        # from: every blob of the folder is listed again.
        return None
    return f"{folder}/y={start:%Y}/m={start:%m}/d={start:%d}/h={start:%H}/"


class BlobLogs:
    """The export blobs under a prefix of one container, folder by folder."""

    def __init__(self, container: Any, prefix: str, format: str | None,
                 reread: timedelta = timedelta(hours=3),
                 start_after: Callable[[str], str | None] | None = None,
                 fallback_account: str | None = None) -> None:
        self.container = container
        self.prefix = prefix
        self.format = format
        self.reread = reread
        self.start_after = start_after or (lambda _name: None)
        self.fallback_account = fallback_account
        self.base = f"azblob://{container.account_name}/{container.container_name}"
        self.name = f"{self.base}/{prefix}"

    def _names(self) -> dict[str, list[str]]:
        folders: dict[str, list[str]] = defaultdict(list)
        try:
            for blob in self.container.list_blobs(name_starts_with=self.prefix or None):
                if not blob.name.endswith("/"):
                    folders[folder_of(blob.name)].append(blob.name)
        except AzureError as error:
            raise SourceError(self.name, f"listing the container failed: {error.message}"
                              ) from error
        return folders

    def objects(self) -> Iterator[LogObject]:
        # NOTE: every blob name under the prefix is listed each time (one per hour
        # and folder); the checkpoint only limits which blobs are downloaded.
        for folder, names in sorted(self._names().items()):
            checkpoint = f"{self.base}/{folder}/"
            first = reread_from(folder, self.start_after(checkpoint), self.reread)
            account = subscription_of(folder.removeprefix("resourceId=")) or (
                self.fallback_account)
            for name in sorted(names):
                if first is not None and name < first:
                    continue
                yield LogObject(f"{self.base}/{name}", account, self._loader(name),
                                checkpoint, name, self.format)

    def _loader(self, name: str) -> Callable[[], bytes]:
        def load() -> bytes:
            try:
                return self.container.download_blob(name).readall()
            except AzureError as error:
                raise SourceError(f"{self.base}/{name}",
                                  f"reading the blob failed: {error.message}") from error
        return load
