"""The keys in the first bytes of a JSON document, apart from its string values.

Formats are recognised by the first few KiB of a document. Callers choose many
string values in audit records (image names, tags, descriptions), so a marker that
is a key must be looked for among keys only. This module tokenises a document's
start, which may end inside a string, in one pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# A JSON string, with a colon after it where it is a key, or a bracket. Numbers,
# literals, commas and whitespace are skipped, since only the nesting and the keys
# matter here. A string cut off by the end of the text, even after a backslash,
# runs to the end, so that no position is scanned twice.
_TOKEN = re.compile(rb'("[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z))(\s*:)?|[{}\[\]]')

# The places where a record sits, as the keys and array items that lead to it. They
# are the top level of a document or of a JSON line and an item of a top-level
# array. They are also an item of `Records` or `Events`, and the `detail` of an
# EventBridge event, alone or in an array.
ITEM = b"[]"
RECORD_PLACES = frozenset({(), (ITEM,), (b'"Records"', ITEM), (b'"Events"', ITEM),
                           (b'"detail"',), (ITEM, b'"detail"')})
# The places whose keys formats are recognised by: the record places, the items of
# the lists that Azure and Google wrap records in, the `properties` of a record, and
# the `message` of a Pub/Sub push. Deeper objects hold request bodies, tags and
# labels, whose keys callers choose, so their keys are left out.
_WRAPPED = (b'"records"', b'"value"', b'"entries"')
MARKER_PLACES = RECORD_PLACES | {(name, ITEM) for name in _WRAPPED} | {
    (*place, key) for place in ((), (ITEM,), *((name, ITEM) for name in _WRAPPED))
    for key in (b'"properties"', b'"message"')}
# Those places are at most this deep, so deeper objects keep no place.
_PLACE_DEPTH = max(len(place) for place in MARKER_PLACES)


# A column of a Log Analytics query response, whose column names are values.
_COLUMN = re.compile(rb'"name"\s*:\s*("[^"\\]*")')


def column_names(start: bytes) -> bytes:
    """Return the column names of a query response in `start`, each in its quotes."""
    return b"".join(match.group(1) for match in _COLUMN.finditer(start))


@dataclass(frozen=True)
class Head:
    """The keys found in a document's start."""

    # Every key of an object at a marker place, with its quotes, in the order found.
    keys: bytes
    # The keys of each object at a record place, in the order the objects opened.
    records: tuple[frozenset[bytes], ...]


@lru_cache(maxsize=16)
def scan(start: bytes) -> Head:
    """Return the keys in `start`, the first bytes of a JSON document.

    Text in a string value never counts as a key, nor does a key of an object
    below the marker places. An object cut off at the end of `start` has the keys
    seen before the cut.
    """
    keys: list[bytes] = []
    records: list[set[bytes]] = []
    # One frame per open bracket: its place, or None below the marker places, the
    # index of its key set in `records` or -1, whether its keys are kept, and for
    # objects the last key seen.
    places: list[tuple[bytes, ...] | None] = []
    record_of: list[int] = []
    objects: list[bool] = []
    kept: list[bool] = []
    last_key: list[bytes] = []
    for token in _TOKEN.finditer(start):
        text = token.group(1)
        if text is not None:
            if token.group(2) is not None and objects and objects[-1]:
                if kept[-1]:
                    keys.append(text)
                last_key[-1] = text
                if record_of[-1] >= 0:
                    records[record_of[-1]].add(text)
            continue
        if token.group(0) in (b"}", b"]"):
            if places:
                places.pop()
                record_of.pop()
                objects.pop()
                kept.pop()
                last_key.pop()
            continue
        place: tuple[bytes, ...] | None
        if not places:
            place = ()
        elif places[-1] is None or len(places[-1]) >= _PLACE_DEPTH:
            place = None
        else:
            place = (*places[-1], last_key[-1] if objects[-1] else ITEM)
        is_object = token.group(0) == b"{"
        places.append(place)
        objects.append(is_object)
        kept.append(is_object and place in MARKER_PLACES)
        last_key.append(b"")
        if is_object and place in RECORD_PLACES:
            records.append(set())
            record_of.append(len(records) - 1)
        else:
            record_of.append(-1)
    return Head(b"".join(keys), tuple(frozenset(found) for found in records))
