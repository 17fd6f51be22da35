"""Digest checks in a cycle: moto's S3 stores the trail, its digests and a forgery."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import yaml

from imageprov import cycle
from imageprov.config import load_config
from imageprov.model import Flag, VerdictStatus
from imageprov.policy import load_policy
from imageprov.store import Store
from tests.helpers import trail
from tests.helpers.digests import Signer, build_chain

BUCKET = "org-cloudtrail-logs"
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
GENUINE, FORGED, EDITED = "ami-0aaaaaaaaaaaaaaa1", "ami-0bbbbbbbbbbbbbbb2", "ami-0ccccccccccccccc3"


def _ami(image_id: str) -> dict:
    return {"ImageId": image_id, "OwnerId": trail.ACCOUNT, "Name": image_id,
            "CreationDate": "2026-11-30T08:10:00.000Z", "State": "available",
            "Public": False, "ImageType": "machine"}


def _arn(image_id: str) -> str:
    return f"arn:aws:ec2:{trail.REGION}:{trail.ACCOUNT}:image/{image_id}"


@pytest.fixture
def bucket(moto, tmp_path: Path):
    """A trail whose digests list two genuine files; a third file is forged later."""
    s3 = boto3.Session(region_name="us-east-1").client("s3")
    s3.create_bucket(Bucket=BUCKET)
    pipeline = trail.role_identity("ImageBuild", "packer-7", path="/build/")
    files = []
    for minute, image_id in ((5, GENUINE), (15, EDITED)):
        when = T0 + timedelta(minutes=minute)
        body = trail.log_file([trail.create_image(pipeline, when, image_id)])
        files.append((trail.log_key(when, suffix=f"Genuine{minute:02d}aaaaaaa"), body))
    signer = Signer()
    digests = build_chain(signer, BUCKET, trail.ACCOUNT, trail.REGION,
                          [(T0, files), (T0 + timedelta(hours=1), [])])
    for key, body in files:
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    for digest in digests:
        s3.put_object(Bucket=BUCKET, Key=digest.key, Body=digest.body,
                      Metadata={"signature": digest.signature,
                                "signature-algorithm": "SHA256withRSA"})
    # The attacker writes a file in the same layout, and rewrites a genuine one
    # after its digest was signed.
    when = T0 + timedelta(minutes=25)
    s3.put_object(Bucket=BUCKET, Key=trail.log_key(when, suffix="ForgedForgedForg"),
                  Body=trail.log_file([trail.create_image(pipeline, when, FORGED)]))
    edited = [trail.create_image(pipeline, T0 + timedelta(minutes=15), EDITED,
                                 agent="Packer/1.10 aws-sdk-go/1.50")]
    s3.put_object(Bucket=BUCKET, Key=files[1][0], Body=trail.log_file(edited))
    (tmp_path / "public-keys.json").write_text(json.dumps(signer.public_key_list("x509")))
    (tmp_path / "ec2.json").write_text(json.dumps(
        {"Images": [_ami(GENUINE), _ami(FORGED), _ami(EDITED)]}))
    return s3


def _scan(tmp_path: Path, require: bool, database: str):
    policy = {"version": 1, "require_validated_logs": require, "builders": [
        {"name": "golden-ami-pipeline",
         "roles": [f"arn:aws:iam::{trail.ACCOUNT}:role/build/ImageBuild"]}]}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    config = {"policy": "policy.yaml", "workers": 1, "aws": {
        "inventory_files": [{"path": "ec2.json", "kind": "ami", "region": trail.REGION,
                             "account": trail.ACCOUNT}],
        "cloudtrail": [{"s3_bucket": BUCKET, "prefix": "AWSLogs/", "region": "us-east-1",
                        "public_keys": "public-keys.json"}]}}
    (tmp_path / "imageprov.yaml").write_text(yaml.safe_dump(config))
    settings = load_config(tmp_path / "imageprov.yaml")
    policy_model, text = load_policy(settings.policy)
    store = Store.open(database)
    summary = cycle.run_cycle(settings, store, policy_model, text,
                              now=T0 + timedelta(days=1))
    verdicts = store.current_verdicts()
    events = {event.target: event for event in store.events()}
    store.close()
    return summary, verdicts, events


def test_forged_file_cannot_approve(bucket, tmp_path, database_url):
    summary, verdicts, events = _scan(tmp_path, require=True, database=database_url)
    assert events[GENUINE].log_validation.value == "validated"
    assert events[FORGED].log_validation.value == "unvalidated"
    assert events[EDITED].log_validation.value == "failed"
    assert verdicts[_arn(GENUINE)].status is VerdictStatus.APPROVED
    forged = verdicts[_arn(FORGED)]
    assert forged.status is VerdictStatus.FLAGGED
    assert forged.flags == (Flag.UNVALIDATED_LOG,)
    assert "ForgedForgedForg" in forged.reason
    assert "not validated by a CloudTrail digest" in forged.reason
    kinds = [problem.kind for problem in summary.digest_problems]
    assert kinds == ["hash-mismatch"]


def test_failed_file_never_approves(bucket, tmp_path, sqlite_url):
    _, verdicts, _ = _scan(tmp_path, require=False, database=sqlite_url)
    # Without the requirement an unlisted file still counts, but a file whose hash
    # differs from its digest does not.
    assert verdicts[_arn(FORGED)].status is VerdictStatus.APPROVED
    edited = verdicts[_arn(EDITED)]
    assert edited.status is VerdictStatus.FLAGGED
    assert edited.flags == (Flag.UNVALIDATED_LOG,)
    assert "failed its digest check" in edited.reason


def test_young_unvalidated_event_is_pending(bucket, tmp_path, sqlite_url):
    _scan(tmp_path, require=True, database=sqlite_url)
    settings = load_config(tmp_path / "imageprov.yaml")
    policy, text = load_policy(settings.policy)
    store = Store.open(sqlite_url)
    evaluation, _ = cycle.evaluate(store, policy, text, now=T0 + timedelta(minutes=40))
    store.close()
    forged = evaluation.verdicts[_arn(FORGED)]
    assert forged.status is VerdictStatus.PENDING
    assert forged.rule == "digest-window"
