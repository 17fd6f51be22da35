"""Replicas on one PostgreSQL store divide the work and never repeat it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import boto3
import yaml
from sqlalchemy import create_engine, text

from imageprov.config import Config
from imageprov.daemon import Daemon
from imageprov.model import Image, ImageKind, Platform, Verdict, VerdictStatus
from imageprov.store import Store
from tests.helpers import trail

BUCKET = "replica-trail"
ACCOUNT = "123456789012"
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2"]


def _fill_bucket() -> int:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    role = trail.role_identity("ImageBuild", "packer", account=ACCOUNT, path="/build/")
    count = 0
    for number, region in enumerate(REGIONS):
        for hour in range(3):
            when = T0 + timedelta(hours=hour, minutes=number)
            records = trail.noise(when, 20, account=ACCOUNT)
            for record in records:
                record["awsRegion"] = region
            records.append(trail.create_image(
                role, when, f"ami-{number:08x}{hour:09x}", account=ACCOUNT, region=region))
            key = trail.log_key(when, account=ACCOUNT, region=region,
                                suffix=f"Replica{number}{hour}abcdefgh")
            s3.put_object(Bucket=BUCKET, Key=key, Body=trail.log_file(records))
            count += 1
    return count


def test_two_daemons_store_each_record_once(moto, postgres_url, tmp_path):
    files = _fill_bucket()
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"builders": [
        {"name": "pipeline", "roles": [f"arn:aws:iam::{ACCOUNT}:role/build/ImageBuild"]}]}))
    config = tmp_path / "replica.yaml"
    config.write_text(yaml.safe_dump({
        "policy": str(policy), "workers": 1,
        "schedule": {"inventory": {"interval": "1h"}, "logs": {"interval": "1s"},
                     "evaluate": {"interval": "1h"}},
        "aws": {"cloudtrail": [{"s3_bucket": BUCKET, "prefix": "AWSLogs/",
                                "region": "us-east-1"}]},
    }))
    command = [sys.executable, "-m", "imageprov", "run", "--config", str(config),
               "--database", postgres_url]
    replicas = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=os.environ.copy()) for _ in range(2)]
    engine = create_engine(postgres_url)
    try:
        deadline = time.monotonic() + 90
        stored = 0
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                with engine.connect() as connection:
                    stored = connection.execute(text("SELECT count(*) FROM log_files")).scalar()
            except Exception:  # noqa: BLE001 - the schema may not exist yet
                continue
            if stored == files:
                break
        # A few more turns of the log step on both replicas.
        time.sleep(3)
    finally:
        outputs = []
        for process in replicas:
            process.send_signal(signal.SIGTERM)
            outputs.append(process.communicate(timeout=60)[1])
    assert [process.returncode for process in replicas] == [0, 0], outputs
    with engine.connect() as connection:
        log_files = connection.execute(text("SELECT count(*) FROM log_files")).scalar()
        events = connection.execute(text("SELECT count(*) FROM events")).scalar()
        quarantined = connection.execute(text("SELECT count(*) FROM quarantine")).scalar()
        checkpoints = connection.execute(text("SELECT count(*) FROM checkpoints")).scalar()
    engine.dispose()
    assert log_files == files
    assert events == files
    assert quarantined == 0
    assert checkpoints == len(REGIONS)
    line = r"kind=cloudtrail account=\S+ region=\S+ files=(\d+) skipped=(\d+)"
    counts = [re.findall(line, output) for output in outputs]
    read = [sum(int(files) for files, _ in found) for found in counts]
    skipped = [sum(int(skips) for _, skips in found) for found in counts]
    assert sum(read) == files, outputs
    assert sum(skipped) == 0, outputs
    assert all("failed" not in output for output in outputs), outputs


def _verdict(image: str, status: VerdictStatus) -> Verdict:
    return Verdict(image=image, status=status, rule="test", policy_hash="p1",
                   decided_at=T0, reason="judged by a replica")


def test_replicas_saving_one_change_at_once_append_it_once(postgres_url):
    stores = [Store.open(postgres_url) for _ in range(4)]
    image = "arn:aws:ec2:us-east-1:123456789012:image/ami-0000000000000c001"
    stores[0].save_verdicts([_verdict(image, VerdictStatus.PENDING)])
    barrier = threading.Barrier(len(stores))
    added: list[int] = []

    def save(store: Store) -> None:
        barrier.wait()
        added.append(store.save_verdicts([_verdict(image, VerdictStatus.FLAGGED)]))

    threads = [threading.Thread(target=save, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(added) == [0, 0, 0, 1]
    history = stores[0].verdict_history(image)
    assert [verdict.status for verdict in history] == [VerdictStatus.PENDING,
                                                      VerdictStatus.FLAGGED]
    for store in stores:
        store.close()


def test_evaluation_claimed_by_another_replica_is_skipped(postgres_url, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"builders": [
        {"name": "pipeline", "roles": [f"arn:aws:iam::{ACCOUNT}:role/build/ImageBuild"]}]}))
    config = Config(policy=policy)
    holder = Store.open(postgres_url)
    store = Store.open(postgres_url)
    store.save_images([Image(ref="arn:aws:ec2:us-east-1:123456789012:image/ami-0d",
                             platform=Platform.AWS, kind=ImageKind.AMI, account=ACCOUNT,
                             region="us-east-1", native_id="ami-0d", created=T0)])
    with holder.claims() as claim:
        assert claim("evaluate")
        Daemon(config, store).step("evaluate")
        assert store.current_verdicts() == {}
    Daemon(config, store).step("evaluate")
    assert list(store.current_verdicts()) == ["arn:aws:ec2:us-east-1:123456789012:image/ami-0d"]
    holder.close()
    store.close()
