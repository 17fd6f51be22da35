"""The gate's freshness rules, called in process over a scanned copy of the example."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from imageprov.api.gate import Answer, Gate
from imageprov.api.references import parse_reference
from imageprov.config import Serve
from imageprov.model import Image, ImageKind, Platform, Verdict, VerdictStatus
from imageprov.policy import load_policy
from imageprov.store import Store
from tests.conftest import run_cli

ROOT = Path(__file__).parents[2]
POLICY = ROOT / "policies" / "example.yaml"
GOLDEN = "arn:aws:ec2:us-east-1:111122223333:image/ami-0a1b2c3d4e5f60001"


@pytest.fixture(scope="module")
def scanned(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("freshness")
    shutil.copytree(ROOT / "examples" / "aws", folder / "example")
    config = yaml.safe_load((folder / "example" / "imageprov.yaml").read_text())
    config.update(policy=str(POLICY), database=f"sqlite:///{folder / 'scanned.db'}")
    (folder / "example" / "imageprov.yaml").write_text(yaml.safe_dump(config))
    result = run_cli("scan", "--config", str(folder / "example" / "imageprov.yaml"),
                     "--no-show")
    assert result.returncode == 0, result.stderr
    return folder / "scanned.db"


@pytest.fixture
def store(scanned, tmp_path):
    shutil.copy(scanned, tmp_path / "gate.db")
    opened = Store.open(f"sqlite:///{tmp_path / 'gate.db'}")
    yield opened
    opened.close()


def _decide(store: Store, image: str, **settings) -> tuple[Gate, Answer]:
    policy, policy_text = load_policy(POLICY)
    gate = Gate(store, Serve(**settings), POLICY, policy, policy_text)

    async def run() -> Answer:
        await asyncio.to_thread(gate.start)
        return await gate.decide(parse_reference(image))

    return gate, asyncio.run(run())


def _plant(store: Store, status: VerdictStatus, decided_at: datetime) -> None:
    """Store a verdict for GOLDEN under the current policy that its facts contradict,
    and forget the scan's evaluation time, which would confirm it."""
    policy, _ = load_policy(POLICY)
    store.save_verdicts([Verdict(image=GOLDEN, status=status, reason="planted",
                                 policy_hash=policy.hash, decided_at=decided_at)])
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE policies SET evaluated_at = NULL"))


def test_old_verdict_judged_again(store):
    _plant(store, VerdictStatus.FLAGGED, datetime.now(UTC) - timedelta(hours=2))
    _, answer = _decide(store, GOLDEN, max_verdict_age=timedelta(hours=1))
    assert answer.status == "approved"
    assert answer.allowed is True
    assert store.verdict_history(GOLDEN)[-1].status is VerdictStatus.APPROVED


def test_recent_verdict_served_as_stored(store):
    _plant(store, VerdictStatus.FLAGGED, datetime.now(UTC) - timedelta(minutes=5))
    _, answer = _decide(store, GOLDEN, max_verdict_age=timedelta(hours=1))
    assert answer.status == "flagged"
    assert answer.reason == "planted"


def test_full_evaluation_confirms_old_verdict(store):
    _plant(store, VerdictStatus.FLAGGED, datetime.now(UTC) - timedelta(hours=2))
    policy, _ = load_policy(POLICY)
    store.mark_evaluated(policy.hash, datetime.now(UTC) - timedelta(minutes=1))
    _, answer = _decide(store, GOLDEN, max_verdict_age=timedelta(hours=1))
    assert answer.status == "flagged"
    assert answer.reason == "planted"


def _young_image(store: Store) -> str:
    image = Image(ref="arn:aws:ec2:us-east-1:111122223333:image/ami-0a1b2c3d4e5f6fff0",
                  platform=Platform.AWS, kind=ImageKind.AMI, account="111122223333",
                  region="us-east-1", native_id="ami-0a1b2c3d4e5f6fff0",
                  created=datetime.now(UTC) - timedelta(minutes=5),
                  inventory_source="test")
    store.save_images([image])
    return image.ref


@pytest.mark.parametrize(("choice", "allowed"), [("fail-closed", False),
                                                 ("fail-open", True)])
def test_pending_image_follows_unknown_choice(store, choice, allowed):
    ref = _young_image(store)
    _, answer = _decide(store, "ami-0a1b2c3d4e5f6fff0", unknown_images=choice)
    assert answer.ref == ref
    assert answer.status == "pending"
    assert answer.allowed is allowed
    assert choice in answer.reason


def test_pending_answer_expires_with_window(store):
    _young_image(store)
    gate, answer = _decide(store, "ami-0a1b2c3d4e5f6fff0")
    policy, _ = load_policy(POLICY)
    created = datetime.now(UTC) - timedelta(minutes=5)
    assert answer.fresh_until <= (created + policy.delivery_window).timestamp() + 1


def test_digest_in_two_repositories_ambiguous(store):
    digest = "sha256:" + "a1" * 32
    registry = "111122223333.dkr.ecr.us-east-1.amazonaws.com"
    store.save_images([Image(ref=f"{registry}/payments-copy@{digest}",
                             platform=Platform.AWS, kind=ImageKind.CONTAINER,
                             account="111122223333", region="us-east-1",
                             native_id=digest, digest=digest, registry=registry,
                             repository="payments-copy", inventory_source="test")])
    _, answer = _decide(store, digest, unknown_images="fail-open")
    assert answer.status == "ambiguous"
    assert answer.allowed is False
    assert "payments-api" in answer.reason
    assert "payments-copy" in answer.reason
