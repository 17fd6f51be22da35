"""Verdicts that need attention as OCSF Detection Findings (class 2004, OCSF 1.1.0).

Each flagged, unattributed or pending image becomes one finding with activity
Create. Fields filled: the classification (`class_uid`, `category_uid`,
`activity_id`, `type_uid` and their names), `time`, `severity_id`, `status_id`,
`message`, `metadata` (OCSF version and product), `finding_info` (uid, title,
description, types, creation time, the rule as analytic), `cloud`, `resources`
(the image), `actor.user` and `src_endpoint.ip` when the creation event names
them. imageprov's own fields go under `unmapped`.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any

import orjson

from imageprov import __version__
from imageprov.report import Report
from imageprov.store.ledger import sha256_hex

OCSF_VERSION = "1.1.0"
CLASS_UID = 2004
CATEGORY_UID = 2
ACTIVITY_CREATE = 1
# Severity ids of OCSF: 3 Medium, 4 High. A flagged image is known bad; the others
# are unknown.
SEVERITY = {"flagged": (4, "High"), "unattributed": (3, "Medium"),
            "pending": (1, "Informational")}
STATUS_NEW = (1, "New")
RESOURCE_TYPES = {"ami": "AWS::EC2::Image", "container": "AWS::ECR::Image"}
ACCOUNT_TYPE_AWS = (10, "AWS Account")


def _millis(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def finding(row: dict[str, Any]) -> dict[str, Any]:
    """Return the Detection Finding of one report row."""
    severity_id, severity = SEVERITY[row["status"]]
    created = _millis(row["decided_at"])
    title = f"Image {row['status']}: {row['image']}"
    item: dict[str, Any] = {
        "class_uid": CLASS_UID, "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID, "category_name": "Findings",
        "activity_id": ACTIVITY_CREATE, "activity_name": "Create",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "type_name": "Detection Finding: Create",
        "time": created,
        "severity_id": severity_id, "severity": severity,
        "status_id": STATUS_NEW[0], "status": STATUS_NEW[1],
        "message": row["reason"],
        "metadata": {"version": OCSF_VERSION,
                     "product": {"name": "imageprov", "vendor_name": "imageprov",
                                 "version": __version__}},
        "finding_info": {
            "uid": sha256_hex(f"{row['image']}\n{row['decided_at']}\n{row['status']}"),
            "title": title, "desc": row["reason"],
            "types": row["flags"] or [row["status"]],
            "created_time": created,
            "analytic": {"type_id": 1, "type": "Rule", "name": row["rule"] or row["status"]},
        },
        "resources": [{"uid": row["image"],
                       "type": RESOURCE_TYPES.get(row["kind"] or "", "Image"),
                       "region": row["region"]}],
        "unmapped": {"imageprov": {"status": row["status"], "flags": row["flags"],
                                   "event_id": row["event_id"],
                                   "policy_hash": row["policy_hash"]}},
    }
    if row["platform"] == "aws":
        item["cloud"] = {"provider": "AWS", "region": row["region"],
                         "account": {"uid": row["account"],
                                     "type_id": ACCOUNT_TYPE_AWS[0],
                                     "type": ACCOUNT_TYPE_AWS[1]}}
    if row["actor"]:
        item["actor"] = {"user": {"uid": row["actor"]}}
    if _is_address(row["source_ip"]):
        # CloudTrail writes a service name or "AWS Internal" where no address is known.
        item["src_endpoint"] = {"ip": row["source_ip"]}
    return item


def _is_address(text: str | None) -> bool:
    try:
        ipaddress.ip_address(text or "")
    except ValueError:
        return False
    return True


def to_ocsf(report: Report) -> bytes:
    """Return a JSON array of findings for the rows that need attention."""
    findings = [finding(row) for row in report.rows if row["status"] in SEVERITY]
    return orjson.dumps(findings, option=orjson.OPT_INDENT_2) + b"\n"
