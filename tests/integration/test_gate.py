"""`imageprov serve` as a real process on loopback, called over HTTPS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from imageprov.model import CreationEvent, EventEffect, Principal, PrincipalKind, RecordOrigin
from imageprov.store import Store
from tests.conftest import run_cli
from tests.helpers.gate import GateServer, start_gate, stop_gate, wait_for

ACCOUNT = "111122223333"
REGISTRY = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
GOLDEN = f"arn:aws:ec2:us-east-1:{ACCOUNT}:image/ami-0a1b2c3d4e5f60001"
COPY = f"arn:aws:ec2:us-east-1:{ACCOUNT}:image/ami-0a1b2c3d4e5f60002"
ROOTED = f"arn:aws:ec2:us-east-1:{ACCOUNT}:image/ami-0a1b2c3d4e5f60003"
LEGACY = f"arn:aws:ec2:us-east-1:{ACCOUNT}:image/ami-0a1b2c3d4e5f60004"
APPROVED_DIGEST = "sha256:" + "a1" * 32
FLAGGED_DIGEST = "sha256:" + "b2" * 32
UID = "705ab4f5-6393-11e8-b7cc-42010a800002"


@pytest.fixture(scope="module")
def gate(tmp_path_factory) -> Iterator[GateServer]:
    """A gate over the scanned example, failing closed, with per-namespace modes."""
    folder = tmp_path_factory.mktemp("gate")
    server = start_gate(folder, {"admission": {
        "mode": "enforce", "namespaces": {"staging": "warn", "sandbox": "audit"}}})
    try:
        yield server
    finally:
        stop_gate(server)


# Decisions ------------------------------------------------------------------------


def test_approved_ami_allowed_by_id_and_arn(gate):
    for image in ("ami-0a1b2c3d4e5f60001", GOLDEN):
        status, body = gate.verdict(image)
        assert status == 200
        assert body["image"] == image
        assert body["ref"] == GOLDEN
        assert body["decision"] == "allow"
        assert body["status"] == "approved"
        assert body["rule"] == "golden-ami-pipeline"
        assert "matches builder 'golden-ami-pipeline'" in body["reason"]
        assert datetime.fromisoformat(body["decided_at"]).tzinfo is not None


def test_flagged_ami_denied(gate):
    status, body = gate.call("POST", "/v1/decisions", {"image": "ami-0a1b2c3d4e5f60003"})
    assert status == 200
    assert body["ref"] == ROOTED
    assert body["decision"] == "deny"
    assert body["status"] == "flagged"
    assert body["flags"][0] == "root"
    assert "root credentials" in body["reason"]


def test_unknown_ami_denied_when_failing_closed(gate):
    status, body = gate.verdict("ami-0fffffffffffffff0")
    assert status == 200
    assert body["decision"] == "deny"
    assert body["status"] == "unknown"
    assert body["ref"] is None
    assert "fail-closed" in body["reason"]


@pytest.mark.parametrize("image", [
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/images/providers/"
    "Microsoft.Compute/galleries/golden/images/base/versions/1.0.0",
    "projects/acme-images/global/images/golden-base-20261130",
])
def test_other_cloud_refs_looked_up_as_is(gate, image):
    status, body = gate.verdict(image)
    assert status == 200
    assert body["image"] == image
    assert body["status"] == "unknown"
    assert body["decision"] == "deny"
    assert f"no stored image matches {image}" in body["reason"]


def test_unattributed_ami_denied(gate):
    _, body = gate.verdict(LEGACY)
    assert body["decision"] == "deny"
    assert body["status"] == "unattributed"


def test_latest_tag_resolves_to_current_digest(gate):
    status, body = gate.verdict(f"{REGISTRY}/payments-api:latest")
    assert status == 200
    assert body["ref"] == f"{REGISTRY}/payments-api@{FLAGGED_DIGEST}"
    assert body["tag"] == f"{REGISTRY}/payments-api:latest"
    assert body["decision"] == "deny"
    assert "mallory" in body["reason"]


def test_container_by_digest_allowed(gate):
    image = f"{REGISTRY}/payments-api@{APPROVED_DIGEST}"
    _, body = gate.verdict(image)
    assert body["ref"] == image
    assert body["decision"] == "allow"
    assert body["tag"] is None


def test_invalid_reference_rejected(gate):
    status, body = gate.call("POST", "/v1/decisions", {"image": "ami-1 2"})
    assert status == 422
    assert "whitespace" in body["error"]
    status, body = gate.call("POST", "/v1/decisions", {"images": ["x"]})
    assert status == 422


# Authentication -------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "ipg_not-a-token", ""])
def test_missing_or_wrong_token_gets_401(gate, token):
    for status, body in (gate.verdict(GOLDEN, token=token),
                         gate.call("POST", "/v1/decisions", {"image": GOLDEN}, token=token),
                         gate.call("POST", "/v1/admission", {}, token=token),
                         gate.call("GET", "/openapi.json", token=token)):
        assert status == 401
        assert set(body) == {"error"}


def test_revoked_token_gets_401(gate):
    created = run_cli("token", "create", "short-lived", "--config", str(gate.config))
    token = created.stdout.strip()
    status, body = gate.verdict(GOLDEN, token=token)
    assert status == 200
    revoked = run_cli("token", "revoke", "short-lived", "--config", str(gate.config))
    assert revoked.returncode == 0, revoked.stderr
    wait_for(lambda: gate.verdict(GOLDEN, token=token)[0] == 401)
    status, body = gate.verdict(GOLDEN, token=token)
    assert body == {"error": "missing, invalid or revoked bearer token"}
    assert gate.verdict(GOLDEN)[0] == 200


def test_tokens_stored_hashed_and_never_logged(gate):
    gate.verdict(GOLDEN)
    gate.call("POST", "/v1/decisions", {"image": "ami-0a1b2c3d4e5f60003"})
    store = Store.open(gate.database)
    try:
        stored = {item.name: item.sha256 for item in store.tokens()}
    finally:
        store.close()
    assert gate.token not in stored.values()
    assert len(stored["tests"]) == 64
    assert gate.token not in gate.log.read_text()
    listed = run_cli("token", "list", "--config", str(gate.config))
    assert "tests" in listed.stdout
    assert gate.token not in listed.stdout


def test_health_needs_no_token(gate):
    status, body = gate.call("GET", "/healthz", token=None)
    assert status == 200
    assert body["status"] == "ok"
    assert set(body) == {"status", "policy_hash", "problems"}


# Admission ------------------------------------------------------------------------


def _review(kind: str, api_group: str, namespace: str, obj: dict) -> dict:
    resource = {"Pod": "pods", "Deployment": "deployments"}[kind]
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": UID,
            "kind": {"group": api_group, "version": "v1", "kind": kind},
            "resource": {"group": api_group, "version": "v1", "resource": resource},
            "requestKind": {"group": api_group, "version": "v1", "kind": kind},
            "requestResource": {"group": api_group, "version": "v1", "resource": resource},
            "name": obj["metadata"]["name"],
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:ci:deployer",
                         "uid": "4ba8d6c8-1c7c-4a4b-9b52-2b1a0ddc1b13",
                         "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def _pod(containers: list[dict], init: list[dict] | None = None) -> dict:
    spec: dict[str, Any] = {"containers": containers, "restartPolicy": "Always"}
    if init:
        spec["initContainers"] = init
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "payments-7d4b9", "namespace": "payments",
                         "labels": {"app": "payments"}},
            "spec": spec}


def _deployment(namespace: str, containers: list[dict]) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "payments", "namespace": namespace},
            "spec": {"replicas": 3,
                     "selector": {"matchLabels": {"app": "payments"}},
                     "template": {"metadata": {"labels": {"app": "payments"}},
                                  "spec": {"containers": containers}}}}


APPROVED = {"name": "api", "image": f"{REGISTRY}/payments-api@{APPROVED_DIGEST}",
            "ports": [{"containerPort": 8080}]}
LATEST = {"name": "worker", "image": f"{REGISTRY}/payments-api:latest"}
UNKNOWN = {"name": "migrate", "image": "registry.example.com/tools/migrate:1.4"}


def test_pod_with_denied_images_rejected(gate):
    review = _review("Pod", "", "payments", _pod([APPROVED, LATEST], init=[UNKNOWN]))
    status, body = gate.call("POST", "/v1/admission", review)
    assert status == 200
    assert body["apiVersion"] == "admission.k8s.io/v1"
    assert body["kind"] == "AdmissionReview"
    response = body["response"]
    assert response["uid"] == UID
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    message = response["status"]["message"]
    assert message.startswith("imageprov denied 2 image(s)")
    assert (f"containers[worker] image {REGISTRY}/payments-api:latest "
            f"({REGISTRY}/payments-api@{FLAGGED_DIGEST}): flagged") in message
    assert "initContainers[migrate] image registry.example.com/tools/migrate:1.4" in message
    assert "containers[api]" not in message


def test_deployment_of_approved_images_allowed(gate):
    review = _review("Deployment", "apps", "payments", _deployment("payments", [APPROVED]))
    _, body = gate.call("POST", "/v1/admission", review)
    assert body["response"] == {"uid": UID, "allowed": True}


def test_deployment_in_warn_namespace_allowed_with_warnings(gate):
    review = _review("Deployment", "apps", "staging",
                     _deployment("staging", [APPROVED, LATEST]))
    _, body = gate.call("POST", "/v1/admission", review)
    response = body["response"]
    assert response["uid"] == UID
    assert response["allowed"] is True
    assert len(response["warnings"]) == 1
    assert response["warnings"][0].startswith(
        f"imageprov would deny containers[worker] image {REGISTRY}/payments-api:latest")
    assert "denied-images" in response["auditAnnotations"]


def test_deployment_in_audit_namespace_allowed_silently(gate):
    review = _review("Deployment", "apps", "sandbox",
                     _deployment("sandbox", [LATEST]))
    _, body = gate.call("POST", "/v1/admission", review)
    response = body["response"]
    assert response["allowed"] is True
    assert "warnings" not in response
    assert "payments-api:latest" in response["auditAnnotations"]["denied-images"]


def test_malformed_review_gets_400(gate):
    status, body = gate.call("POST", "/v1/admission", {"kind": "AdmissionReview"})
    assert status == 400
    assert "expected apiVersion admission.k8s.io/v1" in body["error"]


def test_oversized_bodies_get_413(gate):
    status, body = gate.call("POST", "/v1/decisions", {"image": "a" * 20_000})
    assert status == 413
    assert "larger than 16384 bytes" in body["error"]
    review = _review("Pod", "", "payments", _pod([APPROVED]))
    review["request"]["object"]["metadata"]["annotations"] = {"x": "y" * 5_000_000}
    status, body = gate.call("POST", "/v1/admission", review)
    assert status == 413


# The pipeline client --------------------------------------------------------------


def _check(gate: GateServer, *args: str, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "imageprov", "check", *args, "--url", gate.url,
         "--ca-file", str(gate.certificate)],
        capture_output=True, text=True, input=stdin, timeout=60,
        env={**os.environ, "IMAGEPROV_TOKEN": gate.token})


def test_check_exits_zero_for_approved(gate):
    result = _check(gate, "ami-0a1b2c3d4e5f60001")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"allow {GOLDEN}: approved")


def test_check_exits_one_for_flagged_with_reason(gate):
    result = _check(gate, f"{REGISTRY}/payments-api:latest")
    assert result.returncode == 1
    assert "denied" in result.stderr
    assert "mallory" in result.stderr


def test_check_reads_terraform_query(gate):
    result = _check(gate, "-", "--format", "json",
                    stdin=json.dumps({"image": "ami-0a1b2c3d4e5f60001"}))
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["decision"] == "allow"
    assert record["ref"] == GOLDEN
    assert all(isinstance(value, str) for value in record.values())


def test_check_without_token_fails(gate):
    result = subprocess.run(
        [sys.executable, "-m", "imageprov", "check", GOLDEN, "--url", gate.url],
        capture_output=True, text=True, timeout=60,
        env={key: value for key, value in os.environ.items() if key != "IMAGEPROV_TOKEN"})
    assert result.returncode == 2
    assert "IMAGEPROV_TOKEN" in result.stderr


# Freshness ------------------------------------------------------------------------


def _push(database: str, digest: str, when: datetime) -> None:
    """Store an ECR PutImage event that points `latest` at `digest`."""
    principal = Principal(
        kind=PrincipalKind.ROLE_SESSION,
        id=f"arn:aws:sts::{ACCOUNT}:assumed-role/GitHubActionsECRPush/gha-run-97",
        account=ACCOUNT,
        issuer=f"arn:aws:iam::{ACCOUNT}:role/ci/GitHubActionsECRPush")
    event = CreationEvent(
        source="cloudtrail", key=f"{ACCOUNT}:5d7e0b55-retag", event_id="5d7e0b55-retag",
        time=when, action="ecr.amazonaws.com:PutImage", effect=EventEffect.PUSH,
        platform="aws", account=ACCOUNT, region="us-east-1", principal=principal,
        source_ip="10.30.4.9", user_agent="docker/24.0.7", target=digest,
        registry=REGISTRY, repository="payments-api", tag="latest",
        origin=RecordOrigin(location="test:retag", index=0, shape="records"))
    store = Store.open(database)
    try:
        store.save_events([event], {})
    finally:
        store.close()


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def open_gate_server(tmp_path_factory) -> Iterator[GateServer]:
    server = start_gate(tmp_path_factory.mktemp("open-gate"),
                        {"unknown_images": "fail-open"}, tls=False)
    try:
        yield server
    finally:
        stop_gate(server)


@pytest.fixture
def open_gate(open_gate_server) -> Iterator[GateServer]:
    """A gate over plain HTTP that fails open, for tests that change its inputs.

    The policy file is put back after each test, and the next test starts once the
    gate holds it again.
    """
    original = open_gate_server.policy.read_text()
    health = open_gate_server.call("GET", "/healthz", token=None)[1]
    yield open_gate_server
    open_gate_server.policy.write_text(original)
    wait_for(lambda: open_gate_server.call("GET", "/healthz", token=None)[1] == health)


def test_unknown_ami_allowed_when_failing_open(open_gate):
    _, body = open_gate.verdict("ami-0fffffffffffffff0")
    assert body["decision"] == "allow"
    assert body["status"] == "unknown"
    assert "fail-open" in body["reason"]


def test_policy_change_reaches_next_decision(open_gate):
    pid = open_gate.process.pid
    _, before = open_gate.verdict(GOLDEN)
    assert before["decision"] == "allow"
    # The golden pipeline now has to run from a network its calls did not come from.
    _replace(open_gate.policy, 'networks: ["10.20.0.0/16"]', 'networks: ["10.99.0.0/16"]')

    def denied():
        body = open_gate.verdict(GOLDEN)[1]
        return body if body["decision"] == "deny" else None

    after = wait_for(denied)
    assert after["status"] == "flagged"
    assert after["policy_hash"] != before["policy_hash"]
    assert "outside the builder's networks" in after["reason"]
    assert open_gate.process.pid == pid
    assert open_gate.process.poll() is None
    store = Store.open(open_gate.database)
    try:
        history = store.verdict_history(GOLDEN)
    finally:
        store.close()
    assert [verdict.status.value for verdict in history[-2:]] == ["approved", "flagged"]
    assert history[-1].policy_hash == after["policy_hash"]


def test_invalid_policy_edit_keeps_last_policy(open_gate):
    _, before = open_gate.verdict(GOLDEN)
    open_gate.policy.write_text("builders: []\n")
    wait_for(lambda: open_gate.call("GET", "/healthz", token=None)[1]["status"]
              == "degraded")
    _, after = open_gate.verdict(GOLDEN)
    assert after["decision"] == "allow"
    assert after["policy_hash"] == before["policy_hash"]


def test_expiring_exception_changes_next_answer(open_gate):
    expires = (datetime.now(UTC) + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = open_gate.policy.read_text()
    open_gate.policy.write_text(text + f"  - image: {LEGACY}\n"
                                       f"    reason: migration window, ticket SEC-200\n"
                                       f"    expires: {expires}\n")

    def excepted():
        body = open_gate.verdict(LEGACY)[1]
        return body if body["status"] == "excepted" else None

    during = wait_for(excepted)
    assert during["decision"] == "allow"
    after = wait_for(lambda: (body := open_gate.verdict(LEGACY)[1])["status"]
                      == "unattributed" and body)
    assert after["decision"] == "deny"


def test_tag_move_reaches_next_decision(open_gate):
    _, before = open_gate.verdict(f"{REGISTRY}/payments-api:latest")
    assert before["ref"].endswith(FLAGGED_DIGEST)
    _push(open_gate.database, APPROVED_DIGEST, datetime.now(UTC) + timedelta(seconds=1))

    def moved():
        body = open_gate.verdict(f"{REGISTRY}/payments-api:latest")[1]
        return body if body["ref"].endswith(APPROVED_DIGEST) else None

    after = wait_for(moved)
    assert after["decision"] == "allow"
    assert after["tag"] == f"{REGISTRY}/payments-api:latest"


def test_scan_verdict_change_reaches_cached_answer(open_gate):
    _, before = open_gate.verdict(COPY)
    assert before["decision"] == "allow"
    # A scan under the same policy finds the image made public while the gate runs,
    # so only the new verdict row can change the cached answer.
    inventory = open_gate.config.parent / "inventory" / "ec2-describe-images.json"
    document = json.loads(inventory.read_text())
    assert document["Images"][1]["ImageId"] == COPY.rsplit("/", 1)[1]
    document["Images"][1]["Public"] = True
    inventory.write_text(json.dumps(document))
    result = run_cli("scan", "--config", str(open_gate.config), "--no-show")
    assert result.returncode == 0, result.stderr
    after = wait_for(lambda: (body := open_gate.verdict(COPY)[1])["decision"]
                     == "deny" and body)
    assert after["status"] == "flagged"
    assert after["flags"] == ["public"]
    assert after["policy_hash"] == before["policy_hash"]


def test_gate_on_postgresql(tmp_path, postgres_url):
    server = start_gate(tmp_path, tls=False, database=postgres_url)
    try:
        _, approved = server.verdict("ami-0a1b2c3d4e5f60001")
        _, latest = server.verdict(f"{REGISTRY}/payments-api:latest")
        _, unknown = server.verdict("ami-0fffffffffffffff0")
    finally:
        stop_gate(server)
    assert approved["ref"] == GOLDEN
    assert approved["decision"] == "allow"
    assert latest["ref"] == f"{REGISTRY}/payments-api@{FLAGGED_DIGEST}"
    assert latest["decision"] == "deny"
    assert unknown["decision"] == "deny"
