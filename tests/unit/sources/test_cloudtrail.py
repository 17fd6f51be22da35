"""Reading CloudTrail records: the event table, the shapes and bad input."""

from __future__ import annotations

import gzip
import json
from contextlib import contextmanager
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from imageprov.sources.fields import NOT_UTF8
from imageprov import formats
from imageprov.model import EventEffect, PrincipalKind
from imageprov.sources.aws.trail_documents import read_document

DATA = Path(__file__).parents[2] / "data" / "aws"
RECORDS = json.loads((DATA / "image-events.json").read_text())["Records"]


def _events(records):
    document = read_document(json.dumps({"Records": records}).encode(), "test.json")
    assert document.problems == []
    return document.events


def _by_id(number: int):
    event_id = f"5d0c6f0e-0000-4000-8000-{number:012d}"
    return [e for e in _events(RECORDS) if e.event_id == event_id]


@pytest.mark.parametrize(
    ("number", "action", "effect", "target"),
    [
        (1, "ec2.amazonaws.com:CreateImage", EventEffect.CREATE, "ami-00000000000000001"),
        (2, "ec2.amazonaws.com:RegisterImage", EventEffect.CREATE, "ami-00000000000000002"),
        (3, "ec2.amazonaws.com:CopyImage", EventEffect.COPY, "ami-00000000000000003"),
        (4, "ec2.amazonaws.com:CreateRestoreImageTask", EventEffect.CREATE,
         "ami-00000000000000004"),
        (5, "ec2.amazonaws.com:ImportImage", EventEffect.IMPORT,
         "import-ami-0123456789abcdef0"),
        (6, "ec2.amazonaws.com:ModifyImageAttribute", EventEffect.SHARE,
         "ami-00000000000000001"),
        (8, "ec2.amazonaws.com:ModifyImageAttribute", EventEffect.UNSHARE,
         "ami-00000000000000001"),
        (9, "ec2.amazonaws.com:ModifyImageAttribute", EventEffect.MODIFY,
         "ami-00000000000000001"),
        (10, "ec2.amazonaws.com:DeregisterImage", EventEffect.DELETE, "ami-00000000000000004"),
        (11, "ecr.amazonaws.com:PutImage", EventEffect.PUSH, "sha256:" + "c3" * 32),
        (13, "ecr.amazonaws.com:PolicyExecutionEvent", EventEffect.DELETE,
         "sha256:" + "e5" * 32),
    ],
)
def test_event_table_row_extracted(number, action, effect, target):
    events = _by_id(number)
    assert len(events) == 1
    assert events[0].action == action
    assert events[0].effect is effect
    assert events[0].target == target


def test_copy_image_links_source():
    (event,) = _by_id(3)
    assert event.source_image == "ami-00000000000000001"
    assert event.source_region == "us-west-2"


def test_share_lists_grantees():
    (account_share,) = _by_id(6)
    (public_share,) = _by_id(7)
    (unshare,) = _by_id(8)
    assert account_share.shared_with == ("999988887777",)
    assert public_share.shared_with == ("all",)
    assert unshare.unshared_from == ("999988887777",)


def test_put_image_places_repository_and_tag():
    (event,) = _by_id(11)
    assert event.registry == "111122223333.dkr.ecr.us-east-1.amazonaws.com"
    assert event.repository == "base/python"
    assert event.tag == "3.12"


def test_batch_delete_yields_each_digest():
    events = _by_id(12)
    assert [e.target for e in events] == ["sha256:" + "c3" * 32, "sha256:" + "d4" * 32]
    assert len({e.key for e in events}) == 2
    assert all(e.effect is EventEffect.DELETE for e in events)


def test_lifecycle_expiry_names_repository():
    (event,) = _by_id(13)
    assert event.repository == "base/python"
    assert event.source_ip == "AWS Internal"


def test_assumed_role_keeps_issuer_path():
    (event,) = _by_id(1)
    assert event.principal.kind is PrincipalKind.ROLE_SESSION
    assert event.principal.issuer == "arn:aws:iam::111122223333:role/build/ImageBuild"
    assert event.principal.name == "packer-31"
    assert event.principal.id == "arn:aws:sts::111122223333:assumed-role/ImageBuild/packer-31"


def test_service_invoked_principal_recorded():
    (event,) = _by_id(14)
    assert event.principal.invoked_by == "imagebuilder.amazonaws.com"
    assert event.source_ip == "imagebuilder.amazonaws.com"


def test_appstream_create_image_ignored():
    assert _by_id(15) == []


def test_failed_call_kept_without_target():
    (event,) = _by_id(16)
    assert event.error_code == "Client.UnauthorizedOperation"
    assert event.target is None
    assert not event.succeeded


def test_gzip_file_read_like_plain():
    body = json.dumps({"Records": RECORDS}).encode()
    plain = read_document(body, "a.json")
    packed = read_document(gzip.compress(body), "a.json.gz")
    assert packed.records == plain.records == len(RECORDS)
    assert [e.key for e in packed.events] == [e.key for e in plain.events]


def test_eventbridge_envelope_unwrapped():
    envelope = {"version": "0", "id": "0d1e9c2f-7d3a-4b0e-9d7c-3a1f5e6b7c8d",
                "detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2",
                "account": "111122223333", "time": RECORDS[0]["eventTime"],
                "region": "us-east-1", "resources": [], "detail": RECORDS[0]}
    document = read_document(json.dumps(envelope).encode(), "bus.json")
    assert document.shapes == {"eventbridge-cloudtrail"}
    assert [e.target for e in document.events] == ["ami-00000000000000001"]


def test_lookup_events_record_decoded_twice():
    item = {"EventId": RECORDS[0]["eventID"], "EventName": "CreateImage", "ReadOnly": "false",
            "EventTime": "2026-11-02 20:00:00+11:00", "EventSource": "ec2.amazonaws.com",
            "Username": "packer-31", "Resources": [],
            "CloudTrailEvent": json.dumps(RECORDS[0])}
    response = read_document(json.dumps({"Events": [item]}).encode(), "lookup.json")
    lines = read_document((json.dumps(item) + "\n" + json.dumps(item) + "\n").encode(),
                          "lookup.jsonl")
    assert [e.target for e in response.events] == ["ami-00000000000000001"]
    assert lines.records == 2
    assert "lookup-events" in lines.shapes


def test_malformed_record_reported_rest_kept():
    broken = dict(RECORDS[0])
    del broken["eventTime"]
    records = [RECORDS[1], broken, "not a record", RECORDS[2]]
    document = read_document(json.dumps({"Records": records}).encode(), "bad.json")
    assert document.records == 2
    assert [(p.index, p.field) for p in document.problems] == [(1, "eventTime"),
                                                               (2, "(record)")]
    assert {e.target for e in document.events} == {"ami-00000000000000002",
                                                   "ami-00000000000000003"}


def test_image_event_missing_id_quarantined():
    broken = json.loads(json.dumps(RECORDS[0]))
    broken["responseElements"] = {"requestId": "r-1"}
    document = read_document(json.dumps({"Records": [broken]}).encode(), "noid.json")
    assert document.events == []
    assert len(document.problems) == 1
    assert document.problems[0].field == "responseElements.imageId"


def test_invalid_json_line_reported_with_line():
    text = json.dumps(RECORDS[0]) + "\n{not json\n" + json.dumps(RECORDS[1]) + "\n"
    document = read_document(text.encode(), "mixed.jsonl")
    assert document.records == 2
    assert len(document.problems) == 1
    assert "line 2" in document.problems[0].detail


def test_unreadable_file_is_one_problem():
    document = read_document(b"\x1f\x8b\x08\x00garbage", "broken.json.gz")
    assert document.records == 0
    assert len(document.problems) == 1
    assert document.problems[0].index == -1


def test_spans_per_account_and_region():
    document = read_document(json.dumps({"Records": RECORDS}).encode(), "spans.json")
    assert document.spans[("111122223333", "us-east-1")] == [
        "2026-11-02T09:00:00Z", "2026-11-02T09:15:00Z"]


def test_raw_record_kept_for_evidence():
    document = read_document(json.dumps({"Records": RECORDS[:1]}).encode(), "raw.json")
    (event,) = document.events
    assert orjson.loads(document.raw[event.key])["eventID"] == RECORDS[0]["eventID"]


# The readers of `{"Records": [...]}` log files: the native module, pysimdjson, and
# the general reader that every other shape goes through.
READERS = ["native", "simdjson"]


@contextmanager
def _reader(kind):
    """Read with one reader for the duration of the block."""
    from imageprov.sources.aws import trail_documents

    saved = trail_documents._trailscan, trail_documents.simdjson
    if kind == "native" and saved[0] is None:
        pytest.fail("the native CloudTrail reader was not built: install a C++ compiler "
                    "and libsimdjson-dev, then install imageprov again")
    if kind != "native":
        trail_documents._trailscan = None
    if kind == "general":
        trail_documents.simdjson = None
    try:
        yield
    finally:
        trail_documents._trailscan, trail_documents.simdjson = saved


def _read_with(kind, body, location, fallback=None):
    with _reader(kind):
        return read_document(body, location, fallback)


def _same_documents(a, b):
    assert a.records == b.records
    assert a.shapes == b.shapes
    assert a.spans == b.spans
    assert a.problems == b.problems
    assert a.notices == b.notices
    assert [e.model_dump() for e in a.events] == [e.model_dump() for e in b.events]
    assert {k: orjson.loads(v) for k, v in a.raw.items()} == {
        k: orjson.loads(v) for k, v in b.raw.items()}


@pytest.mark.parametrize("kind", READERS)
@pytest.mark.parametrize("variant", ["clean", "broken", "mixed-accounts", "other-times"])
def test_fast_reader_matches_general_reader(variant, kind):
    records = json.loads(json.dumps(RECORDS))
    if variant == "broken":
        del records[2]["eventTime"]
        records[3]["userIdentity"] = "AssumedRole"
        records.insert(5, ["not", "a", "record"])
        records.insert(6, 17)
        records[8]["eventName"] = None
    elif variant == "mixed-accounts":
        records[1]["recipientAccountId"] = "999988887777"
        del records[4]["recipientAccountId"]
        records[6]["awsRegion"] = "eu-west-1"
    elif variant == "other-times":
        records[0]["eventTime"] = "2026-11-02T09:00:00.123Z"
        records[2]["eventTime"] = "2026-11-02 08:00:00"
    body = gzip.compress(json.dumps({"Records": records}).encode())
    fast = _read_with(kind, body, "f.json.gz", "111122223333")
    general = _read_with("general", body, "f.json.gz", "111122223333")
    _same_documents(fast, general)
    assert fast.records > 0


@pytest.mark.parametrize("kind", READERS)
def test_fast_reader_leaves_notices_to_general(kind):
    notice = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
                           "eventName": "ObjectCreated:Put"}]}
    document = _read_with(kind, json.dumps(notice).encode(), "n.json")
    assert document.shapes == {"s3-notification"}
    assert document.records == 0


def test_fast_reader_reads_while_an_earlier_parse_is_still_held():
    import simdjson

    from imageprov.sources.aws import trail_documents

    body = json.dumps({"Records": RECORDS}).encode()
    with _reader("simdjson"):
        first = read_document(body, "a.json")
        # The thread's parser keeps its buffers between files; an object of its last
        # document that is still alive must make the reader take another parser.
        held = trail_documents._parser().parse(body)["Records"][0]
        second = read_document(body, "b.json")
    assert held.get("eventID") == RECORDS[0]["eventID"]
    assert isinstance(held, simdjson.Object)
    assert (second.records, len(second.events)) == (first.records, len(first.events))
    assert second.records == len(RECORDS)


_VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.booleans(),
                    st.lists(st.integers(), max_size=2), st.dictionaries(
                        st.sampled_from(["accountId", "type"]), st.text(max_size=3),
                        max_size=2))
# Times of the form the readers count themselves, with any digits: real and
# impossible dates and clocks (month 13, 24:00:00, a leap second, 29 February).
_SECONDS = st.from_regex(
    r"(0000|0001|1900|2000|2024|2026|2100|9999|[0-9]{4})-(0[0-9]|1[0-3]|[0-9]{2})"
    r"-(0[0-9]|[12][0-9]|3[0-2])T([01][0-9]|2[0-5]):[0-6][0-9]:[0-6][0-9]Z",
    fullmatch=True)
_TIMES = st.one_of(_SECONDS, st.sampled_from([
    "2026-11-02T09:00:00Z", "2026-11-02T10:30:00Z", "2026-11-02 11:00:00",
    "2026-11-02T09:00:00.5Z", "2026-11-02T09:00:00z", "2026-11-02T09:00:00Z ",
    "2026-11-02t09:00:00Z", "\uff12026-11-02T09:00:00Z", "yesterday", ""]), _VALUES)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.fixed_dictionaries({}, optional={
    "eventTime": _TIMES,
    "eventName": st.one_of(st.sampled_from(["CreateImage", "DescribeInstances",
                                            "PutImage", "ModifyImageAttribute"]), _VALUES),
    "eventSource": st.one_of(st.sampled_from(["ec2.amazonaws.com", "ecr.amazonaws.com"]),
                             _VALUES),
    "eventID": st.one_of(st.uuids().map(str), _VALUES),
    "awsRegion": st.one_of(st.sampled_from(["us-east-1", "eu-west-1"]), _VALUES),
    "recipientAccountId": st.one_of(st.sampled_from(["111122223333", ""]), _VALUES),
    "userIdentity": _VALUES,
    "responseElements": st.one_of(st.just({"imageId": "ami-1"}), _VALUES),
}), max_size=12), st.sampled_from(["444455556666", "", None]),
    st.sampled_from(READERS), st.booleans())
def test_fast_reader_agrees_on_any_records(records, fallback, kind, packed):
    body = json.dumps({"Records": records}).encode()
    if packed:
        body = gzip.compress(body)
    fast = _read_with(kind, body, "h.json", fallback)
    general = _read_with("general", body, "h.json", fallback)
    _same_documents(fast, general)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"awsRegion": ["us-east-1"]}, "awsRegion"),
        ({"awsRegion": 5}, "awsRegion"),
        ({"recipientAccountId": 111122223333}, "recipientAccountId"),
        ({"eventTime": "2026-13-45T99:99:99Z"}, "eventTime"),
    ],
)
@pytest.mark.parametrize("pretty", [False, True])
@pytest.mark.parametrize("image_event", [False, True])
def test_wrong_types_quarantined_not_raised(change, field, pretty, image_event):
    good = RECORDS[1]
    bad = json.loads(json.dumps(RECORDS[0] if image_event else trail_noise()))
    bad.update(change)
    body = json.dumps({"Records": [good, bad, good]}, indent=2 if pretty else None)
    document = read_document(body.encode(), "types.json")
    assert [(p.index, p.field) for p in document.problems] == [(1, field)]
    assert document.records == 2


@pytest.mark.parametrize(
    ("identity_change", "field", "found"),
    [({"type": ["AssumedRole"]}, "userIdentity.type", "array"),
     ({"accountId": 111122223333}, "userIdentity.accountId", "number"),
     ({"invokedBy": {"a": 1}}, "userIdentity.invokedBy", "object"),
     ({"sessionContext": {"sessionIssuer": {"arn": ["x"]}}},
      "userIdentity.sessionContext.sessionIssuer.arn", "array")],
)
def test_bad_identity_fields_quarantined(identity_change, field, found):
    bad = json.loads(json.dumps(RECORDS[0]))
    bad["userIdentity"].update(identity_change)
    document = read_document(json.dumps({"Records": [bad, RECORDS[1]]}).encode(), "id.json")
    assert [(p.index, p.field) for p in document.problems] == [(0, field)]
    assert document.problems[0].detail == f"expected a string, got {found}"
    assert [e.target for e in document.events] == ["ami-00000000000000002"]


def test_bad_copy_source_quarantined():
    bad = json.loads(json.dumps(RECORDS[2]))
    bad["requestParameters"]["sourceImageId"] = {"id": "ami-1"}
    document = read_document(json.dumps({"Records": [bad]}).encode(), "copy.json")
    assert [p.field for p in document.problems] == ["requestParameters.sourceImageId"]
    assert document.problems[0].detail == "expected a string, got object"


def trail_noise():
    from tests.helpers import trail

    return trail.noise(trail.datetime(2026, 11, 2, 9, tzinfo=trail.UTC), 1)[0]


def test_native_reader_inflates_gzip_itself():
    from imageprov.sources.aws import trail_documents

    if not hasattr(trail_documents._trailscan, "scan_gzip"):
        pytest.fail("the native CloudTrail reader was built without ISA-L: install "
                    "libisal-dev, then install imageprov again")
    body = gzip.compress(json.dumps({"Records": RECORDS}).encode())
    (scanned,) = trail_documents._trailscan.scan_gzip(
        [(body, None)], [("ec2.amazonaws.com", "CreateImage")], 2**20)
    assert scanned is not None
    records, _, others = scanned
    assert records == len(RECORDS)
    assert [orjson.loads(text)["eventName"] for _, text in others] == [
        record["eventName"] for record in RECORDS
        if (record["eventSource"], record["eventName"]) == ("ec2.amazonaws.com",
                                                            "CreateImage")]


def test_group_read_without_memory(monkeypatch):
    from imageprov.sources.aws import trail_documents

    native = trail_documents._trailscan

    class OutOfMemory:
        scan = staticmethod(native.scan)

        @staticmethod
        def scan_gzip(files, events, limit):
            raise MemoryError

    body = json.dumps({"Records": RECORDS}).encode()
    files = [(gzip.compress(body), "m1.json.gz", None), (body, "m2.json", "111122223333")]
    expected = trail_documents.read_documents(files)
    monkeypatch.setattr(trail_documents, "_trailscan", OutOfMemory)
    assert trail_documents.read_documents(files) == expected
    assert [document.records for document in expected] == [len(RECORDS)] * 2


_AFTER_FAILED_ALLOCATION = """
import gzip, json, os, resource
from imageprov.sources.aws.trail_documents import read_document

record = json.loads(os.environ["RECORD"])
small = gzip.compress(json.dumps({"Records": [record]}).encode())
read_document(small, "first.json.gz")
# A trailer that claims 150 MB for 200 KB of data, within what deflate can expand.
claims = b"\\x1f\\x8b" + os.urandom(200_000) + (150 * 2**20).to_bytes(4, "little")
with open("/proc/self/status") as status:
    size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (size + 100 * 2**20, hard))
try:
    read_document(claims, "claims.json.gz")
except MemoryError:
    pass
resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
print(read_document(small, "after.json.gz").records)
"""


def test_native_reader_survives_failed_allocation():
    import os
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", _AFTER_FAILED_ALLOCATION],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "RECORD": json.dumps(RECORDS[0])})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "1"


@pytest.mark.parametrize("kind", READERS)
def test_deeply_nested_record_quarantined(kind):
    deep = json.loads(json.dumps(RECORDS[0]))
    node = deep["requestParameters"]
    for _ in range(300):
        node["nested"] = {}
        node = node["nested"]
    body = gzip.compress(json.dumps({"Records": [deep, *RECORDS[1:]]}).encode())
    document = _read_with(kind, body, "deep.json.gz")
    general = _read_with("general", body, "deep.json.gz")
    _same_documents(document, general)
    assert document.records == len(RECORDS)
    assert [(p.index, p.field) for p in document.problems] == [(0, "(record)")]
    assert "cannot be stored as JSON" in document.problems[0].detail
    assert len(document.events) == len(_events(RECORDS[1:]))


def _members(body: bytes) -> list[bytes]:
    middle = len(body) // 2
    return [gzip.compress(body[:middle]), gzip.compress(body[middle:])]


# gzip files that the native reader leaves to the Python reader, which either reads
# them or reports the problem.
_UNUSUAL_GZIP = {
    "byte-order mark": lambda body: gzip.compress(b"\xef\xbb\xbf" + body),
    "leading whitespace": lambda body: gzip.compress(b" \r\n\t" + body),
    "whitespace past 32 bytes": lambda body: gzip.compress(b" " * 40 + body),
    "two members": lambda body: b"".join(_members(body)),
    "zero padding": lambda body: gzip.compress(body) + b"\0" * 16,
    "bytes after the member": lambda body: gzip.compress(body) + b"garbage",
    "wrong size in trailer": lambda body: gzip.compress(body)[:-4] + b"\x01\0\0\0",
    "damaged checksum": lambda body: (lambda packed: packed[:-8] + b"\0\0\0\0"
                                      + packed[-4:])(gzip.compress(body)),
    "truncated": lambda body: gzip.compress(body)[:-20],
    "empty": lambda body: gzip.compress(b""),
    "whitespace only": lambda body: gzip.compress(b"  \n"),
    "not a log file": lambda body: gzip.compress(json.dumps(RECORDS[0]).encode()),
    "invalid JSON": lambda body: gzip.compress(body[:-1]),
    "named file": lambda body: _named_gzip(body),
}


def _named_gzip(body: bytes) -> bytes:
    import io

    out = io.BytesIO()
    with gzip.GzipFile(filename="trail.json", mode="wb", fileobj=out, mtime=0) as packed:
        packed.write(body)
    return out.getvalue()


@pytest.mark.parametrize("shape", sorted(_UNUSUAL_GZIP))
def test_unusual_gzip_read_alike_by_every_reader(shape):
    body = json.dumps({"Records": RECORDS}).encode()
    data = _UNUSUAL_GZIP[shape](body)
    native = _read_with("native", data, "u.json.gz", "111122223333")
    general = _read_with("general", data, "u.json.gz", "111122223333")
    _same_documents(native, general)
    if shape in ("byte-order mark", "leading whitespace", "two members", "zero padding",
                 "named file"):
        assert native.records == len(RECORDS)
        assert native.problems == []


_PACKED_LOG = gzip.compress(json.dumps({"Records": RECORDS}).encode())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_PACKED_LOG) - 1), st.integers(0, 255)),
                min_size=1, max_size=3),
       st.integers(0, len(_PACKED_LOG)), st.binary(max_size=8))
def test_damaged_gzip_read_alike_by_every_reader(changes, keep, tail):
    data = bytearray(_PACKED_LOG)
    for position, value in changes:
        data[position] = value
    damaged = bytes(data[:keep]) + tail
    native = _read_with("native", damaged, "z.json.gz")
    general = _read_with("general", damaged, "z.json.gz")
    _same_documents(native, general)


def test_gzip_over_limit_read_in_python(monkeypatch):
    from imageprov.sources import compression

    body = json.dumps({"Records": RECORDS}).encode()
    monkeypatch.setattr(compression, "MAX_DOCUMENT_BYTES", len(body) - 1)
    document = _read_with("native", gzip.compress(body), "big.json.gz")
    assert document.records == 0
    assert [(p.index, p.field) for p in document.problems] == [(-1, "(file)")]
    assert "more than" in document.problems[0].detail


def test_concatenated_gzip_members_all_read():
    # A writer that flushes a member at a time splits one JSON document across them.
    body = json.dumps({"Records": RECORDS}).encode()
    middle = len(body) // 2
    packed = gzip.compress(body[:middle]) + gzip.compress(body[middle:])
    document = read_document(packed, "two.json.gz")
    assert document.problems == []
    assert document.records == len(RECORDS)
    assert len(document.events) == len(read_document(body, "one.json").events)


def test_truncated_gzip_reported():
    packed = gzip.compress(json.dumps({"Records": RECORDS}).encode())
    document = read_document(packed[: len(packed) // 2], "cut.json.gz")
    assert document.records == 0
    assert [(p.index, p.field) for p in document.problems] == [(-1, "(file)")]
    assert "truncated" in document.problems[0].detail


@pytest.mark.parametrize(
    ("path", "field"),
    [(("eventID",), "eventID"), (("sourceIPAddress",), "sourceIPAddress"),
     (("responseElements", "imageId"), "responseElements.imageId")],
)
def test_overlong_value_quarantined(path, field):
    bad = json.loads(json.dumps(RECORDS[0]))
    node = bad
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = "x" * 600
    document = read_document(json.dumps({"Records": [bad, RECORDS[1]]}).encode(), "l.json")
    assert [(p.index, p.field) for p in document.problems] == [(0, field)]
    assert len(document.events) == 1


def test_bytes_that_are_not_utf8_lose_only_their_record():
    body = json.dumps({"Records": RECORDS}).encode()
    records = [dict(record) for record in RECORDS]
    records[1]["userAgent"] = "PLACEHOLDER"
    broken = json.dumps({"Records": records}).encode().replace(b"PLACEHOLDER", b"\xff\xfe")
    document = read_document(broken, "utf8.json")
    assert [(p.index, p.field) for p in document.problems] == [(1, "userAgent")]
    assert "not UTF-8" in document.problems[0].detail
    assert document.records == len(RECORDS) - 1
    assert len(document.events) == len(read_document(body, "clean.json").events) - 1


def test_number_beyond_a_double_keeps_the_file():
    records = [dict(RECORDS[0], requestParameters={"size": 1})] + RECORDS[1:]
    body = json.dumps({"Records": records}).encode().replace(b'"size": 1', b'"size": 1e400')
    document = read_document(body, "big.json")
    assert document.problems == []
    assert document.records == len(RECORDS)


def test_caller_address_of_another_type_is_quarantined():
    bad = dict(RECORDS[0], sourceIPAddress=12)
    document = read_document(json.dumps({"Records": [bad, RECORDS[1]]}).encode(), "ip.json")
    assert [(p.index, p.field) for p in document.problems] == [(0, "sourceIPAddress")]
    assert "expected a string, got number" in document.problems[0].detail


def _image_record(**changes):
    record = json.loads(json.dumps(RECORDS[0]))
    record.update(eventName="CreateImage", eventSource="ec2.amazonaws.com",
                  responseElements={"imageId": "ami-0123456789abcdef0"})
    for path, value in changes.items():
        node = record
        *parents, last = path.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return record


@pytest.mark.parametrize(("changes", "field", "found"), [
    ({"userIdentity__arn": 7}, "userIdentity.arn", "number"),
    ({"responseElements__imageId": {"x": 1}}, "responseElements.imageId", "object"),
    ({"responseElements__imageId": 12}, "responseElements.imageId", "number"),
    ({"errorCode": ["AccessDenied"]}, "errorCode", "array"),
    ({"errorCode": 0}, "errorCode", "number"),
    ({"errorCode": False}, "errorCode", "boolean"),
])
def test_image_event_field_of_wrong_type_named(changes, field, found):
    body = json.dumps({"Records": [_image_record(**changes)]}).encode()
    document = read_document(body, "types.json")
    (problem,) = document.problems
    assert (problem.index, problem.field) == (0, field)
    assert problem.detail == f"expected a string, got {found}"
    assert document.events == []


def test_records_that_are_not_an_array_quarantine_the_file():
    document = read_document(b'{"Records": "nope"}', "lost.json")
    (problem,) = document.problems
    assert (problem.index, problem.field) == (-1, "Records")
    assert problem.detail == "expected an array of records, got string"
    assert document.records == 0


@pytest.mark.parametrize("first", [
    {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
     "eventTime": "2026-11-02T09:00:00Z"},
    {"eventVersion": "1.08", "eventType": "AwsCloudTrailInsight",
     "eventSource": "ec2.amazonaws.com", "eventName": "RunInstances",
     "eventTime": "2026-11-02T09:00:00Z"},
])
def test_log_file_whose_first_record_looks_like_a_notice_is_read(first):
    document = read_document(json.dumps({"Records": [first, *RECORDS]}).encode(), "m.json")
    assert document.shapes == {"cloudtrail-log-file"}
    assert document.notices == []
    assert len(document.events) == len(_events(RECORDS))
    assert document.records == len(RECORDS) + 1


# Placeholders swapped for raw bytes after json.dumps, which cannot write them. A
# number is not escaped inside a JSON string, and bytes are copied as they are, so
# the swap works in a LookupEvents `CloudTrailEvent` string too.
_BIG = b"12345678987654321"
_BAD_TEXT = b"PLACEHOLDER-AGENT"
_RAW_VALUES = {"beyond-a-double": (_BIG, b"1e400"), "not-utf8": (_BAD_TEXT, b"\xff\xfe"),
               "nan": (_BIG, b"NaN")}


def _shapes(records, placeholder, raw):
    """Return the same records in every shape the reader takes: a log file, JSON
    lines, a JSON array, and LookupEvents as a response and as lines of items."""
    texts = [json.dumps(record) for record in records]
    items = [{"EventId": record["eventID"], "CloudTrailEvent": text}
             for record, text in zip(records, texts, strict=True)]
    bodies = {
        "records": '{"Records": [' + ", ".join(texts) + "]}",
        "lines": "\n".join(texts) + "\n",
        "lookup": json.dumps({"Events": items}),
        "lookup-lines": "\n".join(json.dumps(item) for item in items) + "\n",
        "array": "[" + ", ".join(texts) + "]",
    }
    return {shape: body.encode().replace(placeholder, raw)
            for shape, body in bodies.items()}


def _with_raw_value(kind):
    records = json.loads(json.dumps(RECORDS))
    if kind == "not-utf8":
        records[1]["userAgent"] = _BAD_TEXT.decode()
    else:
        records[1]["requestParameters"] = dict(records[1]["requestParameters"],
                                               size=int(_BIG))
    placeholder, raw = _RAW_VALUES[kind]
    return _shapes(records, placeholder, raw)


@pytest.mark.parametrize("kind", sorted(_RAW_VALUES))
def test_raw_values_read_alike_in_every_shape(kind):
    bodies = _with_raw_value(kind)
    documents = {shape: read_document(body, f"f.{shape}") for shape, body in bodies.items()}
    expected = documents["records"]
    assert expected.events, "the records file keeps the other image events"
    for shape, document in documents.items():
        assert document.records == expected.records, shape
        assert [(p.index, p.field) for p in document.problems] == [
            (p.index, p.field) for p in expected.problems], shape
        assert [e.key for e in document.events] == [e.key for e in expected.events], shape


def test_number_beyond_a_double_line_is_read():
    body = _with_raw_value("beyond-a-double")["lines"]
    document = read_document(body, "big.jsonl")
    assert document.problems == []
    assert document.records == len(RECORDS)
    assert "json-lines" in document.shapes
    assert any(e.event_id == RECORDS[1]["eventID"] for e in document.events)


def test_bytes_not_utf8_lose_only_their_line():
    body = _with_raw_value("not-utf8")["lines"]
    document = read_document(body, "utf8.jsonl")
    (problem,) = document.problems
    assert (problem.index, problem.field) == (1, "userAgent")
    assert problem.detail == f"line 2: {NOT_UTF8}"
    assert document.records == len(RECORDS) - 1


def test_lookup_event_beyond_a_double_is_read():
    body = _with_raw_value("beyond-a-double")["lookup"]
    document = read_document(body, "big-lookup.json")
    assert document.problems == []
    assert document.records == len(RECORDS)
    assert any(e.event_id == RECORDS[1]["eventID"] for e in document.events)


def test_lookup_bytes_not_utf8_lose_only_their_item():
    body = _with_raw_value("not-utf8")["lookup"]
    document = read_document(body, "utf8-lookup.json")
    (problem,) = document.problems
    assert (problem.index, problem.field) == (1, "userAgent")
    assert problem.detail == NOT_UTF8
    assert document.records == len(RECORDS) - 1
    assert document.shapes == {"lookup-events"}


def test_lookup_event_not_json_still_reported():
    item = {"EventId": "x", "CloudTrailEvent": "{not json"}
    document = read_document(json.dumps({"Events": [item, {
        "EventId": "y", "CloudTrailEvent": json.dumps(RECORDS[0])}]}).encode(), "l.json")
    (problem,) = document.problems
    assert (problem.index, problem.field) == (0, "CloudTrailEvent")
    assert problem.detail.startswith("not valid JSON: ")
    assert document.records == 1


def test_records_null_quarantines_the_file():
    document = read_document(b'{"Records": null}', "null.json")
    assert [(p.index, p.field) for p in document.problems] == [(-1, "Records")]
    assert document.problems[0].detail == "expected an array of records, got null"


def test_line_whose_records_are_not_an_array_loses_only_that_line():
    lines = [json.dumps(RECORDS[0]), '{"Records": "nope"}', json.dumps(RECORDS[1])]
    document = read_document("\n".join(lines).encode(), "mixed.jsonl")
    assert [(p.index, p.field) for p in document.problems] == [(1, "Records")]
    assert "line 2" in document.problems[0].detail
    assert document.records == 2


def _share(params):
    record = json.loads(json.dumps(RECORDS[5]))
    assert record["eventName"] == "ModifyImageAttribute"
    record["requestParameters"].update(params)
    return read_document(json.dumps({"Records": [record]}).encode(), "share.json")


def test_single_grant_without_its_list_still_shares():
    document = _share({"launchPermission": {"add": {"items": {"group": "all"}}}})
    (event,) = document.events
    assert event.shared_with == ("all",)


@pytest.mark.parametrize(("params", "field"), [
    ({"launchPermission": "all"}, "requestParameters.launchPermission"),
    ({"launchPermission": {"add": {"items": "all"}}},
     "requestParameters.launchPermission.add.items"),
])
def test_share_of_wrong_shape_quarantined(params, field):
    document = _share(params)
    assert document.events == []
    assert [p.field for p in document.problems] == [field]


@pytest.mark.parametrize(("change", "field"), [
    ({"sessionContext": "x"}, "userIdentity.sessionContext"),
    ({"sessionContext": {"sessionIssuer": ["x"]}}, "userIdentity.sessionContext.sessionIssuer"),
    ({"sessionContext": {"sourceIdentity": {"a": 1}}},
     "userIdentity.sessionContext.sourceIdentity"),
])
def test_session_context_of_wrong_shape_quarantined(change, field):
    bad = json.loads(json.dumps(RECORDS[0]))
    bad["userIdentity"].update(change)
    document = read_document(json.dumps({"Records": [bad]}).encode(), "ctx.json")
    assert [p.field for p in document.problems] == [field]


def test_numeric_event_id_named():
    bad = json.loads(json.dumps(RECORDS[0]))
    bad["eventID"] = 12
    document = read_document(json.dumps({"Records": [bad]}).encode(), "id.json")
    assert [(p.field, p.detail) for p in document.problems] == [
        ("eventID", "expected a string, got number")]


@pytest.mark.parametrize("body", [b"null", b"42", b'"text"'])
def test_document_that_is_not_an_object_fails_the_file(body):
    document = read_document(body, "scalar.json")
    assert [(p.index, p.field) for p in document.problems] == [(-1, "(document)")]


def _record_text(**changes: str) -> str:
    """Return the JSON text of a record that names no image, with fields replaced by
    raw JSON text, so that a key can be written twice."""
    fields = {"eventVersion": '"1.09"', "eventTime": '"2026-11-02T09:00:00Z"',
              "eventSource": '"ec2.amazonaws.com"', "eventName": '"DescribeImages"',
              "awsRegion": '"us-east-1"', "recipientAccountId": '"111122223333"',
              "eventID": '"8e0c6f0e-0000-4000-8000-000000000001"'}
    fields.update(changes)
    return "{" + ",".join(f'"{key.split("#")[0]}":{value}'
                          for key, value in fields.items()) + "}"


_CREATE = ('{"eventVersion":"1.09","userIdentity":{"type":"Root","accountId":'
           '"111122223333","arn":"arn:aws:iam::111122223333:root"},'
           '"eventTime":"2026-11-02T09:05:00Z","eventSource":"ec2.amazonaws.com",'
           '"eventName":"DescribeImages","eventName":"CreateImage",'
           '"awsRegion":"us-east-1","sourceIPAddress":"172.64.1.1",'
           '"responseElements":{"imageId":"ami-0a1b2c3d4e5f60099"},'
           '"eventID":"dup-1","recipientAccountId":"111122223333"}')
# Each case: the file's text, and what every reader must find in it. A repeated key
# counts with its last value, as in orjson and the standard library.
_REPEATED_KEYS = {
    "event name": ('{"Records":[' + _CREATE + "]}", 1, ["ami-0a1b2c3d4e5f60099"],
                   {("111122223333", "us-east-1"):
                    ["2026-11-02T09:05:00Z", "2026-11-02T09:05:00Z"]}),
    "event time": ('{"Records":[' + _record_text(**{
        "eventTime#2": '"2026-11-02T11:00:00Z"'}) + "," + _record_text() + "]}", 2, [],
        {("111122223333", "us-east-1"):
         ["2026-11-02T09:00:00Z", "2026-11-02T11:00:00Z"]}),
    "region": ('{"Records":[' + _record_text(**{"awsRegion#2": '"eu-west-1"'}) + "]}",
               1, [], {("111122223333", "eu-west-1"):
                       ["2026-11-02T09:00:00Z", "2026-11-02T09:00:00Z"]}),
    "identity account": ('{"Records":[' + _record_text(
        recipientAccountId="null",
        userIdentity='{"accountId":"111122223333","accountId":"444455556666"}')
        + "]}", 1, [], {("444455556666", "us-east-1"):
                        ["2026-11-02T09:00:00Z", "2026-11-02T09:00:00Z"]}),
    "records": ('{"Records":[' + _record_text() + '],"Records":[' + _record_text(
        awsRegion='"ap-south-1"') + "," + _record_text(awsRegion='"ap-south-1"')
        + "]}", 2, [], {("111122223333", "ap-south-1"):
                        ["2026-11-02T09:00:00Z", "2026-11-02T09:00:00Z"]}),
    "notice source": ('{"Records":[' + _record_text(**{
        "eventSource#2": '"aws:s3"'}) + "]}", 0, [], {}),
}


@pytest.mark.parametrize("kind", [*READERS, "general"])
@pytest.mark.parametrize("case", list(_REPEATED_KEYS))
def test_repeated_key_read_with_last_value(case, kind):
    text, records, targets, spans = _REPEATED_KEYS[case]
    document = _read_with(kind, text.encode(), "repeated.json")
    assert document.records == records
    assert [event.target for event in document.events] == targets
    assert document.spans == spans
    assert document.problems == []


@pytest.mark.parametrize("kind", [*READERS, "general"])
@pytest.mark.parametrize(("changes", "field", "length", "limit"), [
    ({"awsRegion": '"' + "r" * 65 + '"'}, "awsRegion", 65, 64),
    ({"awsRegion": '"' + "\u00e9" * 40 + '"'}, None, 0, 0),
    ({"recipientAccountId": '"' + "1" * 129 + '"'}, "recipientAccountId", 129, 128),
    ({"recipientAccountId": '""', "userIdentity": '{"accountId":"' + "2" * 200 + '"}'},
     "userIdentity.accountId", 200, 128),
])
def test_overlong_scope_quarantined_alike(changes, field, length, limit, kind):
    # Forty two-byte characters are 80 bytes but 40 characters, which fit.
    text = '{"Records":[' + _record_text() + "," + _record_text(**changes) + "]}"
    document = _read_with(kind, text.encode(), "long.json")
    if field is None:
        assert document.records == 2
        assert document.problems == []
        return
    assert document.records == 1
    assert [(p.index, p.field) for p in document.problems] == [(1, field)]
    assert document.problems[0].detail == (
        f"value of {length} characters is longer than {limit}, the most the store keeps")


def test_overlong_location_account_cut_to_fit():
    text = '{"Records":[' + _record_text(recipientAccountId="null") + "]}"
    document = formats.read(text.encode(), "cut.json", "9" * 300)
    assert document.problems == []
    assert list(document.spans) == [("9" * 128, "us-east-1")]


def test_stale_native_module_detected(tmp_path, monkeypatch):
    import os

    from imageprov.sources.aws import trail_documents

    module = Path(trail_documents._trailscan.__file__)
    source = tmp_path / "_trailscan.cpp"
    source.write_text("// changed")
    monkeypatch.setattr(trail_documents, "__file__", str(tmp_path / "trail_documents.py"))
    built = module.stat().st_mtime
    os.utime(source, (built + 60, built + 60))
    assert trail_documents._stale_native_module() is True
    os.utime(source, (built - 60, built - 60))
    assert trail_documents._stale_native_module() is False
