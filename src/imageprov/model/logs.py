"""The result of reading one audit-log file, before it is stored."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from imageprov.model.events import CreationEvent


@dataclass(frozen=True)
class RecordProblem:
    """A record that could not be read: where it sits and which field is wrong.

    `index` is the record's position in its file, or -1 when the whole file is
    unreadable.
    """

    location: str
    index: int
    field: str
    detail: str

    def __str__(self) -> str:
        where = "file" if self.index < 0 else f"record {self.index}"
        return f"{self.location} {where} field {self.field!r}: {self.detail}"


# The maximum lengths of the account and the region a span of event time is
# stored under.
MAX_SPAN_ACCOUNT = 128
MAX_SPAN_REGION = 64


def widen_span(spans: dict[tuple[str, str], list[str]], scope: tuple[str, str],
               first: str, last: str) -> None:
    """Widen the span of `scope` in `spans` to cover `first` to `last`, in place.

    Times are `YYYY-MM-DDTHH:MM:SSZ` text, which sorts as the times do.
    """
    span = spans.get(scope)
    if span is None:
        spans[scope] = [first, last]
        return
    span[0] = min(span[0], first)
    span[1] = max(span[1], last)


@dataclass
class LogDocument:
    """The records, image events and problems found in one file or object.

    `spans` maps (account, region) to the first and last event time seen, as
    `YYYY-MM-DDTHH:MM:SSZ` text; `raw` maps an event key to its record's JSON.
    `content_sha256` is the hex SHA-256 of the uncompressed bytes, the hash that
    CloudTrail digest files list.
    """

    location: str
    source: str
    platform: str
    shapes: set[str] = field(default_factory=set)
    records: int = 0
    events: list[CreationEvent] = field(default_factory=list)
    raw: dict[str, bytes] = field(default_factory=dict)
    problems: list[RecordProblem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    spans: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    content_sha256: str | None = None

    @property
    def shape(self) -> str:
        return "+".join(sorted(self.shapes)) or "empty"

    def span_times(self) -> Iterator[tuple[str, str, datetime, datetime]]:
        """Yield (account, region, first, last) event times seen in this document."""
        for (account, region), (first, last) in sorted(self.spans.items()):
            yield account, region, _instant(first), _instant(last)


def _instant(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
