"""Choosing the log format that reads a document."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from imageprov import formats
from imageprov.model import LogDocument
from imageprov.sources.compression import decompress, head

RECORD = {
    "eventVersion": "1.08", "eventSource": "ec2.amazonaws.com", "eventName": "CreateImage",
    "eventTime": "2026-03-01T10:00:00Z", "eventID": "e1", "awsRegion": "us-east-1",
    "recipientAccountId": "111122223333",
    "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/ana",
                     "accountId": "111122223333"},
    "responseElements": {"imageId": "ami-0123456789abcdef0"},
}


def test_head_of_gzip_document_is_uncompressed_and_stripped():
    body = b"\xef\xbb\xbf  \n" + json.dumps({"Records": [RECORD]}).encode()
    assert head(gzip.compress(body)).startswith(b'{"Records"')
    assert head(body, 10) == b'{"Records"'


def test_head_of_broken_gzip_is_empty():
    assert head(b"\x1f\x8b\x08\x00garbage") == b""


def test_cloudtrail_reads_what_no_other_format_claims():
    data = json.dumps({"Records": [RECORD]}).encode()
    assert formats.choose(data).name == "cloudtrail"
    assert formats.choose(b'{"some": "json"}').name == "cloudtrail"
    document = formats.read(gzip.compress(data), "a.json.gz")
    assert [event.target for event in document.events] == ["ami-0123456789abcdef0"]


def test_unknown_format_name_is_a_problem_of_the_file():
    document = formats.read(b"{}", "x.json", None, "no-such-format")
    assert document.events == []
    assert len(document.problems) == 1
    assert document.problems[0].index == -1
    assert "unknown log format 'no-such-format'" in document.problems[0].detail


def test_wrong_format_name_quarantines_file():
    data = gzip.compress(json.dumps({"Records": [RECORD]}).encode())
    document = formats.read(data, "a.json.gz", None, "gcp-audit")
    assert document.records == 0
    assert not document.notices
    assert [(p.index, p.field) for p in document.problems] == [(-1, "(file)")]
    assert "looks like cloudtrail" in document.problems[0].detail
    # The same name on a document no format recognises keeps the format's own report.
    other = formats.read(b'{"some": "json"}', "b.json", None, "gcp-audit")
    assert "looks like" not in " ".join(p.detail for p in other.problems)


def test_right_format_name_reads_file():
    data = json.dumps({"Records": [RECORD]}).encode()
    document = formats.read(data, "a.json", None, "cloudtrail")
    assert document.problems == []
    assert len(document.events) == 1


def test_concatenated_gzip_members_read_whole():
    first = json.dumps({"Records": [RECORD]}).encode()
    assert decompress(gzip.compress(first) + gzip.compress(b"\n")) == first + b"\n"


def _with_size_trailer(data: bytes, size: int) -> bytes:
    """Return gzip `data` whose last four bytes claim `size` uncompressed bytes."""
    return data[:-4] + (size % 2**32).to_bytes(4, "little")


def test_gzip_trailer_that_lies_about_the_size_is_invalid():
    body = json.dumps({"Records": [RECORD] * 200}).encode()
    packed = gzip.compress(body)
    assert decompress(_with_size_trailer(packed, len(body))) == body
    # The size sets how much output is asked for at once; a false one, small or
    # beyond what deflate can expand to, fails the length check of the trailer.
    for claimed in (0, 1, len(body) - 1, len(body) + 1, 2**32 - 1):
        try:
            decompress(_with_size_trailer(packed, claimed))
        except EOFError as error:
            assert "invalid gzip stream" in str(error)
        else:
            raise AssertionError(f"a trailer claiming {claimed} bytes was accepted")


def test_gzip_equal_members_are_all_read():
    body = json.dumps({"Records": [RECORD]}).encode()
    # Both members end with the same size and checksum, so only reading past the
    # first member finds the second.
    assert decompress(gzip.compress(body) * 2) == body * 2


def test_gzip_missing_trailer_or_corrupt_block_raises():
    packed = gzip.compress(json.dumps({"Records": [RECORD] * 50}).encode())
    for broken in (packed[:-3], packed[: len(packed) // 2],
                   packed[:20] + b"\xff" * 40 + packed[60:]):
        try:
            decompress(broken)
        except EOFError as error:
            assert "gzip" in str(error)
        else:
            raise AssertionError(f"no error for {len(broken)} bytes")


def test_gzip_bomb_rejected_at_the_limit():
    body = b'{"Records": [' + b" " * 5_000_000 + b"]}"
    packed = gzip.compress(body)
    assert decompress(packed, limit=len(body)) == body
    for limit in (len(body) - 1, 1000):
        try:
            decompress(packed, limit=limit)
        except EOFError as error:
            assert f"more than {limit:,} bytes" in str(error)
        else:
            raise AssertionError(f"{len(body)} bytes passed a limit of {limit}")
    # The limit counts every member together.
    try:
        decompress(packed + packed, limit=len(body) + 10)
    except EOFError as error:
        assert "more than" in str(error)
    else:
        raise AssertionError("two members passed a limit for one")


def test_gzip_padding_kept_and_trailing_bytes_rejected():
    body = json.dumps({"Records": [RECORD]}).encode()
    assert decompress(gzip.compress(body) + b"\0" * 512) == body
    try:
        decompress(gzip.compress(body) + b"trailing")
    except EOFError as error:
        assert "are not a gzip member" in str(error)
    else:
        raise AssertionError("trailing bytes were accepted")


def test_head_follows_gzip_members():
    body = json.dumps({"Records": [RECORD]}).encode()
    assert head(gzip.compress(b"") + gzip.compress(body)).startswith(b'{"Records"')
    assert head(gzip.compress(body[:1]) + gzip.compress(body[1:])).startswith(b'{"Records"')


def test_plain_document_over_the_limit_quarantined(monkeypatch):
    from imageprov.sources import compression

    monkeypatch.setattr(compression, "MAX_DOCUMENT_BYTES", 1000)
    body = json.dumps({"Records": [RECORD] * 20}).encode()
    for data in (body, gzip.compress(body)):
        document = formats.read(data, "big.json")
        assert document.records == 0
        (problem,) = document.problems
        assert problem.index == -1
        assert "more than 1,000" in problem.detail
        assert not problem.detail.startswith("invalid gzip")


def _many_documents() -> list[tuple[bytes, str, str | None, str | None]]:
    log = json.dumps({"Records": [RECORD]}).encode()
    other = dict(RECORD, eventID="e2", responseElements={"imageId": "ami-0fedcba987654321"})
    gcp = (Path(__file__).parents[2] / "data" / "gcp" / "audit-logs" / "cloudaudit.googleapis.com"
           / "activity" / "2026" / "01" / "01" / "10:00:00_10:59:59_S0.json")
    return [
        (gzip.compress(log), "a.json.gz", None, None),
        (gzip.compress(json.dumps({"Records": [other]}).encode()), "b.json.gz",
         "111122223333", "cloudtrail"),
        (log, "c.json", None, None),
        (gzip.compress(log)[:-10], "d.json.gz", None, None),
        (gcp.read_bytes(), gcp.name, None, None),
        (gzip.compress(log), "e.json.gz", None, "gcp-audit"),
        (b"{}", "f.json", None, "no-such-format"),
        (gzip.compress(log), "g.json.gz", None, "cloudtrail"),
    ]


def test_reading_many_gives_what_reading_each_gives():
    documents = _many_documents()
    together = formats.read_many(documents)
    alone = [formats.read(*document) for document in documents]
    assert together == alone
    assert [document.location for document in together] == [
        location for _, location, _, _ in documents]
    assert [len(document.events) for document in together] == [1, 1, 1, 0, len(
        alone[4].events), 0, 0, 1]
    assert together[4].events and together[4].platform == "gcp"


def _document_with(**changes: object) -> LogDocument:
    """A document holding one event read from `RECORD`, with `changes` applied to it."""
    document = formats.read(json.dumps({"Records": [RECORD]}).encode(), "logs/one.json")
    (event,) = document.events
    document.events = [event.model_copy(update=changes)]
    return document


def test_storable_finds_nul_in_nested_fields():
    principal = _document_with().events[0].principal
    cases = {
        "principal.chain[0]": {"principal": principal.model_copy(
            update={"chain": ("arn:aws:iam::111122223333:role/x\x00",)})},
        "evidence": {"evidence": b'{"a": "\x00"}'},
        "shared_with[1]": {"shared_with": ("111122223333", "4444\x00")},
    }
    for field, changes in cases.items():
        document = formats.storable(_document_with(**changes))
        assert document.events == [], field
        (problem,) = document.problems
        assert f"the event's {field} contains a NUL character" in problem.detail


def test_storable_keeps_escaped_backslash_u0000_text():
    document = formats.storable(_document_with(user_agent="agent\\u0000"))
    assert len(document.events) == 1
    assert document.problems == []


def _hijacking_record() -> dict[str, object]:
    """A CreateImage whose caller-chosen name and description carry the markers of
    Docker Hub payloads and registry evidence."""
    record = json.loads(json.dumps(RECORD))
    record["requestParameters"] = {
        "instanceId": "i-0123456789abcdef0", "name": "push_data",
        "description": '"push_data" "repository" "found_via" "manifest_digest"'}
    record["additionalEventData"] = {"push_data": {"tag": "v1"}, "repository": {},
                                     "found_via": "x", "manifest_digest": "y"}
    return record


def test_cloudtrail_start_decides_over_markers_in_values():
    record = _hijacking_record()
    envelope = {"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
                "detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2",
                "account": "111122223333", "time": "2026-03-01T10:00:00Z",
                "region": "us-east-1", "resources": [], "detail": record}
    # Username is the caller's user or session name, and each item repeats it.
    items = [{"EventId": "e1", "EventName": "CreateImage", "ReadOnly": "false",
              "EventTime": "2026-03-01T10:00:00Z", "EventSource": "ec2.amazonaws.com",
              "Username": name, "Resources": [], "CloudTrailEvent": json.dumps(record)}
             for name in ("push_data", "repository", "operationName")]
    documents = {
        "log file": json.dumps({"Records": [record]}).encode(),
        "gzip log file": gzip.compress(json.dumps({"Records": [record]}).encode()),
        "record line": (json.dumps(record) + "\n").encode(),
        "EventBridge event": json.dumps(envelope).encode(),
        "LookupEvents output": json.dumps({"Events": items}).encode(),
        "LookupEvents items": "".join(json.dumps(item) + "\n" for item in items).encode(),
    }
    for shape, data in documents.items():
        assert formats.choose(data) is formats.FALLBACK, shape
        document = formats.read(data, f"logs/{shape}.json")
        copies = 3 if shape.startswith("LookupEvents") else 1
        assert [event.target for event in document.events] == [
            "ami-0123456789abcdef0"] * copies, shape
        assert document.problems == [], shape


def test_docker_hub_payload_still_recognised():
    payload = {"push_data": {"pushed_at": 1764583200, "pusher": "bot", "tag": "v1"},
               "repository": {"repo_name": "team/app"}}
    chosen = formats.choose(json.dumps(payload).encode())
    assert chosen.name == "dockerhub-webhook"


def test_storable_quarantines_text_longer_than_stored():
    principal = _document_with().events[0].principal
    at_limit = formats.storable(_document_with(principal=principal.model_copy(
        update={"id": "a" * 512})))
    assert len(at_limit.events) == 1
    document = formats.storable(_document_with(principal=principal.model_copy(
        update={"id": "a" * 513})))
    assert document.events == []
    assert document.raw == {}
    (problem,) = document.problems
    assert problem.field == "principal.id"
    assert problem.detail == ("the event's principal.id is 513 characters long, more "
                              "than the 512 the database stores")


def test_stored_text_limits_match_event_columns():
    from imageprov.model import MAX_EVENT_TEXT
    from imageprov.store.tables import EventRow

    columns = {"principal.id": "principal_id", "registry": "registry_host"}
    for field, limit in MAX_EVENT_TEXT.items():
        column = EventRow.__table__.columns[columns.get(field, field)]
        assert column.type.length == limit, field


def test_record_keys_decide_in_any_order():
    record = _hijacking_record()
    # `jq -S` writes the keys of every object sorted, and an EventBridge event may
    # come with `detail` first.
    resorted = json.dumps(record, sort_keys=True)
    envelope = {"detail": record, "detail-type": "AWS API Call via CloudTrail",
                "source": "aws.ec2", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
                "version": "0", "account": "111122223333", "region": "us-east-1",
                "time": "2026-03-01T10:00:00Z", "resources": []}
    item = {"Username": "push_data", "EventId": "e1", "EventName": "CreateImage",
            "ReadOnly": "false", "EventTime": "2026-03-01T10:00:00Z",
            "EventSource": "ec2.amazonaws.com", "Resources": [],
            "CloudTrailEvent": json.dumps(record)}
    documents = {
        "sorted record": resorted.encode(),
        "sorted record lines": (resorted + "\n" + resorted + "\n").encode(),
        "sorted records in an array": json.dumps([record], sort_keys=True).encode(),
        "EventBridge event with detail first": json.dumps(envelope).encode(),
        "LookupEvents item with EventId later": json.dumps({"Events": [item]}).encode(),
    }
    for shape, data in documents.items():
        assert formats.choose(data) is formats.FALLBACK, shape
        document = formats.read(data, f"logs/{shape}.json")
        assert "ami-0123456789abcdef0" in [event.target for event in document.events], shape


def test_keys_in_values_decide_nothing():
    # A caller chooses tag names and string values, so CloudTrail's keys there
    # must not take a Docker Hub payload away from its reader.
    keys = {"eventVersion": "1.08", "eventSource": "ec2.amazonaws.com",
            "eventName": "CreateImage"}
    payload = {"push_data": {"pushed_at": 1764583200, "pusher": "bot", "tag": "v1",
                             "labels": keys},
               "callback_url": json.dumps(keys),
               "repository": {"repo_name": "team/app", "tags": keys}}
    assert formats.choose(json.dumps(payload).encode()).name == "dockerhub-webhook"


@pytest.mark.parametrize("name", [None, "registry-notifications", "dockerhub-webhook",
                                  "cosign-evidence", "cloudtrail"])
@pytest.mark.parametrize("location", ["AWSLogs/1/CloudTrail/x.json.gz", "X.JSON.GZ"])
def test_zero_byte_gzip_file_is_a_problem(location, name):
    # Gzip data always has a header, so a `.json.gz` with no bytes was cut short.
    for document in (formats.read(b"", location, name=name),
                     formats.read_many([(b"", location, None, name)])[0]):
        assert document.notices == []
        (problem,) = document.problems
        assert (problem.index, problem.field) == (-1, "(file)")
        assert "empty where gzip data was expected" in problem.detail


def test_empty_gzip_member_and_plain_file_are_notices():
    for data, name in ((gzip.compress(b""), "x.json.gz"), (b"", "x.json"),
                       (b"  \n", "x.json")):
        document = formats.read(data, name)
        assert document.problems == [], name
        assert document.notices == ["empty file"], name
