"""The store's reads and writes for the gate, on each backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from imageprov.model import Verdict, VerdictStatus
from imageprov.store import Store


def _verdict(image: str, status: VerdictStatus, policy_hash: str = "a" * 64) -> Verdict:
    return Verdict(image=image, status=status, reason="test", policy_hash=policy_hash,
                   decided_at=datetime(2026, 12, 1, tzinfo=UTC))


def test_tokens_created_revoked_and_listed(database_url):
    store = Store.open(database_url)
    try:
        store.create_token("ci", "1" * 64)
        store.create_token("kube-apiserver", "2" * 64)
        with pytest.raises(ValueError, match="a token named 'ci' exists already"):
            store.create_token("ci", "3" * 64)
        assert store.active_tokens() == {"1" * 64: "ci", "2" * 64: "kube-apiserver"}
        assert store.revoke_token("ci") is True
        assert store.revoke_token("ci") is False
        assert store.active_tokens() == {"2" * 64: "kube-apiserver"}
        listed = {token.name: token for token in store.tokens()}
        assert listed["ci"].revoked_at is not None
        assert listed["kube-apiserver"].revoked_at is None
    finally:
        store.close()


def test_verdict_changes_name_new_rows(database_url):
    store = Store.open(database_url)
    try:
        store.save_verdicts([_verdict("image-a", VerdictStatus.APPROVED),
                             _verdict("image-b", VerdictStatus.APPROVED)])
        newest = store.last_verdict_id()
        store.save_verdicts([_verdict("image-b", VerdictStatus.FLAGGED)])
        after, changed = store.verdict_changes(newest)
        assert changed == {"image-b"}
        assert after > newest
        assert store.verdict_changes(after) == (after, set())
        current = store.current_verdicts(["image-b", "image-c"])
        assert list(current) == ["image-b"]
        assert current["image-b"].status is VerdictStatus.FLAGGED
        assert store.current_verdict("image-b") == current["image-b"]
        assert store.current_verdict("image-c") is None
    finally:
        store.close()


def test_evaluation_time_only_moves_forward(database_url):
    store = Store.open(database_url)
    try:
        store.save_policy("a" * 64, "policy.yaml", "builders: []")
        assert store.evaluated_at("a" * 64) is None
        later = datetime(2026, 12, 2, tzinfo=UTC)
        store.mark_evaluated("a" * 64, later)
        store.mark_evaluated("a" * 64, later - timedelta(hours=1))
        assert store.evaluated_at("a" * 64) == later
        assert store.evaluated_at("b" * 64) is None
    finally:
        store.close()
