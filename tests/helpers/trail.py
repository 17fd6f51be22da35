"""Builders of CloudTrail records and log files shaped like the ones AWS delivers.

The field names, nesting and value formats follow real records: EC2 responses in the
Query protocol's lowerCamel form, ECR in the JSON API's member names, identities with
the session issuer that keeps the role path.
"""

from __future__ import annotations

import gzip
import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

ACCOUNT = "111122223333"
REGION = "us-east-1"
_counter = itertools.count(1)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_id(seed: str | None = None) -> str:
    if seed is None:
        return str(uuid.UUID(int=next(_counter)))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


def role_identity(role: str, session: str, account: str = ACCOUNT, path: str = "/") -> dict:
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLEROLEID:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": "ASIAEXAMPLEKEY",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLEROLEID",
                "arn": f"arn:aws:iam::{account}:role{path}{role}",
                "accountId": account,
                "userName": role,
            },
            "webIdFederationData": {},
            "attributes": {"creationDate": "2026-11-30T08:00:00Z", "mfaAuthenticated": "false"},
        },
    }


def user_identity(name: str, account: str = ACCOUNT) -> dict:
    return {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLEUSERID",
        "arn": f"arn:aws:iam::{account}:user/{name}",
        "accountId": account,
        "accessKeyId": "AKIAEXAMPLEKEY",
        "userName": name,
    }


def root_identity(account: str = ACCOUNT) -> dict:
    return {
        "type": "Root",
        "principalId": account,
        "arn": f"arn:aws:iam::{account}:root",
        "accountId": account,
        "accessKeyId": "ASIAEXAMPLEROOT",
    }


def record(
    name: str,
    identity: dict,
    when: datetime,
    source: str = "ec2.amazonaws.com",
    ip: str = "10.20.4.17",
    agent: str = "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64 prompt/off",
    request: dict | None = None,
    response: dict | None = None,
    region: str = REGION,
    account: str = ACCOUNT,
    error: str | None = None,
    eid: str | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": stamp(when),
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": ip,
        "userAgent": agent,
        "requestParameters": request,
        "responseElements": response,
        "requestID": str(uuid.uuid4()),
        "eventID": eid or event_id(),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                       "clientProvidedHostHeader": f"ec2.{region}.amazonaws.com"},
    }
    if error:
        item["errorCode"] = error
        item["errorMessage"] = "You are not authorized to perform this operation."
        item["responseElements"] = None
    return item


def create_image(identity: dict, when: datetime, image_id: str | None, instance: str = "i-0abc",
                 name: str = "golden", **kw: Any) -> dict:
    response = {"requestId": str(uuid.uuid4()), "imageId": image_id} if image_id else None
    return record("CreateImage", identity, when,
                  request={"instanceId": instance, "name": name, "noReboot": True},
                  response=response, **kw)


def copy_image(identity: dict, when: datetime, image_id: str, source_id: str,
               source_region: str, **kw: Any) -> dict:
    return record("CopyImage", identity, when,
                  request={"sourceImageId": source_id, "sourceRegion": source_region,
                           "name": "copy"},
                  response={"requestId": str(uuid.uuid4()), "imageId": image_id}, **kw)


def share_image(identity: dict, when: datetime, image_id: str, grantee: dict, **kw: Any) -> dict:
    return record("ModifyImageAttribute", identity, when,
                  request={"imageId": image_id, "attributeType": "launchPermission",
                           "launchPermission": {"add": {"items": [grantee]}}},
                  response={"requestId": str(uuid.uuid4()), "_return": True}, **kw)


def put_image(identity: dict, when: datetime, repository: str, tag: str, digest: str,
              registry: str = ACCOUNT, **kw: Any) -> dict:
    manifest = json.dumps({"schemaVersion": 2, "mediaType":
                           "application/vnd.docker.distribution.manifest.v2+json"}, indent=3)
    return record(
        "PutImage", identity, when, source="ecr.amazonaws.com",
        agent=kw.pop("agent", "docker/24.0.7 go/go1.20.10 os/linux arch/amd64"),
        request={"repositoryName": repository, "imageTag": tag, "registryId": registry,
                 "imageManifest": manifest},
        response={"image": {"repositoryName": repository, "registryId": registry,
                            "imageManifest": manifest,
                            "imageId": {"imageDigest": digest, "imageTag": tag}}},
        **kw)


def noise(when: datetime, count: int, identity: dict | None = None,
          account: str = ACCOUNT) -> list[dict]:
    """Records of calls that name no image, as most of a real trail is."""
    identity = identity or user_identity("auditor", account)
    names = ["DescribeInstances", "DescribeImages", "GetObject", "AssumeRole",
             "DescribeSecurityGroups"]
    return [
        record(names[i % len(names)], identity, when + timedelta(seconds=i),
               request={"maxResults": 100}, response=None, account=account)
        for i in range(count)
    ]


def log_file(records: list[dict]) -> bytes:
    """Return a gzip log file exactly as CloudTrail delivers it to S3."""
    body = json.dumps({"Records": records}, separators=(",", ":")).encode()
    return gzip.compress(body, mtime=0)


def log_key(when: datetime, account: str = ACCOUNT, region: str = REGION,
            org: str | None = None, suffix: str = "A1b2C3d4E5f6G7h8") -> str:
    prefix = f"AWSLogs/{org}/{account}" if org else f"AWSLogs/{account}"
    return (f"{prefix}/CloudTrail/{region}/{when:%Y/%m/%d}/"
            f"{account}_CloudTrail_{region}_{when:%Y%m%dT%H%MZ}_{suffix}.json.gz")
