"""LookupEvents read forward from a checkpoint, within the API's rate limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.config import Config

from imageprov.ingest import ingest
from imageprov.sources.aws.lookup_events import LookupEventsTrail, RateLimiter
from imageprov.store import Store
from tests.helpers import trail
from tests.helpers.cloudtrail_standin import LookupEventsStandin

NOW = datetime.now(UTC).replace(microsecond=0)
ROLE = trail.role_identity("ImageBuild", "packer", path="/build/")


def _records() -> list[dict]:
    records = []
    for number in range(110):
        when = NOW - timedelta(hours=20) + timedelta(minutes=10 * number)
        if number % 10 == 0:
            records.append(trail.create_image(ROLE, when, f"ami-{number:017x}"))
        else:
            records.extend(trail.noise(when, 1))
            records[-1]["eventSource"] = "ec2.amazonaws.com"
    records.append(trail.put_image(ROLE, NOW - timedelta(hours=1), "app", "v1",
                                   "sha256:" + "f0" * 32))
    return records


@pytest.fixture
def standin():
    with LookupEventsStandin(_records()) as server:
        yield server


def _client(standin):
    return boto3.client("cloudtrail", region_name="us-east-1", endpoint_url=standin.url,
                        verify=str(standin.cert), aws_access_key_id="testing",
                        aws_secret_access_key="testing",
                        config=Config(retries={"total_max_attempts": 1}))


def _history(standin, store, source="ec2.amazonaws.com", now=NOW, **kw):
    return LookupEventsTrail(_client(standin), "us-east-1", source, store.checkpoint,
                             backfill=timedelta(days=1), now=lambda: now, **kw)


def test_pages_read_within_rate_limit(standin, tmp_path, database_url):
    store = Store.open(database_url)
    summary = ingest(store, _history(standin, store).objects())
    assert summary.records == 110
    assert summary.problems == 0
    assert len(standin.calls) == 3
    assert standin.too_fast == 0
    gaps = [b - a for a, b in zip(standin.call_times, standin.call_times[1:], strict=False)]
    assert all(gap >= 0.49 for gap in gaps)
    assert [c.get("NextToken") for c in standin.calls] == [None, "50", "100"]
    assert {e.target for e in store.events()} == {f"ami-{n:017x}" for n in range(0, 110, 10)}
    end = NOW - timedelta(minutes=5)
    assert store.checkpoint("lookup-events:us-east-1:ec2.amazonaws.com") == end.strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def test_second_run_starts_at_checkpoint(standin, tmp_path, database_url):
    store = Store.open(database_url)
    ingest(store, _history(standin, store).objects())
    first_calls = len(standin.calls)
    later = NOW + timedelta(hours=1)
    summary = ingest(store, _history(standin, store, now=later).objects())
    window = standin.calls[first_calls]
    assert window["StartTime"] == pytest.approx((NOW - timedelta(minutes=5)).timestamp())
    assert window["EndTime"] == pytest.approx((later - timedelta(minutes=5)).timestamp())
    assert summary.records == 0
    assert store.event_count() == 11


def test_throttling_backs_off_then_succeeds(standin, tmp_path, database_url):
    store = Store.open(database_url)
    standin.throttle_next = 2
    pauses: list[float] = []
    history = _history(standin, store, source="ecr.amazonaws.com", sleep=pauses.append)
    summary = ingest(store, history.objects())
    assert pauses == [1.0, 2.0]
    assert summary.records == 1
    assert [e.target for e in store.events()] == ["sha256:" + "f0" * 32]


def test_throttling_gives_up_with_source_error(standin, tmp_path, database_url):
    from imageprov.errors import SourceError

    store = Store.open(database_url)
    standin.throttle_next = 10
    history = _history(standin, store, sleep=lambda _: None, max_attempts=3)
    with pytest.raises(SourceError, match="LookupEvents failed"):
        ingest(store, history.objects())
    assert store.checkpoint("lookup-events:us-east-1:ec2.amazonaws.com") is None


def test_rate_limiter_spaces_calls():
    moments = iter([0.0, 0.1, 0.5, 0.6, 2.0])
    slept: list[float] = []
    limiter = RateLimiter(2.0, clock=lambda: next(moments), sleep=slept.append, margin=0.0)
    limiter.wait()
    limiter.wait()
    limiter.wait()
    assert slept == [pytest.approx(0.4), pytest.approx(0.4)]


def test_cycle_reads_lookup_events_from_config(standin, tmp_path, monkeypatch,
                                               database_url):
    import yaml

    from imageprov import cycle
    from imageprov.config import load_config
    from imageprov.policy import load_policy

    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", standin.url)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(standin.cert))
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump({"builders": [
        {"name": "pipeline", "roles": ["arn:aws:iam::111122223333:role/build/ImageBuild"]}]}))
    (tmp_path / "lookup.yaml").write_text(yaml.safe_dump({
        "policy": "policy.yaml", "workers": 1,
        "aws": {"cloudtrail": [{"lookup_events": True, "region": "us-east-1",
                                "backfill": "2d"}]}}))
    config = load_config(tmp_path / "lookup.yaml")
    policy, text = load_policy(config.policy)
    store = Store.open(database_url)
    summary = cycle.run_cycle(config, store, policy, text)
    assert summary.sources_failed == []
    assert summary.logs.records == 111
    assert store.event_count() == 12
    assert {c["LookupAttributes"][0]["AttributeValue"] for c in standin.calls} == {
        "ec2.amazonaws.com", "ecr.amazonaws.com"}
