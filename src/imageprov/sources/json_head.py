"""The keys in the first bytes of a JSON document, apart from its string values.

Formats are recognised by the first few KiB of a document. Callers choose many
string values in audit records (image names, tags, descriptions), and the keys of
tag maps and request bodies. So a marker is looked for only among the keys of the
objects where records sit, and among the values of named keys there. This module tokenises a
document's start, which may end inside a string, in one pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# A JSON string, with a colon after it where it is a key, a bracket, or a line
# break before a bracket. Numbers, literals, commas and other whitespace are
# skipped, since only the nesting, the keys and string values matter here. A JSON
# string never contains a raw line break, so a string also ends at a line break, as
# it does at the end of the text. Every string token thus matches where
# it starts, and no position is scanned twice.
_TOKEN = re.compile(
    rb'("[^"\\\n]*(?:\\[^\n][^"\\\n]*)*(?:"|\\?(?=\n|\Z)))(\s*:)?'
    rb'|[{}\[\]]|\n(?=[{\[])')
_NEW_LINE = b"\n"

# The places where a record sits, as the keys and array items that lead to it. They
# are the top level of a document or of a JSON line and an item of a top-level
# array. They are also an item of `Records` or `Events`, alone or in an array of
# log files, and the `detail` of an EventBridge event, alone or in an array.
ITEM = b"[]"
RECORD_PLACES = frozenset({(), (ITEM,), (b'"Records"', ITEM), (ITEM, b'"Records"', ITEM),
                           (b'"Events"', ITEM), (b'"detail"',), (ITEM, b'"detail"')})
# The places whose keys formats are recognised by: the record places, the items of
# the lists that Azure and Google wrap records in, and the `properties`, `message`
# and `request` of a record. Deeper objects hold request bodies, tags and labels,
# whose keys callers choose, so their keys are left out.
_WRAPPED = (b'"records"', b'"value"', b'"entries"', b'"tables"')
MARKER_PLACES = RECORD_PLACES | {(name, ITEM) for name in _WRAPPED} | {
    (*place, key) for place in ((), (ITEM,), *((name, ITEM) for name in _WRAPPED))
    for key in (b'"properties"', b'"message"', b'"request"')}
# The columns of a Log Analytics query response, whose names are values.
_COLUMNS = (b'"tables"', ITEM, b'"columns"', ITEM)
# Those places are at most this deep, so deeper objects keep no place.
_PLACE_DEPTH = max(len(place) for place in (*MARKER_PLACES, _COLUMNS))
_NAME = b'"name"'


@dataclass(frozen=True)
class Head:
    """The keys and named values found in a document's start."""

    # Every key of an object at a marker place, with its quotes, in the order found.
    keys: bytes
    # Each string value of a key at a marker place, as `"key":"value"`.
    pairs: bytes
    # The names of the columns of a Log Analytics query response, with their quotes.
    columns: bytes
    # The keys of each object at a record place, in the order the objects opened.
    records: tuple[frozenset[bytes], ...]


@lru_cache(maxsize=16)
def scan(start: bytes) -> Head:
    """Return the keys and named values in `start`, the first bytes of a JSON
    document.

    Text in a string value never counts as a key, nor does a key of an object below
    the marker places. An object cut off at the end of `start` has the keys seen
    before the cut. A line that starts with a bracket starts a new document, as in
    JSON Lines, so one broken line does not hide the lines after it.
    """
    keys: list[bytes] = []
    pairs: list[bytes] = []
    columns: list[bytes] = []
    records: list[set[bytes]] = []
    # One frame per open bracket: its place, or None below the marker places, the
    # index of its key set in `records` or -1, and whether its keys are kept. An
    # object's frame also has the last key seen, cleared once its value is read.
    places: list[tuple[bytes, ...] | None] = []
    record_of: list[int] = []
    objects: list[bool] = []
    keeps_keys: list[bool] = []
    last_key: list[bytes] = []
    for token in _TOKEN.finditer(start):
        text = token.group(1)
        if text is not None:
            if not objects or not objects[-1]:
                continue
            if token.group(2) is not None:
                if keeps_keys[-1]:
                    keys.append(text)
                last_key[-1] = text
                if record_of[-1] >= 0:
                    records[record_of[-1]].add(text)
            elif last_key[-1]:
                if keeps_keys[-1]:
                    pairs.append(last_key[-1] + b":" + text)
                elif places[-1] == _COLUMNS and last_key[-1] == _NAME:
                    columns.append(text)
                last_key[-1] = b""
            continue
        bracket = token.group(0)
        if bracket == _NEW_LINE:
            places.clear()
            record_of.clear()
            objects.clear()
            keeps_keys.clear()
            last_key.clear()
            continue
        if bracket in (b"}", b"]"):
            if places:
                places.pop()
                record_of.pop()
                objects.pop()
                keeps_keys.pop()
                last_key.pop()
            continue
        place: tuple[bytes, ...] | None
        if not places:
            place = ()
        elif places[-1] is None or len(places[-1]) >= _PLACE_DEPTH:
            place = None
        else:
            place = (*places[-1], last_key[-1] if objects[-1] else ITEM)
        if objects and objects[-1]:
            last_key[-1] = b""
        is_object = bracket == b"{"
        places.append(place)
        objects.append(is_object)
        keeps_keys.append(is_object and place in MARKER_PLACES)
        last_key.append(b"")
        if is_object and place in RECORD_PLACES:
            records.append(set())
            record_of.append(len(records) - 1)
        else:
            record_of.append(-1)
    return Head(b"".join(keys), b"".join(pairs), b"".join(columns),
                tuple(frozenset(found) for found in records))
