"""Read CloudTrail records from every shape they are delivered in.

Shapes read for records:

- a log file as S3 delivers it, `{"Records": [...]}`, plain or gzip;
- a bare record, a JSON array of records, or a JSON array of log files;
- an EventBridge envelope whose `detail-type` is "AWS API Call via CloudTrail"
  (and the service-event, console-action and sign-in variants);
- a LookupEvents response `{"Events": [...]}` or its items one per line, where
  `CloudTrailEvent` contains the record as a JSON string;
- newline-delimited JSON of any of the above.

Files of other kinds that sit beside trail files are recognised and reported with
a notice, not read as records: digest files, Insights events, S3, SNS and SQS
delivery notices, S3 test events and other EventBridge events.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

import orjson

try:
    # simdjson parses without building Python objects: an optional accelerator of
    # the same result.
    import simdjson
except ImportError:  # pragma: no cover - exercised only where the wheel is missing
    simdjson = None
try:
    # The same reading of log files in native code, built where simdjson's library
    # was found at install time (see setup.py).
    from imageprov.sources.aws import _trailscan
except ImportError:  # pragma: no cover - exercised only where it was not built
    _trailscan = None

from imageprov.errors import RecordError
from imageprov.model import (
    MAX_SPAN_ACCOUNT,
    MAX_SPAN_REGION,
    LogDocument,
    RecordOrigin,
    RecordProblem,
    widen_span,
)
from imageprov.sources import LogFormat
from imageprov.sources import json_head
from imageprov.sources import compression
from imageprov.sources.compression import GZIP_MAGIC, document_text
from imageprov.sources.aws.cloudtrail import (
    SOURCE,
    event_time_of,
    events_from_record,
    parse_time,
)
from imageprov.sources.fields import (
    NOT_UTF8,
    error_text,
    is_utc_second,
    json_type,
    record_json,
    undecodable_path,
)
from imageprov.sources.aws.event_table import BY_KEY, EVENT_NAMES

logger = logging.getLogger(__name__)


def _stale_native_module() -> bool:
    """Return whether the native module is older than its C++ source.

    Only an editable install keeps the source beside the module, and it does not
    rebuild the module when the source changes.
    """
    if _trailscan is None or _trailscan.__file__ is None:
        return False
    source = Path(__file__).with_name("_trailscan.cpp")
    try:
        return source.stat().st_mtime > Path(_trailscan.__file__).stat().st_mtime
    except OSError:
        return False


if _stale_native_module():
    logger.warning(
        "the native CloudTrail reader %s is older than its source; run `pip install -e .` "
        "again to rebuild it", _trailscan.__file__)


_CLOUDTRAIL_DETAIL_TYPES = frozenset(
    {
        "AWS API Call via CloudTrail",
        "AWS Service Event via CloudTrail",
        "AWS Console Action via CloudTrail",
        "AWS Console Signin via CloudTrail",
    }
)
# A bare object with none of these keys is some other JSON, not a broken record.
_RECORD_KEYS = frozenset(
    {"eventVersion", "eventTime", "eventSource", "eventName", "eventID", "userIdentity"}
)
_NOTIFICATION_SOURCES = {"aws:s3": "s3-notification", "aws:sns": "sns-notification",
                         "aws:sqs": "sqs-message"}


# The (eventSource, eventName) pairs that the native module leaves to `_Reader`.
_EVENT_KEYS = tuple(BY_KEY)


def read_document(
    data: bytes, location: str, fallback_account: str | None = None
) -> LogDocument:
    """Read one file or object of audit-log JSON into a `LogDocument`.

    Nothing raises for bad content: an unreadable file or record becomes an entry in
    `problems` that names the location, the record index and the field.
    """
    return read_documents([(data, location, fallback_account)])[0]


def read_documents(files: Sequence[tuple[bytes, str, str | None]]) -> list[LogDocument]:
    """Read each (data, location, fallback account) as `read_document` reads it.

    The native module inflates and walks every gzip log file of the list in one
    call, which releases the GIL once for all of them. So a thread that reads a
    group of files waits for the GIL once, not once per file.
    """
    scans: dict[int, Any] = {}
    if _native_gzip():
        packed = [number for number, (data, _, _) in enumerate(files)
                  if data[:2] == GZIP_MAGIC]
        if packed:
            try:
                found = _trailscan.scan_gzip(
                    [(files[number][0], files[number][2]) for number in packed],
                    _EVENT_KEYS, compression.MAX_DOCUMENT_BYTES)
            except MemoryError:
                # Each file is then read by the Python reader, so only one too large
                # for memory fails.
                found = [None] * len(packed)
            scans = dict(zip(packed, found, strict=True))
    documents = []
    for number, (data, location, fallback_account) in enumerate(files):
        result = LogDocument(location=location, source=SOURCE, platform="aws")
        reader = _Reader(result, fallback_account)
        scanned = scans.get(number)
        with _collector_paused():
            if scanned is not None:
                _take_native_scan(reader, scanned)
            else:
                _read_text(data, reader)
        documents.append(result)
    return documents


def _native_gzip() -> bool:
    """Say whether the native module inflates gzip log files itself."""
    return _trailscan is not None and hasattr(_trailscan, "scan_gzip")


def _read_text(data: bytes, reader: _Reader) -> None:
    """Read a document that the native module did not inflate into `reader.result`."""
    result = reader.result
    text = document_text(data, result)
    if text is None:
        return
    if text[:32].lstrip().startswith(b'{"Records"'):
        if _trailscan is not None:
            if _read_log_file_natively(reader, text):
                return
        elif simdjson is not None and _read_log_file_lazily(text, reader):
            return
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as whole_error:
        # orjson rejects a whole document for one value it cannot hold: a number
        # beyond a double (1e400) or bytes that are not UTF-8. The standard
        # library reads both, so only the records holding such bytes are lost.
        if not _read_tolerantly(text, reader):
            _read_lines(text, reader, whole_error)
        return
    reader.document(document, top=True)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the duration of the block.

    A log file parses into tens of thousands of dicts and lists, which would trigger
    many collections that scan them all. Parsed JSON contains no reference cycles,
    so reference counting frees it without the collector. On the data of
    `benchmarks/generate.py`, the pause cut the time of `orjson.loads` by about half.
    It applies to every thread of the process while the block runs.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _notification_shape(first: Any) -> str | None:
    """Return the shape of an S3, SNS or SQS notice whose first record is `first`."""
    for key in ("eventSource", "EventSource"):
        value = first.get(key)
        if isinstance(value, str) and value in _NOTIFICATION_SOURCES:
            return _NOTIFICATION_SOURCES[value]
    return None


def _read_log_file_natively(reader: _Reader, text: bytes) -> bool:
    """Read a `{"Records": [...]}` log file with the native module.

    The module counts the records that name no image and widens their spans, as
    `_read_parsed_log_file` does, and returns every other record as JSON, which is
    read here like any record. Returns False, having read nothing, when the file is
    not valid JSON, not a file of CloudTrail records, or a notice.
    """
    scanned = _trailscan.scan(text, reader.fallback_account, _EVENT_KEYS)
    if scanned is None:
        return False
    _take_native_scan(reader, scanned)
    return True


def _take_native_scan(reader: _Reader, scanned: tuple[int, Any, Any]) -> None:
    """Add what the native module read of a log file to `reader.result`, and read
    the records it left to Python."""
    records, spans, others = scanned
    result = reader.result
    result.shapes.add("cloudtrail-log-file")
    result.records += records - len(others)
    for scope, (first, last) in spans.items():
        widen_span(result.spans, scope, first, last)
    start = reader.index
    for position, json_text in others:
        reader.index = start + position
        reader.record(orjson.loads(json_text), reader.fallback_account)
    reader.index = start + records


def _read_log_file_lazily(text: bytes, reader: _Reader) -> bool:
    """Read a `{"Records": [...]}` log file without building every record.

    simdjson parses the whole file at C speed, and only the fields that counting
    needs are taken out of each record. A record that names an image event, or that
    fails the quick checks, is decoded whole and read like any other. Returns False,
    having read nothing, when the file is not valid JSON or not a file of CloudTrail
    records, so that the general reader can report it.
    """
    parser = _parser()
    try:
        document = parser.parse(text)
    except (ValueError, RuntimeError):
        # Invalid JSON, or a number simdjson cannot hold (an integer beyond 64 bits).
        return False
    return _read_parsed_log_file(document, reader)


_PARSERS = threading.local()


def _parser() -> Any:
    """Return this thread's simdjson parser, which keeps its buffers between files.

    A new parser allocates them again for every file, which cost a third of the
    parse on generated CloudTrail files. A parser raises RuntimeError on a new
    document while objects of its last one are alive, so a busy parser is replaced.
    """
    parser = getattr(_PARSERS, "parser", None)
    if parser is None or sys.getrefcount(parser) > 3:
        parser = simdjson.Parser()
        _PARSERS.parser = parser
    return parser


def _read_parsed_log_file(document: Any, reader: _Reader) -> bool:
    if not isinstance(document, simdjson.Object) or _repeats_a_key(document):
        return False
    records = document.get("Records")
    if not isinstance(records, simdjson.Array):
        return False
    first = records[0] if len(records) and isinstance(records[0], simdjson.Object) else None
    if first is not None and (
        _repeats_a_key(first) or _notification_shape(first)
        or first.get("eventType") == "AwsCloudTrailInsight"
    ):
        return False

    result = reader.result
    result.shapes.add("cloudtrail-log-file")
    spans = result.spans
    fallback_account = reader.fallback_account
    known_times = reader.known_times
    valid_time = reader.valid_time
    obj = simdjson.Object
    index = reader.index
    counted = 0
    for record in records:
        if type(record) is obj:
            when = record.get("eventTime")
            name = record.get("eventName")
            source = record.get("eventSource")
            account = record.get("recipientAccountId")
            region = record.get("awsRegion")
            # Exact type tests: simdjson gives str for strings and its own types
            # for arrays and objects.
            if (type(when) is str and (when in known_times or valid_time(when))
                    and type(source) is str and source
                    and type(name) is str and name
                    and name not in EVENT_NAMES
                    and (account is None or type(account) is str)
                    and (region is None or type(region) is str)
                    and not _repeats_a_key(record)):
                scope = _fast_scope(record, account or fallback_account, region)
                if scope is not None:
                    index += 1
                    counted += 1
                    span = spans.get(scope)
                    if span is None:
                        spans[scope] = [when, when]
                    elif when < span[0]:
                        span[0] = when
                    elif when > span[1]:
                        span[1] = when
                    continue
            record = orjson.loads(record.mini)
        elif isinstance(record, simdjson.Array):
            record = record.as_list()
        reader.index = index
        reader.record(record, fallback_account)
        index = reader.index
    reader.index = index
    result.records += counted
    return True


def _fast_scope(record: Any, account: str | None,
                region: str | None) -> tuple[str, str] | None:
    """Return the (account, region) a simdjson record's span goes under, or None to
    leave the record to the general reader.

    `account` is the record's own or the location's; without either it comes from
    `userIdentity.accountId`, as in `_Reader.record`.
    """
    if not account:
        identity = record.get("userIdentity")
        if isinstance(identity, simdjson.Object):
            if _repeats_a_key(identity):
                return None
            account = identity.get("accountId")
        account = account if type(account) is str and account else "unknown"
    if not _short_scope(account, region):
        return None
    return account, region or "unknown"


def _short_scope(account: str | None, region: str | None) -> bool:
    """Say whether an account and a region fit the store, as `_Reader.record`
    requires."""
    return ((account is None or len(account) <= MAX_SPAN_ACCOUNT)
            and (region is None or len(region) <= MAX_SPAN_REGION))


def _repeats_a_key(value: Any) -> bool:
    """Say whether a simdjson object repeats a key.

    simdjson's lookup returns a repeated key's first value, where orjson, which
    reads every other shape, keeps the last. An object that repeats a key is read
    by the general reader, so that every reader takes the last value.
    """
    keys = list(value.keys())
    return len(keys) != len(set(keys))


def _read_tolerantly(text: bytes, reader: _Reader) -> bool:
    """Read a document that orjson rejected with the standard library's parser.

    Bytes that are not UTF-8 are kept as lone surrogates, and a record that holds
    any is quarantined with the field, since it cannot be stored as text. Returns
    False, having read nothing, when the text is not one JSON document.
    """
    try:
        document = json.loads(text.decode("utf-8", "surrogateescape"))
    except (ValueError, RecursionError):
        return False
    _read_decoded(document, reader, top=True)
    return True


def _read_decoded(document: Any, reader: _Reader, top: bool) -> None:
    """Read a document that the standard library parsed, as `_Reader.document` does.

    A record that contains bytes that are not UTF-8 is quarantined with the field,
    and the other records of a log file, an array or a LookupEvents response are
    read. Any other document that contains such bytes is quarantined whole: the file
    when it is `top`, else the record at the current index.
    """
    where = undecodable_path(document)
    if where is None:
        reader.document(document, top=top)
        return
    value = document if isinstance(document, dict) else {}
    if isinstance(document, list):
        if top:
            reader.result.shapes.add("json-array")
        for item in document:
            _read_decoded(item, reader, top=False)
    elif isinstance(value.get("Records"), list):
        reader.result.shapes.add("cloudtrail-log-file")
        for record in value["Records"]:
            where = undecodable_path(record)
            if where is None:
                reader.record(record, reader.fallback_account)
            else:
                reader.error(where, NOT_UTF8)
    elif isinstance(value.get("Events"), list):
        reader.result.shapes.add("lookup-events")
        for item in value["Events"]:
            reader.decoded_lookup_item(item)
    elif isinstance(value.get("CloudTrailEvent"), str):
        reader.result.shapes.add("lookup-events")
        reader.decoded_lookup_item(value)
    elif top:
        reader.result.problems.append(RecordProblem(
            reader.result.location, -1, where, NOT_UTF8))
    else:
        reader.error(where, NOT_UTF8)


def _read_lines(text: bytes, reader: _Reader, whole_error: Exception) -> None:
    lines = text.split(b"\n")
    parsed_any = False
    bad: list[RecordProblem] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            # The fallback of `_read_tolerantly`, for one line.
            try:
                document = json.loads(line.decode("utf-8", "surrogateescape"))
            except (ValueError, RecursionError):
                bad.append(RecordProblem(reader.result.location, number - 1, "(json)",
                                         f"line {number} is not valid JSON: {error}"))
                continue
            parsed_any = True
            reader.line = number
            _read_decoded(document, reader, top=False)
            continue
        parsed_any = True
        reader.line = number
        reader.document(document, top=False)
    if not parsed_any:
        reader.result.problems.append(
            RecordProblem(reader.result.location, -1, "(file)",
                        f"not valid JSON or JSON lines: {whole_error}")
        )
        return
    reader.result.shapes.add("json-lines")
    reader.result.problems.extend(bad)


class _Reader:
    """Walks one parsed document, counting records and extracting image events."""

    def __init__(self, result: LogDocument, fallback_account: str | None) -> None:
        self.result = result
        # Event times already checked in this file; most records share a second.
        self.known_times: set[str] = set()
        self.fallback_account = fallback_account
        self.index = 0
        self.line: int | None = None

    def document(self, value: Any, top: bool) -> None:
        if isinstance(value, list):
            if top:
                self.result.shapes.add("json-array")
            for item in value:
                self.document(item, top=False)
            return
        if not isinstance(value, dict):
            detail = f"expected a JSON object, got {json_type(value)}"
            if top:
                # Nothing of the file is a record, so the file is what failed.
                self.result.problems.append(RecordProblem(
                    self.result.location, -1, "(document)", detail))
            else:
                self._error("(document)", detail)
            return
        self._object(value, top)

    def _object(self, value: dict[str, Any], top: bool) -> None:
        records = value.get("Records")
        if isinstance(records, list):
            self._records_wrapper(value, records)
        elif "Records" in value and _RECORD_KEYS.isdisjoint(value):
            # S3, SNS and CloudTrail all deliver a list here; anything else is a log
            # file that lost its records, or one such line of a file.
            detail = f"expected an array of records, got {json_type(records)}"
            if top:
                self.result.problems.append(RecordProblem(
                    self.result.location, -1, "Records", detail))
            else:
                self._error("Records", detail)
        elif "detail-type" in value and "detail" in value:
            self._eventbridge(value)
        elif isinstance(value.get("Events"), list):
            self.result.shapes.add("lookup-events")
            for item in value["Events"]:
                self._lookup_item(item)
        elif isinstance(value.get("CloudTrailEvent"), str):
            self.result.shapes.add("lookup-events")
            self._lookup_item(value)
        elif "digestStartTime" in value or "logFiles" in value:
            self._notice("cloudtrail-digest", "CloudTrail digest file, not log records")
        elif value.get("Event") == "s3:TestEvent":
            self._notice("s3-test-event", "S3 test event, not log records")
        elif value.get("Type") == "Notification" and "Message" in value:
            self._notice("sns-notification", "SNS notification, not log records")
        elif "s3ObjectKey" in value and "s3Bucket" in value:
            self._notice("cloudtrail-delivery-notification",
                         "CloudTrail log delivery notice, not log records")
        elif value.get("eventType") == "AwsCloudTrailInsight":
            self._notice("cloudtrail-insights", "CloudTrail Insights event, not an API call")
        elif _RECORD_KEYS.isdisjoint(value):
            self._notice("unknown-json", "JSON object that is not a CloudTrail record")
        else:
            self.result.shapes.add("cloudtrail-record")
            self.record(value, self.fallback_account)

    def _records_wrapper(self, value: dict[str, Any], records: list[Any]) -> None:
        first = records[0] if records and isinstance(records[0], dict) else {}
        notice_shape = _notification_shape(first)
        # A file is a notice only when every record is one: a log file whose first
        # record merely looks like a notice keeps all its records.
        if notice_shape and all(isinstance(record, dict)
                                and _notification_shape(record) == notice_shape
                                for record in records):
            self._notice(notice_shape, f"{notice_shape.replace('-', ' ')}, not log records")
            return
        if all(isinstance(record, dict) and record.get("eventType") == "AwsCloudTrailInsight"
               for record in records) and records:
            self._notice("cloudtrail-insights", "CloudTrail Insights events, not API calls")
            return
        self.result.shapes.add("cloudtrail-log-file")
        self._log_records(records)

    def _log_records(self, records: list[Any]) -> None:
        """Count the records of a log file, as `record` does for each one.

        Most records name no image and have well-formed times, so those are counted
        inline, without a method call per record. Any other record goes to `record`,
        which reports problems and extracts image events.
        """
        result = self.result
        spans = result.spans
        fallback_account = self.fallback_account
        index = self.index
        counted = 0
        for record in records:
            if isinstance(record, dict):
                when = record.get("eventTime")
                source = record.get("eventSource")
                name = record.get("eventName")
                account = record.get("recipientAccountId")
                region = record.get("awsRegion")
                if (isinstance(when, str) and self.valid_time(when)
                        and isinstance(source, str) and source
                        and isinstance(name, str) and name
                        and name not in EVENT_NAMES
                        and (account is None or isinstance(account, str))
                        and (region is None or isinstance(region, str))
                        and _short_scope(account or fallback_account
                                         or _identity_account(record), region)):
                    index += 1
                    counted += 1
                    account = (account or fallback_account
                               or _identity_account(record) or "unknown")
                    key = (account, region or "unknown")
                    span = spans.get(key)
                    if span is None:
                        spans[key] = [when, when]
                    elif when < span[0]:
                        span[0] = when
                    elif when > span[1]:
                        span[1] = when
                    continue
            self.index = index
            self.record(record, fallback_account)
            index = self.index
        self.index = index
        result.records += counted

    def _eventbridge(self, value: dict[str, Any]) -> None:
        detail_type = value.get("detail-type")
        if detail_type not in _CLOUDTRAIL_DETAIL_TYPES:
            self._notice("eventbridge-event",
                         f"EventBridge event {detail_type!r} from {value.get('source')!r}, "
                         "not a CloudTrail record")
            return
        self.result.shapes.add("eventbridge-cloudtrail")
        account = value.get("account") if isinstance(value.get("account"), str) else None
        self.record(value.get("detail"), account or self.fallback_account)

    def _lookup_item(self, item: Any) -> None:
        if isinstance(item, dict) and isinstance(item.get("CloudTrailEvent"), str):
            try:
                record = orjson.loads(item["CloudTrailEvent"])
            except orjson.JSONDecodeError as error:
                self._lookup_record_tolerantly(item["CloudTrailEvent"], error)
                return
            self.record(record, self.fallback_account)
        elif isinstance(item, dict) and item.get("eventType") == "AwsCloudTrailInsight":
            self._notice("cloudtrail-insights", "CloudTrail Insights event, not an API call")
        else:
            self.record(item, self.fallback_account)

    def _lookup_record_tolerantly(self, text: str, error: Exception) -> None:
        """Read a `CloudTrailEvent` string that orjson rejected, as `_read_tolerantly`
        reads a whole file."""
        try:
            record = json.loads(text)
        except (ValueError, RecursionError):
            self._error("CloudTrailEvent", f"not valid JSON: {error}")
            return
        where = undecodable_path(record)
        if where is not None:
            self._error(where, NOT_UTF8)
            return
        self.record(record, self.fallback_account)

    def decoded_lookup_item(self, item: Any) -> None:
        """Read a LookupEvents item that the standard library parsed.

        Only `CloudTrailEvent` is read from an item that has one, and its string
        is checked for bytes that are not UTF-8 when it is parsed.
        """
        if isinstance(item, dict) and isinstance(item.get("CloudTrailEvent"), str):
            self._lookup_item(item)
            return
        where = undecodable_path(item)
        if where is None:
            self._lookup_item(item)
        else:
            self._error(where, NOT_UTF8)

    def _notice(self, shape: str, text: str) -> None:
        self.result.shapes.add(shape)
        if text not in self.result.notices:
            self.result.notices.append(text)

    def error(self, field_name: str, detail: str) -> None:
        """Quarantine the record at the current index and move past it."""
        self._error(field_name, detail)

    def _error(self, field_name: str, detail: str) -> None:
        if self.line is not None:
            detail = f"line {self.line}: {detail}"
        self.result.problems.append(
            RecordProblem(self.result.location, self.index, field_name, detail)
        )
        self.index += 1

    def valid_time(self, when: str) -> bool:
        """Return whether `when` is a real UTC time written `YYYY-MM-DDTHH:MM:SSZ`."""
        if when in self.known_times:
            return True
        if len(when) != 20 or when[-1] != "Z" or not is_utc_second(when):
            return False
        self.known_times.add(when)
        return True

    def record(self, record: Any, fallback_account: str | None) -> None:
        """Count one CloudTrail record, note its time span and extract image events."""
        if not isinstance(record, dict):
            self._error("(record)", f"expected a JSON object, got {json_type(record)}")
            return
        name = record.get("eventName")
        source = record.get("eventSource")
        when = event_time_of(record)
        for field_name, value in (("eventTime", when), ("eventSource", source),
                                  ("eventName", name)):
            if not isinstance(value, str) or not value:
                self._error(field_name, "missing or not a string")
                return
        if not self.valid_time(when):
            # Any other spelling is normalised so that span bounds compare as text.
            try:
                when = parse_time(when, self.result.location, self.index, "eventTime")
            except RecordError as error:
                self.result.problems.append(error.problem)
                self.index += 1
                return
            when = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for field_name in ("recipientAccountId", "awsRegion"):
            value = record.get(field_name)
            if value is not None and not isinstance(value, str):
                self._error(field_name, f"expected a string, got {json_type(value)}")
                return
        region = record.get("awsRegion") or "unknown"
        checked = [("awsRegion", region, MAX_SPAN_REGION)]
        account = record.get("recipientAccountId")
        if account:
            checked.append(("recipientAccountId", account, MAX_SPAN_ACCOUNT))
        elif fallback_account:
            # The location's account; the store cuts it if it is too long.
            account = fallback_account
        else:
            account = _identity_account(record) or "unknown"
            checked.append(("userIdentity.accountId", account, MAX_SPAN_ACCOUNT))
        for field_name, value, limit in checked:
            if len(value) > limit:
                self._error(field_name, f"value of {len(value)} characters is longer "
                                        f"than {limit}, the most the store keeps")
                return

        index = self.index
        self.index += 1
        self.result.records += 1
        widen_span(self.result.spans, (account, region), when, when)

        if name not in EVENT_NAMES:
            return
        shape = "json-lines" if self.line is not None else "json"
        origin = RecordOrigin(location=self.result.location, index=index, shape=shape)
        try:
            events = events_from_record(record, origin, fallback_account)
        except RecordError as error:
            self.result.problems.append(error.problem)
            return
        except (ValueError, TypeError, AttributeError) as error:
            # A field of the wrong type deep in the record (pydantic's errors are
            # ValueErrors); the record is quarantined like any other bad one.
            self.result.problems.append(RecordProblem(
                self.result.location, index, "(record)",
                f"a field has the wrong type: {error_text(error)}"))
            return
        if events:
            try:
                raw = record_json(record)
            except orjson.JSONEncodeError as error:
                # orjson writes at most 254 levels of nesting, fewer than the parsers
                # read. The record is kept as evidence, so one it cannot write is
                # quarantined and the rest of the file is read.
                self.result.problems.append(RecordProblem(
                    self.result.location, index, "(record)",
                    f"the record cannot be stored as JSON: {error}"))
                return
            self.result.events.extend(events)
            self.result.raw[events[0].key] = raw


def _identity_account(record: dict[str, Any]) -> str | None:
    identity = record.get("userIdentity")
    if isinstance(identity, dict) and isinstance(identity.get("accountId"), str):
        return identity["accountId"]
    return None


_MARKERS = (b'"eventVersion"', b'"eventSource"', b'"Records"', b'"CloudTrailEvent"',
            b'"detail-type"', b'"digestPublicKeyFingerprint"')


def recognises(head: bytes) -> bool:
    """Say whether a document's first bytes look like CloudTrail or a notice beside it."""
    keys = json_head.scan(head).keys
    return any(marker in keys for marker in _MARKERS)


FORMAT = LogFormat("cloudtrail", "aws", recognises, read_document,
                   threaded=_trailscan is not None, read_many=read_documents)
