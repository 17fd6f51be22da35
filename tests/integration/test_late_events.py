"""Verdicts that change over time: late events, expiring exceptions, policy edits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from imageprov import cycle
from imageprov.ingest import ingest
from imageprov.model import Image, ImageKind, Platform, VerdictStatus, ami_arn
from imageprov.policy.schema import load_policy
from imageprov.sources.aws.trail_locations import LocalTrail
from imageprov.store import Store
from tests.helpers import trail

T0 = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)
BUILD = trail.role_identity("ImageBuild", "packer-3", path="/build/")
POLICY = {
    "version": 1,
    "delivery_window": "2h",
    "builders": [{"name": "pipeline",
                  "roles": ["arn:aws:iam::111122223333:role/build/ImageBuild"]}],
}
REF = ami_arn("us-east-1", trail.ACCOUNT, "ami-0000000000000b001")


def _setup(tmp_path: Path, database: str, policy: dict) -> tuple[Store, Path]:
    store = Store.open(database)
    store.save_images([Image(ref=REF, platform=Platform.AWS, kind=ImageKind.AMI,
                             account=trail.ACCOUNT, region="us-east-1",
                             native_id="ami-0000000000000b001", created=T0)])
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return store, path


def _evaluate(store: Store, policy_path: Path, now: datetime):
    policy, text = load_policy(policy_path)
    cycle.evaluate(store, policy, text, now=now)
    return store.current_verdicts()[REF]


def _write_log(folder: Path, records: list[dict], when: datetime) -> None:
    path = folder / trail.log_key(when)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(trail.log_file(records))


def test_late_event_turns_pending_into_approved(tmp_path, database_url):
    store, policy = _setup(tmp_path, database_url, POLICY)
    assert _evaluate(store, policy, T0 + timedelta(minutes=10)).status is VerdictStatus.PENDING
    _write_log(tmp_path / "logs", [trail.create_image(BUILD, T0, "ami-0000000000000b001")],
               T0 + timedelta(minutes=50))
    ingest(store, LocalTrail(tmp_path / "logs").objects())
    verdict = _evaluate(store, policy, T0 + timedelta(minutes=55))
    assert verdict.status is VerdictStatus.APPROVED
    history = [v.status for v in store.verdict_history(REF)]
    assert history == [VerdictStatus.PENDING, VerdictStatus.APPROVED]


def test_pending_becomes_unattributed_after_window(tmp_path, database_url):
    store, policy = _setup(tmp_path, database_url, POLICY)
    _write_log(tmp_path / "logs", trail.noise(T0, 3), T0 + timedelta(minutes=5))
    ingest(store, LocalTrail(tmp_path / "logs").objects())
    assert _evaluate(store, policy, T0 + timedelta(hours=1)).status is VerdictStatus.PENDING
    later = _evaluate(store, policy, T0 + timedelta(hours=3))
    assert later.status is VerdictStatus.UNATTRIBUTED


def test_expired_exception_flips_with_history(tmp_path, database_url):
    excepted = dict(POLICY, exceptions=[{"image": REF, "reason": "hand-built hotfix",
                                         "expires": "2026-11-20"}])
    store, policy = _setup(tmp_path, database_url, excepted)
    mallory = trail.user_identity("mallory")
    _write_log(tmp_path / "logs", [trail.create_image(mallory, T0, "ami-0000000000000b001")],
               T0 + timedelta(minutes=5))
    ingest(store, LocalTrail(tmp_path / "logs").objects())
    before = _evaluate(store, policy, datetime(2026, 11, 19, tzinfo=UTC))
    after = _evaluate(store, policy, datetime(2026, 11, 21, 0, 1, tzinfo=UTC))
    assert before.status is VerdictStatus.EXCEPTED
    assert after.status is VerdictStatus.FLAGGED
    history = store.verdict_history(REF)
    assert [v.status for v in history] == [VerdictStatus.EXCEPTED, VerdictStatus.FLAGGED]
    assert history[0].policy_hash == history[1].policy_hash == load_policy(policy)[0].hash


def test_policy_change_reevaluates_and_records_hash(tmp_path, database_url):
    store, policy = _setup(tmp_path, database_url, POLICY)
    user = trail.user_identity("release-bot")
    _write_log(tmp_path / "logs", [trail.create_image(user, T0, "ami-0000000000000b001")],
               T0 + timedelta(minutes=5))
    ingest(store, LocalTrail(tmp_path / "logs").objects())
    now = T0 + timedelta(days=1)
    first = _evaluate(store, policy, now)
    widened = json.loads(json.dumps(POLICY))
    widened["builders"].append({"name": "release-bot",
                                "principals": ["arn:aws:iam::111122223333:user/release-bot"]})
    policy.write_text(yaml.safe_dump(widened))
    second = _evaluate(store, policy, now)
    assert first.status is VerdictStatus.FLAGGED
    assert second.status is VerdictStatus.APPROVED
    assert first.policy_hash != second.policy_hash
    assert second.policy_hash == load_policy(policy)[0].hash


def test_wrong_identity_type_quarantined(tmp_path, database_url):
    store, _ = _setup(tmp_path, database_url, POLICY)
    bad = trail.create_image(BUILD, T0, "ami-0000000000000b001")
    bad["userIdentity"] = "AssumedRole"
    good = trail.create_image(BUILD, T0, "ami-0000000000000b002")
    _write_log(tmp_path / "logs", [good, bad, *trail.noise(T0, 2)], T0 + timedelta(minutes=5))
    summary = ingest(store, LocalTrail(tmp_path / "logs").objects())
    rows = store.quarantined()
    assert summary.problems == 1
    assert [(r.record_index, r.field) for r in rows] == [(1, "userIdentity")]
    assert [e.target for e in store.events()] == ["ami-0000000000000b002"]
