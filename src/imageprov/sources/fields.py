"""Typed values read out of parsed log records: JSON type names and event times,
and the JSON kept of a record."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from imageprov.errors import RecordError

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean",
               int: "number", float: "number", type(None): "null"}

# A date and a time of day, with optional fraction and offset. The standard
# library's parser also takes week dates, dates alone and any separator, even a
# NUL, none of which a log writes for an event time.
_TIME = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?")
_SECOND = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")
_SHOWN = 80


def error_text(error: Exception) -> str:
    """Return a short message for a failed check of a record's field.

    A pydantic error lists each field and what was wrong, without the link to its
    documentation that its text ends with.
    """
    if isinstance(error, ValidationError):
        parts = [f"{'.'.join(str(part) for part in item['loc']) or '(value)'}: {item['msg']}"
                 for item in error.errors(include_url=False)[:3]]
        return "; ".join(parts)[:300]
    return str(error)[:300]


def record_json(value: Any, option: int | None = None) -> bytes:
    """Return `value` as compact JSON, in a buffer of its own size.

    A document keeps the JSON of every image event's record until its batch is
    stored. orjson 3.13 returns its output in the buffer it wrote it into, which
    was 16 KiB for a record of 1.4 KB, so the text is copied out.

    Raises:
        orjson.JSONEncodeError: as `orjson.dumps` raises it.
    """
    return bytes(memoryview(orjson.dumps(value, option=option)))


def json_type(value: Any) -> str:
    """Return the JSON name of a parsed value's type, for messages."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def shown(value: str, limit: int = _SHOWN) -> str:
    """Return `value` quoted for a message, cut to `limit` characters with its length."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value):,} characters)"


def parse_log_time(value: Any, location: str, index: int, field: str,
                   standard: str = "an ISO 8601") -> datetime:
    """Parse an event time into UTC; text without an offset is UTC.

    Fractions of a second past microseconds are dropped.

    Raises:
        RecordError: the value is not a date and time, or is out of range once
            converted to UTC.
    """
    if not isinstance(value, str):
        raise RecordError(location, index, field,
                          f"expected a time string, got {json_type(value)}")
    match = _TIME.fullmatch(value)
    if match is None:
        raise RecordError(location, index, field,
                          f"invalid time {shown(value)}, expected {standard} "
                          "date and time")
    date, clock, fraction, offset = match.groups()
    offset = "+00:00" if offset is None or offset in "Zz" else offset
    try:
        return datetime.fromisoformat(f"{date}T{clock}{(fraction or '')[:7]}{offset}"
                                      ).astimezone(UTC)
    except (ValueError, OverflowError) as error:
        raise RecordError(location, index, field,
                          f"invalid time {shown(value)}: {error}") from None


def is_utc_second(text: str) -> bool:
    """Say whether `text` is a real UTC time written `YYYY-MM-DDTHH:MM:SS`, with an
    optional fraction of ASCII digits and a final `Z`, or without both."""
    if _SECOND.match(text) is None:
        return False
    rest = text[19:]
    if rest not in ("", "Z") and not (
            rest[0] == "." and rest[-1] == "Z" and len(rest) > 2
            and rest[1:-1].isascii() and rest[1:-1].isdigit()):
        return False
    try:
        datetime.fromisoformat(text[:19])
    except ValueError:
        return False
    return True


# The problem of a value that `undecodable_path` finds. The standard library keeps
# invalid bytes and a `\\ud800` escape without its pair alike, as lone surrogates.
NOT_UTF8 = "text that is not UTF-8: invalid bytes or an unpaired surrogate escape"


def undecodable_path(value: Any, path: str = "") -> str | None:
    """Return the path of the first key or string that holds bytes that are not
    UTF-8, or None.

    The standard library's parser, given text decoded with `surrogateescape`, keeps
    such bytes as lone surrogates, which cannot be written back as UTF-8.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "(value)"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            where = path + "." + key if path else key
            if undecodable_path(key) is not None:
                return where
            found = undecodable_path(item, where)
            if found is not None:
                return found
    elif isinstance(value, list):
        for number, item in enumerate(value):
            found = undecodable_path(item, f"{path}[{number}]")
            if found is not None:
                return found
    return None


def loads_tolerantly(text: bytes) -> Any:
    """Parse JSON that orjson rejected, with the standard library.

    A number beyond a double becomes infinity, and bytes that are not UTF-8 become
    lone surrogates that `undecodable_path` finds.

    Raises:
        ValueError: the text is not JSON.
    """
    try:
        return json.loads(text.decode("utf-8", "surrogateescape"))
    except RecursionError:
        raise ValueError("nested too deeply") from None
