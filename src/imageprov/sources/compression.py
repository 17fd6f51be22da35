"""Gzip as cloud log stores deliver it: single or concatenated members, or none."""

from __future__ import annotations

import zlib

from imageprov.model import LogDocument, RecordProblem

# ISA-L inflates about twice as fast as zlib, to the same result.
from isal.igzip_lib import DECOMP_GZIP as _ISAL_GZIP
from isal.igzip_lib import IgzipDecompressor as _IsalInflater
from isal.isal_zlib import IsalError as _InflateError

GZIP_MAGIC = b"\x1f\x8b"
# Window bits that accept a gzip or zlib header.
_GZIP_WBITS = 47
# Deflate cannot expand data more than about 1032 times, so a gzip trailer that
# claims more is false and only a bounded buffer is reserved for it.
_MAX_RATIO = 1032
_MAX_HINT = 2**28
# The maximum number of bytes one log file may be or inflate to. A worker holds a
# whole document and what it parses from it at once, so this bounds its memory.
# NOTE: the figure is an estimate of what one exported log file reaches; a real
# file larger than this is quarantined whole.
MAX_DOCUMENT_BYTES = 512 * 2**20


def decompress(data: bytes, limit: int | None = None) -> bytes:
    """Return the bytes of a gzip document uncompressed, or the bytes unchanged.

    Concatenated gzip members are one valid file and are read in turn; zero bytes
    after the last member are padding. `limit` caps the uncompressed size
    (`MAX_DOCUMENT_BYTES` when None), so that a small file that inflates to
    gigabytes is rejected before it fills memory.

    Raises:
        EOFError: the gzip stream is invalid or truncated, or the document is larger
            than the limit.
    """
    limit = MAX_DOCUMENT_BYTES if limit is None else limit
    if data[:2] != GZIP_MAGIC:
        if len(data) > limit:
            raise DocumentTooLarge(f"the document is {len(data):,} bytes, more than "
                                   f"{limit:,}, the most imageprov reads from one file")
        return data
    parts: list[bytes] = []
    size = 0
    rest = data
    while True:
        try:
            member, rest = _inflate_member(rest, limit - size)
        except (zlib.error, _InflateError) as error:
            raise EOFError(f"invalid gzip stream: {error}") from None
        except _TooLarge:
            raise DocumentTooLarge(f"the document inflates to more than {limit:,} "
                                   "bytes, the most imageprov reads from one file") from None
        parts.append(member)
        size += len(member)
        if not rest.strip(b"\0"):
            break
        if rest[:2] != GZIP_MAGIC:
            raise EOFError(f"invalid gzip stream: {len(rest):,} bytes after the last "
                           "member are not a gzip member")
    return parts[0] if len(parts) == 1 else b"".join(parts)


class DocumentTooLarge(EOFError):
    """A document is larger than the most imageprov reads from one file."""


class _TooLarge(Exception):
    """A gzip member inflates past the room left under the limit."""


def _inflate_member(data: bytes, room: int) -> tuple[bytes, bytes]:
    """Inflate the first gzip member of `data` and return it with the bytes after it.

    Raises:
        EOFError: the member is truncated.
        _TooLarge: the member inflates to more than `room` bytes.
    """
    # The last four bytes of a single-member file give its uncompressed size. Asking
    # for that much output at once lets the inflater fill one buffer, which on
    # CloudTrail files halved the time of growing one piece by piece. A trailer that
    # gives a false size fails the inflater's own length check, as it does in zlib.
    hint = min(int.from_bytes(data[-4:], "little") + 1, len(data) * _MAX_RATIO, _MAX_HINT)
    inflater = _IsalInflater(_ISAL_GZIP)
    parts = [inflater.decompress(data, min(hint, room + 1))]
    size = len(parts[0])
    while not inflater.eof and not inflater.needs_input and size <= room:
        parts.append(inflater.decompress(b"", min(max(hint, 2**20), room + 1 - size)))
        size += len(parts[-1])
    if size > room:
        raise _TooLarge
    if not inflater.eof:
        raise EOFError("the gzip stream is truncated")
    text = parts[0] if len(parts) == 1 else b"".join(parts)
    return text, inflater.unused_data


def head(data: bytes, size: int = 4096) -> bytes:
    """Return up to `size` leading bytes of the uncompressed document, stripped of a
    byte-order mark and leading whitespace; a broken stream gives what inflated.

    Concatenated gzip members are followed, so an empty first member does not hide
    the document.
    """
    # Most documents start at once, so `size` bytes and room for a byte-order mark
    # are inflated first. Up to four times `size` are inflated only where
    # whitespace came first.
    text = _leading(data, size + 3)
    start = _without_blank_start(text)
    if len(start) < size and len(text) == size + 3:
        start = _without_blank_start(_leading(data, size * 4))
    return start[:size]


def _leading(data: bytes, size: int) -> bytes:
    """Return up to `size` leading bytes of the document, inflated where gzip."""
    if data[:2] != GZIP_MAGIC:
        return data[:size]
    text = b""
    rest = data[: 64 * 1024]
    while rest[:2] == GZIP_MAGIC and len(text) < size:
        inflater = zlib.decompressobj(_GZIP_WBITS)
        try:
            text += inflater.decompress(rest, size - len(text))
        except zlib.error:
            break
        if not inflater.eof:
            break
        rest = inflater.unused_data
    return text


def _without_blank_start(text: bytes) -> bytes:
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    return text.lstrip()


def emptied_gzip(data: bytes, location: str) -> bool:
    """Say whether a file named as gzip has no bytes at all. Gzip data always has a
    header, so such a file was cut short or emptied."""
    return not data and location.lower().endswith(".gz")


def document_text(data: bytes, result: LogDocument) -> bytes | None:
    """Return a document's text, uncompressed and without a byte-order mark.

    An invalid gzip stream is recorded in `result` as a problem of the file, and an
    empty document as a notice; both return None, so the caller reads nothing.
    """
    try:
        text = decompress(data)
    except DocumentTooLarge as error:
        result.problems.append(RecordProblem(result.location, -1, "(file)", str(error)))
        return None
    except EOFError as error:
        result.problems.append(
            RecordProblem(result.location, -1, "(file)", f"invalid gzip: {error}"))
        return None
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    # isspace() stops at the first byte that is not whitespace, but strip() copies.
    if not text or text.isspace():
        result.notices.append("empty file")
        return None
    return text
