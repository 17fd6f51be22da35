"""Audit-log files in a local folder, for every cloud's exported logs."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from imageprov.errors import SourceError
from imageprov.sources import LogObject

# Names of files that may hold audit-log JSON, plain or compressed.
SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".gz",
            ".log")


def failing(location: str, detail: str) -> Any:
    """Return a loader that raises, for an object known to be unreadable."""
    def load() -> bytes:
        raise SourceError(location, detail)
    return load


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        # A dangling link or a file removed meanwhile; reading it reports the error.
        return True


class LocalFolder:
    """Every log file under a folder, or one file, in name order.

    `account_of` names the account a file's records belong to when they name none,
    from the file's path; `format` is the log format of every file, if known.
    """

    def __init__(self, path: str | Path,
                 account_of: Callable[[str], str | None] | None = None,
                 format: str | None = None) -> None:
        # Locations are absolute, so that a file has one name however the path was
        # typed: the copy of a duplicated record that is kept goes by location.
        self.path = Path(path).absolute()
        self.name = f"file:{self.path}"
        self.account_of = account_of or (lambda _: None)
        self.format = format

    def objects(self) -> Iterator[LogObject]:
        unreadable: list[OSError] = []
        if self.path.is_file():
            paths = [self.path]
        elif self.path.is_dir():
            paths = []
            # os.walk reports a folder it cannot list; rglob would skip it silently.
            for folder, _, names in os.walk(self.path, onerror=unreadable.append):
                # Only regular files: a FIFO would block the read and a link to a
                # device such as /dev/zero would never end.
                paths.extend(path for path in (Path(folder) / name for name in names
                                               if name.lower().endswith(SUFFIXES))
                             if _regular(path))
            paths.sort()
        else:
            raise SourceError(self.name, "no such file or folder")
        for error in unreadable:
            location = str(error.filename or self.path)
            # Quarantined like an unreadable file, and listed again next time.
            yield LogObject(location, None, failing(location, f"cannot list folder: {error}"),
                            format=self.format)
        for path in paths:
            location = str(path)
            yield LogObject(location, self.account_of(location.replace("\\", "/")),
                            path.read_bytes, format=self.format)
