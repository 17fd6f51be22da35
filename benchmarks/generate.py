"""Write gzip CloudTrail log files for the ingest benchmark.

Files follow the key layout of S3 delivery,
`AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_
<YYYYMMDDTHHMMZ>_<16 characters>.json.gz`, and each contains `{"Records": [...]}` on one
line, as CloudTrail writes it. Records mix services and calls the way a busy account
does: mostly reads, a share of writes, a few denied calls, and about 0.5% image events
(EC2 AMI and ECR calls that imageprov extracts). AppStream `CreateImage` calls are
mixed in too, because that name is an image event only for EC2.

Output is deterministic. Records are drawn in blocks of 100, each block from a
generator seeded with the run seed and the block number, so the same `--records` and
`--seed` give the same records whatever `--per-file` is and however many processes
write them. Each window of 10,000 records belongs to one account, region and
five-minute delivery period, and is split into files of `--per-file` records.

Usage: python benchmarks/generate.py [FOLDER] [--records N] [--per-file N]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import string
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

DEFAULT_FOLDER = Path(__file__).parent / "data"
ACCOUNTS = ("111122223333", "444455556666", "777788889999")
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2")
START = datetime(2026, 11, 1, tzinfo=UTC)
# Minutes of event time that one window of records covers.
DELIVERY_MINUTES = 5
IMAGE_EVENT_SHARE = 0.005
FAILED_SHARE = 0.02
MANIFEST_FILE = "manifest.json"
# Records are drawn in blocks, each from its own seeded generator, so a record's
# content does not depend on how records are split into files. A window is the
# records of one account and region in one delivery period, and no file crosses one.
BLOCK_RECORDS = 100
WINDOW_RECORDS = 10_000

Record = dict[str, Any]
Builder = Callable[["_Context"], Record]


class _Context:
    """The random generator, account, region and window start of one block of records."""

    def __init__(self, rng: random.Random, account: str, region: str,
                 first: datetime) -> None:
        self.rng = rng
        self.account = account
        self.region = region
        self.first = first

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hex(self, length: int) -> str:
        return f"{self.rng.getrandbits(length * 4):0{length}x}"

    def resource_id(self, prefix: str) -> str:
        return f"{prefix}-{self.hex(17)}"

    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.hex(16).encode()).hexdigest()

    def ip(self) -> str:
        rng = self.rng
        if rng.random() < 0.6:
            return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        return f"{rng.randrange(3, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.7"


_AGENTS = (
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79-99.164.amzn2023.x86_64 exe/x86_64.amzn.2023 "
    "prompt/off command/ec2.describe-instances",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.1.79 md/arch#x86_64 "
    "lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.69",
    "aws-sdk-go-v2/1.26.1 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 "
    "api/ec2#1.152.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0.0.0 Safari/537.36",
    "Terraform/1.7.5 (+https://www.terraform.io) terraform-provider-aws/5.43.0 "
    "(+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.26.0",
    "packer/1.10.2 (+https://www.packer.io) aws-sdk-go/1.51.6 (go1.21.8; linux; amd64)",
)
_ROLES = (
    ("/service-role/", "ci-image-builder", "codebuild-7f1c"),
    ("/", "platform-admin", "jane.doe@example.com"),
    ("/aws-reserved/sso.amazonaws.com/", "AWSReservedSSO_ReadOnly_3a1f9c2b", "sam.lee"),
    ("/", "ecs-task-payments-api", "9e2d41c7b0aa4f3c"),
    ("/", "karpenter-node", "i-0d4c1b2a39f8e7a65"),
)


def _identity(context: _Context) -> Record:
    rng = context.rng
    account = context.account
    pick = rng.random()
    if pick < 0.08:
        name = rng.choice(("deploy-bot", "backup-agent", "jenkins"))
        return {
            "type": "IAMUser", "principalId": "AIDA" + context.hex(16).upper(),
            "arn": f"arn:aws:iam::{account}:user/{name}", "accountId": account,
            "accessKeyId": "AKIA" + context.hex(16).upper(), "userName": name,
        }
    path, role, session = rng.choice(_ROLES)
    role_id = "AROA" + hashlib.md5(role.encode()).hexdigest()[:17].upper()
    return {
        "type": "AssumedRole",
        "principalId": f"{role_id}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": "ASIA" + context.hex(16).upper(),
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role", "principalId": role_id,
                "arn": f"arn:aws:iam::{account}:role{path}{role}",
                "accountId": account, "userName": role,
            },
            "webIdFederationData": {},
            "attributes": {
                "creationDate": _stamp(context.first - timedelta(minutes=rng.randrange(60))),
                "mfaAuthenticated": "false",
            },
        },
    }


def _service_identity(service: str) -> Record:
    return {"type": "AWSService", "invokedBy": service}


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _base(context: _Context, source: str, name: str, request: Any, response: Any,
          read_only: bool, identity: Record | None = None) -> Record:
    rng = context.rng
    when = context.first + timedelta(seconds=rng.randrange(DELIVERY_MINUTES * 60))
    record: Record = {
        "eventVersion": "1.09" if rng.random() < 0.7 else "1.08",
        "userIdentity": identity or _identity(context),
        "eventTime": _stamp(when),
        "eventSource": source,
        "eventName": name,
        "awsRegion": context.region,
        "sourceIPAddress": context.ip(),
        "userAgent": rng.choice(_AGENTS),
        "requestParameters": request,
        "responseElements": response,
        "requestID": context.uuid(),
        "eventID": context.uuid(),
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": context.account,
        "eventCategory": "Management",
        "tlsDetails": {
            "tlsVersion": rng.choice(("TLSv1.2", "TLSv1.3")),
            "cipherSuite": rng.choice(("ECDHE-RSA-AES128-GCM-SHA256",
                                       "TLS_AES_128_GCM_SHA256")),
            "clientProvidedHostHeader": f"{source.split('.')[0]}.{context.region}"
                                        ".amazonaws.com",
        },
    }
    if rng.random() < FAILED_SHARE:
        _fail(record, rng)
    return record


def _fail(record: Record, rng: random.Random) -> None:
    code, message = rng.choice((
        ("AccessDenied", "User is not authorized to perform this operation because no "
                         "identity-based policy allows the action"),
        ("Client.UnauthorizedOperation", "You are not authorized to perform this "
                                         "operation."),
        ("ThrottlingException", "Rate exceeded"),
    ))
    record["errorCode"] = code
    record["errorMessage"] = message
    record["responseElements"] = None


# Calls that name no image ------------------------------------------------------------

def _describe_instances(context: _Context) -> Record:
    ids = [context.resource_id("i") for _ in range(context.rng.randrange(1, 4))]
    request = {
        "instancesSet": {"items": [{"instanceId": one} for one in ids]},
        "filterSet": {"items": [{"name": "instance-state-name",
                                 "valueSet": {"items": [{"value": "running"}]}}]},
    }
    return _base(context, "ec2.amazonaws.com", "DescribeInstances", request, None, True)


def _describe_images(context: _Context) -> Record:
    request = {
        "executableBySet": {},
        "imagesSet": {"items": [{"imageId": context.resource_id("ami")}]},
        "ownersSet": {"items": [{"owner": "self"}]},
        "availabilityZone": f"{context.region}a",
        "includeDeprecated": False,
    }
    return _base(context, "ec2.amazonaws.com", "DescribeImages", request, None, True)


def _describe_groups(context: _Context) -> Record:
    request = {"securityGroupSet": {}, "securityGroupIdSet": {
        "items": [{"groupId": context.resource_id("sg")}]}, "filterSet": {}}
    return _base(context, "ec2.amazonaws.com", "DescribeSecurityGroups", request, None,
                 True)


def _run_instances(context: _Context) -> Record:
    instance = context.resource_id("i")
    request = {
        "instancesSet": {"items": [{"imageId": context.resource_id("ami"),
                                    "minCount": 1, "maxCount": 1}]},
        "instanceType": context.rng.choice(("m6i.large", "c7g.xlarge", "t3.medium")),
        "blockDeviceMapping": {}, "monitoring": {"enabled": False},
        "disableApiTermination": False, "disableApiStop": False,
        "clientToken": context.uuid(),
        "tagSpecificationSet": {"items": [{"resourceType": "instance", "tags": [
            {"key": "karpenter.sh/nodepool", "value": "default"}]}]},
    }
    response = {
        "requestId": context.uuid(), "reservationId": context.resource_id("r"),
        "ownerId": context.account, "groupSet": {},
        "instancesSet": {"items": [{
            "instanceId": instance, "instanceState": {"code": 0, "name": "pending"},
            "privateDnsName": f"ip-10-0-1-7.{context.region}.compute.internal",
            "amiLaunchIndex": 0, "productCodes": {}, "instanceType": "m6i.large",
            "launchTime": 1764547200000, "placement": {
                "availabilityZone": f"{context.region}b", "tenancy": "default"},
            "monitoring": {"state": "disabled"}, "subnetId": context.resource_id("subnet"),
            "vpcId": context.resource_id("vpc"), "privateIpAddress": "10.0.1.7",
        }]},
    }
    return _base(context, "ec2.amazonaws.com", "RunInstances", request, response, False)


def _get_object(context: _Context) -> Record:
    bucket = context.rng.choice(("payments-artifacts", "terraform-state-prod", "logs-raw"))
    key = f"builds/{context.hex(8)}/artifact-{context.rng.randrange(1000)}.tar.gz"
    record = _base(context, "s3.amazonaws.com", "GetObject",
                   {"bucketName": bucket, "Host": f"{bucket}.s3.amazonaws.com", "key": key},
                   None, True)
    record["eventCategory"] = "Data"
    record["managementEvent"] = False
    record["additionalEventData"] = {
        "SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256",
        "bytesTransferredIn": 0, "AuthenticationMethod": "AuthHeader",
        "x-amz-id-2": context.hex(40), "bytesTransferredOut": context.rng.randrange(10**7),
    }
    record["resources"] = [
        {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
        {"accountId": context.account, "type": "AWS::S3::Bucket",
         "ARN": f"arn:aws:s3:::{bucket}"},
    ]
    return record


def _assume_role(context: _Context) -> Record:
    path, role, session = context.rng.choice(_ROLES)
    arn = f"arn:aws:iam::{context.account}:role{path}{role}"
    response = {
        "credentials": {"accessKeyId": "ASIA" + context.hex(16).upper(),
                        "sessionToken": context.hex(96),
                        "expiration": "Nov 1, 2026, 9:00:00 AM"},
        "assumedRoleUser": {"assumedRoleId": f"AROA{context.hex(17).upper()}:{session}",
                            "arn": f"arn:aws:sts::{context.account}:assumed-role/"
                                   f"{role}/{session}"},
    }
    record = _base(context, "sts.amazonaws.com", "AssumeRole",
                   {"roleArn": arn, "roleSessionName": session, "durationSeconds": 3600},
                   response, True)
    record["resources"] = [{"accountId": context.account, "type": "AWS::IAM::Role",
                            "ARN": arn}]
    return record


def _decrypt(context: _Context) -> Record:
    key_arn = f"arn:aws:kms:{context.region}:{context.account}:key/{context.uuid()}"
    request = {"encryptionAlgorithm": "SYMMETRIC_DEFAULT", "encryptionContext": {
        "aws:s3:arn": "arn:aws:s3:::payments-artifacts"}}
    record = _base(context, "kms.amazonaws.com", "Decrypt", request, None, True,
                   identity=_service_identity("s3.amazonaws.com")
                   if context.rng.random() < 0.5 else None)
    record["resources"] = [{"accountId": context.account, "type": "AWS::KMS::Key",
                            "ARN": key_arn}]
    return record


def _get_parameter(context: _Context) -> Record:
    name = f"/payments/{context.rng.choice(('prod', 'staging'))}/db-endpoint"
    return _base(context, "ssm.amazonaws.com", "GetParameter",
                 {"name": name, "withDecryption": True}, None, True)


def _create_log_stream(context: _Context) -> Record:
    group = f"/aws/lambda/payments-{context.rng.choice(('api', 'worker', 'cron'))}"
    return _base(context, "logs.amazonaws.com", "CreateLogStream",
                 {"logGroupName": group,
                  "logStreamName": f"2026/11/01/[$LATEST]{context.hex(32)}"}, None, False)


def _ecr_pull(context: _Context) -> Record:
    name = context.rng.choice(("GetAuthorizationToken", "BatchGetImage",
                               "GetDownloadUrlForLayer"))
    request: Record = {"registryIds": [context.account]}
    if name != "GetAuthorizationToken":
        request = {"registryId": context.account, "repositoryName": "payments-api",
                   "layerDigest": context.digest()}
    return _base(context, "ecr.amazonaws.com", name, request, None, True)


def _appstream_image(context: _Context) -> Record:
    request = {"name": f"desktop-{context.hex(6)}", "imageBuilderName": "builder-1"}
    return _base(context, "appstream.amazonaws.com", "CreateImage", request,
                 {"image": {"name": request["name"], "state": "PENDING"}}, False)


# Relative weights of the calls that name no image; they add up to 1,000.
_NOISE: tuple[tuple[Builder, int], ...] = (
    (_describe_instances, 180),
    (_describe_images, 90),
    (_describe_groups, 60),
    (_run_instances, 25),
    (_get_object, 220),
    (_assume_role, 140),
    (_decrypt, 140),
    (_get_parameter, 70),
    (_create_log_stream, 40),
    (_ecr_pull, 33),
    (_appstream_image, 2),
)


# Image events -------------------------------------------------------------------------

def _create_image(context: _Context) -> Record:
    request = {"instanceId": context.resource_id("i"), "name": f"golden-{context.hex(8)}",
               "noReboot": True, "blockDeviceMapping": {}}
    response = {"requestId": context.uuid(), "imageId": context.resource_id("ami")}
    return _base(context, "ec2.amazonaws.com", "CreateImage", request, response, False)


def _register_image(context: _Context) -> Record:
    request = {"name": f"packer-{context.hex(8)}", "architecture": "x86_64",
               "rootDeviceName": "/dev/xvda", "virtualizationType": "hvm",
               "enaSupport": True, "blockDeviceMapping": {"items": [{
                   "deviceName": "/dev/xvda",
                   "ebs": {"snapshotId": context.resource_id("snap"), "volumeSize": 8,
                           "deleteOnTermination": True, "volumeType": "gp3"}}]}}
    response = {"requestId": context.uuid(), "imageId": context.resource_id("ami")}
    return _base(context, "ec2.amazonaws.com", "RegisterImage", request, response, False)


def _copy_image(context: _Context) -> Record:
    source_region = context.rng.choice([r for r in REGIONS if r != context.region])
    request = {"sourceRegion": source_region, "sourceImageId": context.resource_id("ami"),
               "name": f"copy-{context.hex(8)}", "encrypted": True}
    response = {"requestId": context.uuid(), "imageId": context.resource_id("ami")}
    return _base(context, "ec2.amazonaws.com", "CopyImage", request, response, False)


def _share_image(context: _Context) -> Record:
    grantee = context.rng.choice(ACCOUNTS)
    request = {"imageId": context.resource_id("ami"), "attributeType": "launchPermission",
               "launchPermission": {"add": {"items": [{"userId": grantee}]}}}
    response = {"requestId": context.uuid(), "_return": True}
    return _base(context, "ec2.amazonaws.com", "ModifyImageAttribute", request, response,
                 False)


def _deregister_image(context: _Context) -> Record:
    return _base(context, "ec2.amazonaws.com", "DeregisterImage",
                 {"imageId": context.resource_id("ami")},
                 {"requestId": context.uuid(), "_return": True}, False)


def _put_image(context: _Context) -> Record:
    tag = f"v1.{context.rng.randrange(300)}.{context.rng.randrange(20)}"
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": 7023, "digest": context.digest()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": context.rng.randrange(10**6, 10**8),
                    "digest": context.digest()} for _ in range(3)],
    }, indent=3)
    registry = context.account
    request = {"repositoryName": "payments-api", "imageTag": tag, "registryId": registry,
               "imageManifest": manifest}
    response = {"image": {"repositoryName": "payments-api", "registryId": registry,
                          "imageManifest": manifest,
                          "imageId": {"imageDigest": context.digest(), "imageTag": tag}}}
    return _base(context, "ecr.amazonaws.com", "PutImage", request, response, False)


def _batch_delete_image(context: _Context) -> Record:
    digest = context.digest()
    request = {"repositoryName": "payments-api", "registryId": context.account,
               "imageIds": [{"imageDigest": digest}]}
    response = {"imageIds": [{"imageDigest": digest}], "failures": []}
    return _base(context, "ecr.amazonaws.com", "BatchDeleteImage", request, response,
                 False)


_IMAGE_EVENTS: tuple[tuple[Builder, int], ...] = (
    (_create_image, 25),
    (_register_image, 10),
    (_copy_image, 15),
    (_share_image, 10),
    (_deregister_image, 10),
    (_put_image, 25),
    (_batch_delete_image, 5),
)


def _picker(table: tuple[tuple[Builder, int], ...]) -> tuple[list[Builder], list[int]]:
    builders = [builder for builder, _ in table]
    cumulative = []
    total = 0
    for _, weight in table:
        total += weight
        cumulative.append(total)
    return builders, cumulative


_NOISE_PICK = _picker(_NOISE)
_IMAGE_PICK = _picker(_IMAGE_EVENTS)


def _record(context: _Context) -> Record:
    rng = context.rng
    builders, weights = _IMAGE_PICK if rng.random() < IMAGE_EVENT_SHARE else _NOISE_PICK
    return rng.choices(builders, cum_weights=weights)[0](context)


def _window_of(window: int) -> tuple[str, str, datetime]:
    """Return the account, region and first event time of window number `window`."""
    streams = len(ACCOUNTS) * len(REGIONS)
    stream, slot = window % streams, window // streams
    account = ACCOUNTS[stream // len(REGIONS)]
    region = REGIONS[stream % len(REGIONS)]
    return account, region, START + timedelta(minutes=DELIVERY_MINUTES * slot)


def _block(seed: int, block: int) -> list[Record]:
    account, region, first = _window_of(block * BLOCK_RECORDS // WINDOW_RECORDS)
    context = _Context(random.Random(f"{seed}:{block}"), account, region, first)
    return [_record(context) for _ in range(BLOCK_RECORDS)]


def _write_file(folder: str, seed: int, start: int, end: int) -> int:
    """Write records `start` to `end` (exclusive) as one file; return its JSON size."""
    records: list[Record] = []
    for block in range(start // BLOCK_RECORDS, (end - 1) // BLOCK_RECORDS + 1):
        offset = block * BLOCK_RECORDS
        records.extend(_block(seed, block)[max(start - offset, 0) : end - offset])
    # Each file lists its records in event-time order.
    records.sort(key=lambda item: item["eventTime"])

    account, region, first = _window_of(start // WINDOW_RECORDS)
    delivered = first + timedelta(minutes=DELIVERY_MINUTES)
    suffix_source = random.Random(f"{seed}:name:{start}")
    suffix = "".join(suffix_source.choices(string.ascii_letters + string.digits, k=16))
    key = (f"AWSLogs/{account}/CloudTrail/{region}/{delivered:%Y/%m/%d}/"
           f"{account}_CloudTrail_{region}_{delivered:%Y%m%dT%H%MZ}_{suffix}.json.gz")
    path = Path(folder) / key
    path.parent.mkdir(parents=True, exist_ok=True)
    body = orjson.dumps({"Records": records})
    path.write_bytes(gzip.compress(body, compresslevel=6, mtime=0))
    return len(body)


def file_ranges(records: int, per_file: int) -> list[tuple[int, int]]:
    """Return the (start, end) record numbers of each file; files stay in one window."""
    ranges = []
    for window_start in range(0, records, WINDOW_RECORDS):
        window_end = min(window_start + WINDOW_RECORDS, records)
        for start in range(window_start, window_end, per_file):
            ranges.append((start, min(start + per_file, window_end)))
    return ranges


def generate(folder: Path, records: int, per_file: int, seed: int = 1,
             processes: int | None = None) -> dict[str, Any]:
    """Write `records` records in files of `per_file` under `folder`; return a manifest.

    The manifest, also written to `folder/manifest.json`, names the settings, so a
    benchmark can tell whether the folder matches what it needs.

    Raises:
        ValueError: `per_file` is larger than `WINDOW_RECORDS`.
    """
    if per_file > WINDOW_RECORDS:
        raise ValueError(f"records per file must be at most {WINDOW_RECORDS:,}, "
                         f"got {per_file:,}")
    folder.mkdir(parents=True, exist_ok=True)
    ranges = file_ranges(records, per_file)
    total_bytes = 0
    with ProcessPoolExecutor(max_workers=processes or os.cpu_count()) as pool:
        futures = [pool.submit(_write_file, str(folder), seed, start, end)
                   for start, end in ranges]
        for future in futures:
            total_bytes += future.result()
    manifest = {"records": records, "per_file": per_file, "files": len(ranges),
                "seed": seed, "uncompressed_bytes": total_bytes}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER,
                        help="folder to write the AWSLogs/ tree into (default: %(default)s)")
    parser.add_argument("--records", type=int, default=1_000_000,
                        help="number of records to write (default: %(default)s)")
    parser.add_argument("--per-file", type=int, default=1000,
                        help="records per log file (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    args = parser.parse_args(argv)
    if args.records < 1 or not 1 <= args.per_file <= WINDOW_RECORDS:
        parser.error(f"--records must be at least 1 and --per-file from 1 to "
                     f"{WINDOW_RECORDS:,}")
    manifest = generate(args.folder, args.records, args.per_file, args.seed)
    print(f"wrote {manifest['records']:,} records in {manifest['files']:,} files "
          f"({manifest['uncompressed_bytes'] / 1e6:,.0f} MB uncompressed) to {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
