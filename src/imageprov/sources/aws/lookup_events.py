"""CloudTrail event history through LookupEvents, read forward from a checkpoint.

LookupEvents returns the management events of the last 90 days in one region,
newest first, 50 to a page, and allows two calls a second per account and region.
Each query window runs from the checkpoint to a few minutes before now, filtered to
one event source. The checkpoint moves to the window's end only with the last page,
so a window cut short is read again whole and deduplicated by eventID.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from imageprov.errors import SourceError
from imageprov.sources import LogObject
from imageprov.sources.aws.cloudtrail import SOURCE

logger = logging.getLogger(__name__)

CALLS_PER_SECOND = 2.0
MAX_RESULTS = 50
# Events reach the history a few minutes after the call, so the newest minutes
# are left for the next window.
SETTLE = timedelta(minutes=5)
RETENTION = timedelta(days=90)
THROTTLE_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException",
                            "RequestLimitExceeded"})


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RateLimiter:
    """Spaces calls at least `1 / rate` seconds apart, with a margin of `margin`.

    The margin covers the jitter between a call leaving and reaching the service,
    which would otherwise put two calls closer together there than here.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, margin: float = 0.2) -> None:
        self.interval = (1.0 + margin) / rate
        self.clock = clock
        self.sleep = sleep
        self.last: float | None = None

    def wait(self) -> None:
        now = self.clock()
        if self.last is not None and now - self.last < self.interval:
            self.sleep(self.interval - (now - self.last))
            now = self.clock()
        self.last = now


class LookupEventsTrail:
    """The event history of one event source in one region, as pages of records."""

    def __init__(self, client: Any, region: str, event_source: str,
                 start_after: Callable[[str], str | None], backfill: timedelta,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 limiter: RateLimiter | None = None, max_attempts: int = 6,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.region = region
        self.event_source = event_source
        self.checkpoint = f"lookup-events:{region}:{event_source}"
        self.start_after = start_after
        self.backfill = backfill
        self.now = now
        self.limiter = limiter or RateLimiter(CALLS_PER_SECOND)
        self.max_attempts = max_attempts
        self.sleep = sleep

    def window(self) -> tuple[datetime, datetime]:
        now = self.now()
        end = now - SETTLE
        stored = self.start_after(self.checkpoint)
        start = datetime.fromisoformat(stored) if stored else end - self.backfill
        return max(start, now - RETENTION), end

    def objects(self) -> Iterator[LogObject]:
        start, end = self.window()
        if start >= end:
            return
        token: str | None = None
        number = 0
        while True:
            page = self._call(start, end, token)
            token = page.get("NextToken")
            body = orjson.dumps({"Events": page.get("Events", [])}, default=_json_default)
            location = (f"lookup-events:{self.region}:{self.event_source}:"
                        f"{_stamp(start)}..{_stamp(end)}#{number}")
            last = not token
            yield LogObject(location, None, lambda body=body: body,
                            self.checkpoint if last else None,
                            _stamp(end) if last else None, SOURCE)
            number += 1
            if last:
                return

    def _call(self, start: datetime, end: datetime, token: str | None) -> dict[str, Any]:
        request: dict[str, Any] = {
            "LookupAttributes": [{"AttributeKey": "EventSource",
                                  "AttributeValue": self.event_source}],
            "StartTime": start, "EndTime": end, "MaxResults": MAX_RESULTS,
        }
        if token:
            request["NextToken"] = token
        delay = 1.0
        for attempt in range(1, self.max_attempts + 1):
            self.limiter.wait()
            try:
                return self.client.lookup_events(**request)
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code not in THROTTLE_CODES or attempt == self.max_attempts:
                    raise SourceError(f"lookup-events:{self.region}",
                                      f"LookupEvents failed: {error}") from error
                logger.info("LookupEvents throttled in %s, retrying in %.1fs (attempt %d)",
                            self.region, delay, attempt)
                self.sleep(delay)
                delay = min(delay * 2, 30.0)
            except BotoCoreError as error:
                raise SourceError(f"lookup-events:{self.region}",
                                  f"LookupEvents failed: {error}") from error
        raise AssertionError("unreachable")


def _json_default(value: Any) -> Any:
    # boto3 parses EventTime into a datetime; keep it as ISO 8601 text.
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")
