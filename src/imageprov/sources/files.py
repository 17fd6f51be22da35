"""Audit-log files in a local folder, for every cloud's exported logs."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from imageprov.errors import SourceError
from imageprov.sources import LogObject

logger = logging.getLogger(__name__)

# Names of files that may hold audit-log JSON, plain or compressed.
SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".gz",
            ".log")


def failing(location: str, detail: str) -> Any:
    """Return a loader that raises, for an object known to be unreadable."""
    def load() -> bytes:
        raise SourceError(location, detail)
    return load


def _regular(path: str) -> bool:
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        # A dangling link or a file removed meanwhile; reading it reports the error.
        return True
    if not regular:
        logger.warning("skipped %s: not a regular file", path)
    return regular


def _path_problem(path: Path) -> tuple[int, str | None]:
    """Return the mode of `path` (0 when it cannot be read) and why it cannot be
    read as a log file or folder, or None."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return 0, "no such file or folder"
    except OSError as error:
        return 0, f"cannot read: {error.strerror or error}"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return mode, None
    # A FIFO given by name would block the read, and a device would never end.
    return mode, "not a regular file or folder"


def _canonical(path: Path) -> Path:
    """Return `path` absolute, with `..` and links resolved, except that a file keeps
    its own name, so that a link to a file is reported as the name given."""
    try:
        full = path.resolve()
        return full if full.is_dir() else path.parent.resolve() / path.name
    except (OSError, RuntimeError):
        # A loop of links: reading it reports the error.
        return path.absolute()


class LocalFolder:
    """Every log file under a folder, or one file, in name order.

    `account_of` names the account a file's records belong to when they name none,
    from the file's path; `format` is the log format of every file, if known.
    A path that is missing or not a regular file or folder raises SourceError, so
    that a configured location that disappeared fails its source. With
    `quarantine_bad_path` it becomes one unreadable object instead, so that a
    command given several paths reads the others.
    """

    def __init__(self, path: str | Path,
                 account_of: Callable[[str], str | None] | None = None,
                 format: str | None = None, quarantine_bad_path: bool = False) -> None:
        # Locations are absolute, with links and `..` resolved, so that a file has
        # one name however the path was typed: the copy of a duplicated record that
        # is kept goes by location.
        self.empty = not str(path).strip()
        self.path = _canonical(Path(path))
        self.name = f"file:{path}" if self.empty else f"file:{self.path}"
        self.account_of = account_of or (lambda _: None)
        self.format = format
        self.quarantine_bad_path = quarantine_bad_path

    def objects(self) -> Iterator[LogObject]:
        # An empty path would otherwise name the current folder.
        mode, problem = (0, "empty path") if self.empty else _path_problem(self.path)
        if problem is not None:
            if not self.quarantine_bad_path:
                raise SourceError(self.name, problem)
            location = str(self.path)
            yield LogObject(location, None, failing(location, problem), format=self.format)
            return
        unreadable: list[OSError] = []
        if stat.S_ISREG(mode):
            paths = [str(self.path)]
        else:
            paths = []
            # os.walk reports a folder it cannot list; rglob would skip it silently.
            # Paths stay strings: on 10,000 files, a pathlib object per file took
            # longer than the walk itself.
            for folder, _, names in os.walk(self.path, onerror=unreadable.append):
                # Only regular files: a FIFO would block the read and a link to a
                # device such as /dev/zero would never end.
                paths.extend(path for path in (os.path.join(folder, name) for name in names
                                               if name.lower().endswith(SUFFIXES))
                             if _regular(path))
            # Paths sort by component, as pathlib compares them, so `a/b` comes
            # before `a-c` although "-" sorts before "/".
            paths.sort(key=lambda path: path.split(os.sep))
        for error in unreadable:
            location = str(error.filename or self.path)
            # Quarantined like an unreadable file, and listed again next time.
            yield LogObject(location, None, failing(location, f"cannot list folder: {error}"),
                            format=self.format)
        for location in paths:
            yield LogObject(location, self.account_of(location.replace("\\", "/")),
                            partial(_read_bytes, location), format=self.format)


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()
