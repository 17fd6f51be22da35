"""Adapters that turn cloud inventories and audit logs into model objects.

Each cloud is a package here. An image source yields `Image` objects. A log format
turns audit-log documents into `CreationEvent` objects inside a `LogDocument`. A log
location lists the files or messages to read as `LogObject`s. None of them writes to
the store or applies the policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from imageprov.model import Image, LogDocument


class ImageSource(Protocol):
    """An inventory of the images that exist now in one account or registry."""

    name: str

    def images(self) -> Iterator[Image]:
        """Yield every image the source can see, paging through the API."""
        ...


@dataclass(frozen=True)
class LogObject:
    """One file, object or message to read; `load` returns its bytes as stored.

    `checkpoint` names the incremental source the object belongs to, and `position`
    is the point that source reaches once the object is stored. `format` names the
    log format that reads it; without one the format is recognised from the content.
    `content_hash` requests the SHA-256 of the uncompressed bytes, which digest
    checks need.
    """

    location: str
    fallback_account: str | None
    loader: Any
    checkpoint: str | None = None
    position: str | None = None
    format: str | None = None
    content_hash: bool = False
    # A location stored as read before. It is listed only so that the run counts it,
    # and is neither loaded nor read again.
    read_before: bool = False

    def load(self) -> bytes:
        return self.loader()


@dataclass(frozen=True)
class LogFormat:
    """A kind of audit-log document and the function that reads it.

    `recognises` takes the first bytes of a document, uncompressed and with leading
    whitespace removed, and returns whether this format reads it. `read` never
    raises for bad content: problems go into the document it returns. `threaded`
    marks a format whose `read` spends most of its time in native code that
    releases the GIL, so that threads of one process read its documents in parallel.
    `read_many`, where given, reads a list of (data, location, fallback account)
    as `read` reads each one, in fewer native calls.
    """

    name: str
    platform: str
    recognises: Callable[[bytes], bool]
    read: Callable[[bytes, str, str | None], LogDocument]
    threaded: bool = False
    read_many: Callable[[Sequence[tuple[bytes, str, str | None]]],
                        list[LogDocument]] | None = None
