"""The whole cycle on AWS: moto serves the images, the test writes the trail.

moto writes no CloudTrail and fakes ECR digests, so each test reads the ids and
digests moto assigned and writes the trail records that name them into moto's S3
bucket, in the key layout CloudTrail uses.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import yaml

from imageprov import cycle
from imageprov.config import load_config
from imageprov.errors import SourceError
from imageprov.model import Flag, VerdictStatus
from imageprov.policy import load_policy
from imageprov.store import Store
from tests.conftest import run_cli
from tests.helpers import trail

BUCKET = "org-cloudtrail-logs"
# moto's default account, which owns every image the tests create.
ACCOUNT = "123456789012"
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)

POLICY = {
    "version": 1,
    "delivery_window": "1h",
    "builders": [
        {"name": "golden-ami-pipeline",
         "roles": ["arn:aws:iam::123456789012:role/build/ImageBuild"],
         "networks": ["10.20.0.0/16"]},
        {"name": "ci-image-push",
         "roles": ["arn:aws:iam::123456789012:role/ci/GitHubActionsECRPush"],
         "actions": ["push"]},
    ],
}


@pytest.fixture
def aws(moto):
    session = boto3.Session(region_name="us-east-1")
    ec2 = session.client("ec2")
    ecr = session.client("ecr")
    s3 = session.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    return ec2, ecr, s3


def _config(tmp_path: Path, ecr: bool = True) -> Path:
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(POLICY))
    config = {
        "policy": "policy.yaml",
        "workers": 1,
        "aws": {
            "api": {"regions": ["us-east-1"], "ami": True, "ecr": ecr},
            "cloudtrail": [{"s3_bucket": BUCKET, "prefix": "AWSLogs/", "region": "us-east-1"}],
        },
    }
    path = tmp_path / "imageprov.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _put_trail(s3, when: datetime, records: list[dict], org: str | None = None) -> str:
    key = trail.log_key(when, account=ACCOUNT, org=org)
    s3.put_object(Bucket=BUCKET, Key=key, Body=trail.log_file(records))
    return key


def _identity(kind, *args, **kwargs):
    return kind(*args, account=ACCOUNT, **kwargs)


def _scan(tmp_path: Path, database: str, now: datetime | None = None):
    config = load_config(_config(tmp_path))
    policy, text = load_policy(config.policy)
    store = Store.open(database)
    # moto stamps images with the real time, so judge them past the delivery window.
    now = now or datetime.now(UTC) + timedelta(hours=2)
    summary = cycle.run_cycle(config, store, policy, text, now=now)
    return store, summary


def _new_ami(ec2, name: str) -> str:
    base = ec2.register_image(Name=f"{name}-base", RootDeviceName="/dev/xvda")["ImageId"]
    instance = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]
    return ec2.create_image(InstanceId=instance["InstanceId"], Name=name)["ImageId"], base


def _roles():
    pipeline = _identity(trail.role_identity, "ImageBuild", "packer-7", path="/build/")
    ci = _identity(trail.role_identity, "GitHubActionsECRPush", "gha-11", path="/ci/")
    return pipeline, ci


def _ami_arn(image_id: str) -> str:
    return f"arn:aws:ec2:us-east-1:{ACCOUNT}:image/{image_id}"


def test_pipeline_ami_from_internal_address_approved(aws, tmp_path, database_url):
    ec2, _, s3 = aws
    image_id, base = _new_ami(ec2, "golden-2026-11-30")
    pipeline, _ = _roles()
    _put_trail(s3, T0 + timedelta(minutes=5), [
        *trail.noise(T0, 5, account=ACCOUNT),
        trail.create_image(pipeline, T0 + timedelta(minutes=2), image_id, ip="10.20.4.17",
                           account=ACCOUNT),
    ])
    store, summary = _scan(tmp_path, database_url)
    verdict = store.current_verdicts()[_ami_arn(image_id)]
    assert verdict.status is VerdictStatus.APPROVED
    assert verdict.rule == "golden-ami-pipeline"
    assert verdict.flags == ()
    assert verdict.source_ip == "10.20.4.17"
    assert summary.sources_failed == []


def test_root_create_image_flagged_root(aws, tmp_path, database_url):
    ec2, _, s3 = aws
    image_id, _ = _new_ami(ec2, "hotfix")
    root = _identity(trail.root_identity)
    _put_trail(s3, T0 + timedelta(minutes=5), [
        trail.create_image(root, T0 + timedelta(minutes=1), image_id, ip="10.20.4.17",
                           account=ACCOUNT),
    ])
    store, _ = _scan(tmp_path, database_url)
    verdict = store.current_verdicts()[_ami_arn(image_id)]
    assert verdict.status is VerdictStatus.FLAGGED
    assert Flag.ROOT in verdict.flags
    assert Flag.EXTERNAL_NETWORK not in verdict.flags
    assert verdict.actor == f"arn:aws:iam::{ACCOUNT}:root"


def test_public_address_flagged_external_network(aws, tmp_path, database_url):
    ec2, _, s3 = aws
    image_id, _ = _new_ami(ec2, "golden-from-outside")
    pipeline, _ = _roles()
    _put_trail(s3, T0 + timedelta(minutes=5), [
        trail.create_image(pipeline, T0 + timedelta(minutes=1), image_id, ip="172.64.1.1",
                           account=ACCOUNT),
    ])
    store, _ = _scan(tmp_path, database_url)
    verdict = store.current_verdicts()[_ami_arn(image_id)]
    assert verdict.status is VerdictStatus.FLAGGED
    assert Flag.EXTERNAL_NETWORK in verdict.flags
    assert Flag.ROOT not in verdict.flags
    assert "172.64.1.1" in verdict.reason


def _push(ecr, repository: str, tag: str, layer: str) -> str:
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": 7023, "digest": "sha256:" + layer * 64},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 32654, "digest": "sha256:" + layer * 64}],
    })
    image = ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag=tag)
    return image["image"]["imageId"]["imageDigest"]


def test_moved_latest_tag_flags_new_digest(aws, tmp_path, database_url):
    _, ecr, s3 = aws
    ecr.create_repository(repositoryName="payments-api")
    # moto deletes a digest when its last tag moves away, where ECR keeps it
    # untagged, so the first digest also carries a release tag.
    first = _push(ecr, "payments-api", "v1.4.0", "a")
    assert _push(ecr, "payments-api", "latest", "a") == first
    second = _push(ecr, "payments-api", "latest", "b")
    assert first != second
    _, ci = _roles()
    intruder = _identity(trail.user_identity, "contractor-tmp")
    _put_trail(s3, T0 + timedelta(minutes=10), [
        trail.put_image(ci, T0 + timedelta(minutes=1), "payments-api", "v1.4.0", first,
                        registry=ACCOUNT, account=ACCOUNT, ip="10.30.1.9"),
        trail.put_image(ci, T0 + timedelta(minutes=2), "payments-api", "latest", first,
                        registry=ACCOUNT, account=ACCOUNT, ip="10.30.1.9"),
        trail.put_image(intruder, T0 + timedelta(minutes=7), "payments-api", "latest", second,
                        registry=ACCOUNT, account=ACCOUNT, ip="10.30.1.50"),
    ])
    store, _ = _scan(tmp_path, database_url)
    registry = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
    verdicts = store.current_verdicts()
    approved = verdicts[f"{registry}/payments-api@{first}"]
    flagged = verdicts[f"{registry}/payments-api@{second}"]
    assert approved.status is VerdictStatus.APPROVED
    assert approved.rule == "ci-image-push"
    assert flagged.status is VerdictStatus.FLAGGED
    assert Flag.UNEXPECTED_ACTOR in flagged.flags
    assert flagged.actor == f"arn:aws:iam::{ACCOUNT}:user/contractor-tmp"

    moves = store.tag_history(registry, "payments-api", "latest")
    assert [move.digest for move in moves] == [first, second]
    assert moves[0].actor.endswith("assumed-role/GitHubActionsECRPush/gha-11")
    assert moves[1].actor.endswith("user/contractor-tmp")


def test_ami_without_event_unattributed_names_span(aws, tmp_path, database_url):
    ec2, _, s3 = aws
    image_id, base = _new_ami(ec2, "orphan")
    _put_trail(s3, T0 + timedelta(minutes=5), trail.noise(T0, 3, account=ACCOUNT))
    _put_trail(s3, T0 + timedelta(hours=2), trail.noise(T0 + timedelta(hours=2), 3, account=ACCOUNT))
    store, _ = _scan(tmp_path, database_url)
    verdict = store.current_verdicts()[_ami_arn(image_id)]
    assert verdict.status is VerdictStatus.UNATTRIBUTED
    assert verdict.event_id is None
    assert f"{ACCOUNT}/us-east-1" in verdict.reason
    assert "2026-11-30T08:00:00Z to 2026-11-30T08:00:02Z" in verdict.reason
    assert "2026-11-30T10:00:00Z to 2026-11-30T10:00:02Z" in verdict.reason


def test_failed_create_image_attributes_nothing(aws, tmp_path, database_url):
    ec2, _, s3 = aws
    image_id, _ = _new_ami(ec2, "contested")
    pipeline, _ = _roles()
    denied = trail.create_image(pipeline, T0 + timedelta(minutes=1), image_id,
                                ip="10.20.4.17", account=ACCOUNT,
                                error="AccessDenied")
    # A failed call has no response; keep the id in it to prove it is still ignored.
    denied["responseElements"] = {"imageId": image_id}
    _put_trail(s3, T0 + timedelta(minutes=5), [denied])
    store, _ = _scan(tmp_path, database_url)
    verdict = store.current_verdicts()[_ami_arn(image_id)]
    assert verdict.status is VerdictStatus.UNATTRIBUTED
    assert verdict.event_id is None
    stored = [e for e in store.events() if e.event_id == denied["eventID"]]
    assert len(stored) == 1
    assert stored[0].error_code == "AccessDenied"


def test_organisation_trail_key_layout_read(aws, tmp_path, database_url):
    ec2, _, s3 = aws
    image_id, _ = _new_ami(ec2, "org-golden")
    pipeline, _ = _roles()
    record = trail.create_image(pipeline, T0 + timedelta(minutes=1), image_id,
                                ip="10.20.9.9", account=ACCOUNT)
    # Records of an organisation trail may omit recipientAccountId when exported;
    # the account then comes from the key.
    del record["recipientAccountId"]
    record["userIdentity"] = dict(record["userIdentity"], accountId=None)
    key = _put_trail(s3, T0 + timedelta(minutes=5), [record], org="o-a1b2c3d4e5")
    assert key.startswith(f"AWSLogs/o-a1b2c3d4e5/{ACCOUNT}/CloudTrail/")
    store, _ = _scan(tmp_path, database_url)
    verdict = store.current_verdicts()[_ami_arn(image_id)]
    assert verdict.status is VerdictStatus.APPROVED


def test_second_scan_adds_no_verdict_rows(aws, tmp_path, database_url):
    ec2, _, s3 = aws
    image_id, _ = _new_ami(ec2, "steady")
    pipeline, _ = _roles()
    _put_trail(s3, T0 + timedelta(minutes=5), [
        trail.create_image(pipeline, T0 + timedelta(minutes=1), image_id, ip="10.20.4.17",
                           account=ACCOUNT),
    ])
    store, first = _scan(tmp_path, database_url)
    store, second = _scan(tmp_path, database_url)
    assert first.verdicts_changed == 2
    assert second.verdicts_changed == 0
    # The checkpoint of the region folder keeps the stored file from being fetched.
    assert second.logs.files == 0
    assert second.logs.skipped == 0
    assert len(store.verdict_history(_ami_arn(image_id))) == 1


def test_deregistered_ami_leaves_the_verdicts(aws, tmp_path, database_url):
    ec2, _, s3 = aws
    image_id, base = _new_ami(ec2, "retired")
    pipeline, _ = _roles()
    _put_trail(s3, T0 + timedelta(minutes=5), [
        trail.create_image(pipeline, T0 + timedelta(minutes=1), image_id, ip="10.20.4.17",
                           account=ACCOUNT),
    ])
    store, _ = _scan(tmp_path, database_url)
    assert _ami_arn(image_id) in {image.ref for image in store.images()}
    ec2.deregister_image(ImageId=image_id)
    store, second = _scan(tmp_path, database_url)
    present = {image.ref for image in store.images()}
    assert present == {_ami_arn(base)}
    assert second.by_status == {"unattributed": 1}
    assert _ami_arn(image_id) in {image.ref for image in store.images(include_gone=True)}
    # Its history stays for audits.
    assert store.verdict_history(_ami_arn(image_id))[-1].status is VerdictStatus.APPROVED


def test_last_images_of_a_source_go(aws, tmp_path, database_url):
    ec2, _, _ = aws
    image_id, base = _new_ami(ec2, "only")
    store, _ = _scan(tmp_path, database_url)
    assert {_ami_arn(image_id), _ami_arn(base)} <= {image.ref for image in store.images()}
    ec2.deregister_image(ImageId=image_id)
    ec2.deregister_image(ImageId=base)
    # The listing now reports no AMI at all, so both are gone.
    store, _ = _scan(tmp_path, database_url)
    assert not [image for image in store.images() if image.kind.value == "ami"]
    assert _ami_arn(image_id) in {image.ref for image in store.images(include_gone=True)}


def test_checkpoint_reads_only_new_objects(aws, tmp_path, database_url):
    ec2, _, s3 = aws
    image_id, _ = _new_ami(ec2, "later-golden")
    pipeline, _ = _roles()
    _put_trail(s3, T0 + timedelta(minutes=5), trail.noise(T0, 4, account=ACCOUNT))
    store, first = _scan(tmp_path, database_url)
    assert first.logs.files == 1
    folder = f"s3://{BUCKET}/AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/"
    assert store.checkpoint(folder).endswith("_CloudTrail_us-east-1_20261130T0805Z_"
                                             "A1b2C3d4E5f6G7h8.json.gz")
    # A late record is delivered in a later file, under a later date folder.
    late = trail.create_image(pipeline, T0 + timedelta(minutes=1), image_id,
                              ip="10.20.4.17", account=ACCOUNT)
    _put_trail(s3, T0 + timedelta(days=1, hours=3), [late])
    other = trail.log_key(T0 + timedelta(minutes=7), account=ACCOUNT, region="eu-west-1")
    s3.put_object(Bucket=BUCKET, Key=other,
                  Body=trail.log_file(trail.noise(T0, 2, account=ACCOUNT)))
    s3.put_object(Bucket=BUCKET, Key=f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/"
                  "2026/11/30/digest.json.gz", Body=b"not read")
    store, second = _scan(tmp_path, database_url)
    assert second.logs.files == 2
    assert second.logs.skipped == 0
    assert second.logs.problems == 0
    verdict = store.current_verdicts()[_ami_arn(image_id)]
    assert verdict.status is VerdictStatus.APPROVED
    assert verdict.event_id == late["eventID"]


def test_file_sorting_before_checkpoint_read(aws, tmp_path, database_url):
    ec2, _, s3 = aws
    same_minute, _ = _new_ami(ec2, "same-minute")
    earlier_hour, _ = _new_ami(ec2, "earlier-hour")
    pipeline, _ = _roles()
    when = T0 + timedelta(hours=2)
    _put_trail(s3, when, trail.noise(T0, 3, account=ACCOUNT))
    stray = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/README.txt"
    s3.put_object(Bucket=BUCKET, Key=stray, Body=b"notes")
    store, first = _scan(tmp_path, database_url)
    assert (first.logs.files, first.logs.problems) == (1, 0)
    # Files delivered in the same minute sort by a random suffix, and a copied
    # bucket can receive an older key late: both sort before the checkpoint.
    for image_id, at, suffix in ((same_minute, when, "0000000000000000"),
                                 (earlier_hour, when - timedelta(hours=1), "Zzzz")):
        key = trail.log_key(at, account=ACCOUNT, suffix=suffix)
        record = trail.create_image(pipeline, at - timedelta(minutes=3), image_id,
                                    ip="10.20.4.17", account=ACCOUNT)
        s3.put_object(Bucket=BUCKET, Key=key, Body=trail.log_file([record]))
    store, second = _scan(tmp_path, database_url)
    assert (second.logs.files, second.logs.skipped, second.logs.problems) == (2, 0, 0)
    verdicts = store.current_verdicts()
    assert verdicts[_ami_arn(same_minute)].status is VerdictStatus.APPROVED
    assert verdicts[_ami_arn(earlier_hour)].status is VerdictStatus.APPROVED
    folder = f"s3://{BUCKET}/AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/"
    assert store.checkpoint(folder) == trail.log_key(when, account=ACCOUNT)
    # Files read before are listed again but neither downloaded nor counted.
    store, third = _scan(tmp_path, database_url)
    assert (third.logs.files, third.logs.skipped) == (0, 0)


def test_failed_download_read_next_time(aws, tmp_path, database_url, monkeypatch):
    from imageprov.sources.aws import trail_locations

    ec2, _, s3 = aws
    image_id, _ = _new_ami(ec2, "flaky")
    pipeline, _ = _roles()
    record = trail.create_image(pipeline, T0 + timedelta(minutes=1), image_id,
                                ip="10.20.4.17", account=ACCOUNT)
    flaky = _put_trail(s3, T0 + timedelta(minutes=5), [record])
    _put_trail(s3, T0 + timedelta(minutes=10), trail.noise(T0, 2, account=ACCOUNT))
    loader = trail_locations.S3Trail._loader

    def failing_once(self, key):
        if key != flaky:
            return loader(self, key)
        def load():
            raise SourceError(f"s3://{BUCKET}/{key}", "reading the object failed: SlowDown")
        return load

    monkeypatch.setattr(trail_locations.S3Trail, "_loader", failing_once)
    store, first = _scan(tmp_path, database_url)
    assert (first.logs.files, first.logs.problems) == (1, 1)
    assert store.current_verdicts()[_ami_arn(image_id)].status is VerdictStatus.UNATTRIBUTED
    monkeypatch.setattr(trail_locations.S3Trail, "_loader", loader)
    store, second = _scan(tmp_path, database_url)
    assert (second.logs.files, second.logs.problems) == (1, 0)
    assert store.current_verdicts()[_ami_arn(image_id)].status is VerdictStatus.APPROVED


def test_credentials_never_logged_or_stored(aws, tmp_path):
    ec2, _, s3 = aws
    image_id, _ = _new_ami(ec2, "secretive")
    pipeline, _ = _roles()
    _put_trail(s3, T0 + timedelta(minutes=5), [
        trail.create_image(pipeline, T0 + timedelta(minutes=1), image_id, ip="10.20.4.17",
                           account=ACCOUNT),
    ])
    planted = "planted-secret-key-5d0c6f0e9a"
    database = tmp_path / "secrets.db"
    result = run_cli("--log-level", "DEBUG", "scan", "--config", str(_config(tmp_path)),
                     "--database", f"sqlite:///{database}",
                     env={"AWS_SECRET_ACCESS_KEY": planted, "AWS_SESSION_TOKEN": planted})
    assert result.returncode == 0, result.stderr
    assert planted not in result.stdout
    assert planted not in result.stderr
    for path in tmp_path.glob("secrets.db*"):
        assert planted.encode() not in path.read_bytes()


def test_database_password_hidden_in_errors(tmp_path):
    url = "postgresql+psycopg://imageprov:hunter2-planted@127.0.0.1:9/imageprov"
    result = run_cli("verdicts", "--database", url)
    assert result.returncode == 2
    assert "hunter2-planted" not in result.stderr
    assert "cannot open database" in result.stderr


def test_sqs_notifications_read_and_deleted(aws, tmp_path, database_url):
    ec2, _, s3 = aws
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="trail-files")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]})
    image_id, _ = _new_ami(ec2, "announced")
    pipeline, _ = _roles()
    _put_trail(s3, T0 + timedelta(minutes=5), [
        trail.create_image(pipeline, T0 + timedelta(minutes=1), image_id, ip="10.20.4.17",
                           account=ACCOUNT)])
    sqs.send_message(QueueUrl=queue, MessageBody='{"surprise": true}')

    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(POLICY))
    config_path = tmp_path / "sqs.yaml"
    config_path.write_text(yaml.safe_dump({
        "policy": "policy.yaml", "workers": 1,
        "aws": {"api": {"regions": ["us-east-1"], "ecr": False},
                "cloudtrail": [{"sqs_queue_url": queue, "region": "us-east-1"}]},
    }))
    config = load_config(config_path)
    policy, text = load_policy(config.policy)
    store = Store.open(database_url)
    summary = cycle.run_cycle(config, store, policy, text,
                              now=datetime.now(UTC) + timedelta(hours=2))
    assert summary.logs.files == 1
    assert summary.logs.problems == 1
    assert "surprise" not in str(store.quarantined()[0].error)
    assert "not an S3, SNS or EventBridge notification" in store.quarantined()[0].error
    assert store.current_verdicts()[_ami_arn(image_id)].status is VerdictStatus.APPROVED
    left = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert left["ApproximateNumberOfMessages"] == "0"
    assert left["ApproximateNumberOfMessagesNotVisible"] == "0"
