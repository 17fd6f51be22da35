"""Gzip as cloud log stores deliver it: single or concatenated members, or none."""

from __future__ import annotations

import gzip
import zlib

from imageprov.model import LogDocument, RecordProblem

try:
    # ISA-L inflates about twice as fast as zlib, to the same result.
    from isal.isal_zlib import IsalError as _InflateError
    from isal.isal_zlib import decompressobj as _inflater
except ImportError:  # pragma: no cover - exercised only where the wheel is missing
    from zlib import decompressobj as _inflater
    from zlib import error as _InflateError

_GZIP_MAGIC = b"\x1f\x8b"
# Window bits that accept a gzip or zlib header.
_GZIP_WBITS = 47


def decompress(data: bytes) -> bytes:
    """Return the bytes of a gzip document uncompressed, or the bytes unchanged.

    Raises:
        EOFError: the gzip stream is invalid or truncated.
    """
    if data[:2] != _GZIP_MAGIC:
        return data
    inflater = _inflater(_GZIP_WBITS)
    try:
        text = inflater.decompress(data)
    except (zlib.error, _InflateError) as error:
        raise EOFError(f"invalid gzip stream: {error}") from None
    if not inflater.eof:
        raise EOFError("the gzip stream is truncated")
    if inflater.unused_data.strip(b"\0"):
        # Concatenated gzip members are one valid file; the standard library reads
        # every member, where one inflater stops after the first.
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise EOFError(f"invalid gzip member: {error}") from None
    return text


def head(data: bytes, size: int = 4096) -> bytes:
    """Return up to `size` leading bytes of the uncompressed document, stripped of a
    byte-order mark and leading whitespace; a broken stream gives what inflated."""
    if data[:2] == _GZIP_MAGIC:
        inflater = zlib.decompressobj(_GZIP_WBITS)
        try:
            text = inflater.decompress(data[: 64 * 1024], size * 4)
        except zlib.error:
            text = b""
    else:
        text = data[: size * 4]
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    return text.lstrip()[:size]


def document_text(data: bytes, result: LogDocument) -> bytes | None:
    """Return a document's text, uncompressed and without a byte-order mark.

    An invalid gzip stream is recorded in `result` as a problem of the file, and an
    empty document as a notice; both return None, so the caller reads nothing.
    """
    try:
        text = decompress(data)
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
