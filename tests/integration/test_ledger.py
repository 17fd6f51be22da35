"""The verdict ledger: appended with verdicts, signed, and every edit found."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from imageprov.ledger import sign_ledger_head, verify_ledger
from imageprov.model import Flag, Verdict, VerdictStatus
from imageprov.store import Store

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
IMAGES = [f"arn:aws:ec2:us-east-1:111122223333:image/ami-0{i:016x}" for i in range(4)]


def _verdict(image: str, status: VerdictStatus, when: datetime,
             flags: tuple[Flag, ...] = ()) -> Verdict:
    return Verdict(image=image, status=status, flags=flags, rule="builder",
                   event_id=None, reason=f"{status.value} for the test",
                   policy_hash="a" * 64, actor="arn:aws:iam::111122223333:user/ci",
                   source_ip="10.0.0.1", decided_at=when)


def fill(store: Store, key: Ed25519PrivateKey) -> None:
    """Two cycles of verdicts, an exception granted and then expired, signed heads."""
    store.save_verdicts([_verdict(image, VerdictStatus.APPROVED, T0) for image in IMAGES])
    store.record_exceptions([{"image": IMAGES[3], "reason": "vendor appliance",
                              "expires": (T0 + timedelta(days=1)).isoformat()}],
                            "a" * 64, T0)
    sign_ledger_head(store, key, T0)
    later = T0 + timedelta(days=2)
    store.save_verdicts([_verdict(IMAGES[1], VerdictStatus.FLAGGED, later, (Flag.ROOT,))])
    store.record_exceptions([], "a" * 64, later)
    sign_ledger_head(store, key, later)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def filled(database_url: str, key: Ed25519PrivateKey) -> Store:
    store = Store.open(database_url)
    fill(store, key)
    yield store
    store.close()


def _execute(store: Store, statement: str, **values: object) -> None:
    with store.engine.begin() as connection:
        connection.execute(text(statement), values)


def _first(store: Store, key: Ed25519PrivateKey) -> str:
    report = verify_ledger(store, key.public_key())
    assert not report.ok, "the edit was not found"
    return str(report.problems[0])


def test_ledger_records_every_change(filled, key):
    kinds = [row.kind for row in filled.ledger_entries()]
    assert kinds == ["verdict"] * 4 + ["exception-granted", "verdict", "exception-expired"]
    expired = list(filled.ledger_entries())[-1]
    assert '"ended":"expired"' in expired.content
    assert expired.image == IMAGES[3]
    report = verify_ledger(filled, key.public_key())
    assert report.ok, report.problems
    assert report.entries == 7
    assert report.heads == 2
    assert report.signed_seq == 7
    assert report.verdict_rows == 5


def test_unchanged_verdict_adds_no_entry(filled, key):
    again = _verdict(IMAGES[0], VerdictStatus.APPROVED, T0 + timedelta(days=3))
    assert filled.save_verdicts([again]) == 0
    assert filled.ledger_tail()[0] == 7
    assert sign_ledger_head(filled, key) is None


def test_changed_entry_byte_is_named(filled, key):
    row = next(row for row in filled.ledger_entries() if row.seq == 3)
    edited = row.content.replace('"approved"', '"approvee"')
    _execute(filled, "UPDATE ledger SET content = :content WHERE seq = 3", content=edited)
    assert _first(filled, key).startswith("entry 3 (")
    assert "content does not match its content_hash" in _first(filled, key)


def test_reordered_entries_are_named(filled, key):
    _execute(filled, "UPDATE ledger SET seq = -2 WHERE seq = 2")
    _execute(filled, "UPDATE ledger SET seq = 2 WHERE seq = 3")
    _execute(filled, "UPDATE ledger SET seq = 3 WHERE seq = -2")
    first = _first(filled, key)
    assert first.startswith("entry 2 (")
    assert "content names sequence number 3" in first


def test_deleted_entry_is_named(filled, key):
    _execute(filled, "DELETE FROM ledger WHERE seq = 4")
    first = _first(filled, key)
    assert first.startswith("entry 5 (")
    assert "entry 4 missing before it" in first


def test_deleted_last_entry_found_by_head(filled, key):
    _execute(filled, "DELETE FROM ledger WHERE seq = 7")
    problems = [str(p) for p in verify_ledger(filled, key.public_key()).problems]
    assert any("signs entry 7, which the ledger does not hold" in p for p in problems)


def test_edited_verdict_row_is_named(filled, key):
    _execute(filled, "UPDATE verdicts SET status = 'approved', flags = '[]' "
                     "WHERE image = :image AND status = 'flagged'", image=IMAGES[1])
    first = _first(filled, key)
    assert first.startswith("verdict row 5 (")
    assert "status is 'approved', the ledger has 'flagged'" in first


def test_verdict_row_added_outside_is_named(filled, key):
    _execute(filled, "INSERT INTO verdicts (image, status, flags, reason, policy_hash, "
                     "decided_at) VALUES (:image, 'approved', '[]', 'forged', :hash, "
                     ":when)", image=IMAGES[2], hash="a" * 64, when=T0)
    assert "has no ledger entry" in _first(filled, key)


def test_deleted_verdict_row_is_named(filled, key):
    _execute(filled, "DELETE FROM verdicts WHERE id = 5")
    first = _first(filled, key)
    assert first == "entry 6: records verdict row 5, which is missing"


def test_other_key_fails_heads(filled):
    other = Ed25519PrivateKey.generate()
    problems = [str(p) for p in verify_ledger(filled, other.public_key()).problems]
    assert len(problems) == 2
    assert all("not by the key given" in p for p in problems)


def test_edited_head_signature_fails(filled, key):
    _execute(filled, "UPDATE ledger_heads SET signed_at = '2027-01-01T00:00:00+00:00' "
                     "WHERE id = 2")
    assert _first(filled, key) == "head 2 of entry 7: the signature is invalid"


def test_head_not_signed_over_edited_chain(filled, key):
    filled.save_verdicts([_verdict(IMAGES[2], VerdictStatus.FLAGGED, T0 + timedelta(days=3),
                                   (Flag.ROOT,))])
    _execute(filled, "UPDATE ledger SET content = content || ' ' WHERE seq = 8")
    assert sign_ledger_head(filled, key) is None
    assert filled.latest_head().seq == 7


def test_rebuild_restores_verdict_rows(filled, key):
    before = filled.current_verdicts()
    _execute(filled, "DELETE FROM verdicts")
    assert filled.rebuild_verdicts() == 5
    assert filled.current_verdicts() == before
    assert verify_ledger(filled, key.public_key()).ok
    later = _verdict(IMAGES[0], VerdictStatus.FLAGGED, T0 + timedelta(days=4), (Flag.ROOT,))
    assert filled.save_verdicts([later]) == 1
    assert verify_ledger(filled, key.public_key()).ok


FIELDS = ["content", "content_hash", "previous_hash", "entry_hash", "image", "kind"]


def _one_byte(value: str) -> str:
    middle = len(value) // 2
    swapped = "1" if value[middle] != "1" else "2"
    return value[:middle] + swapped + value[middle + 1:]


def test_one_byte_anywhere_is_named(tmp_path: Path, key):
    """Every field of every entry, changed by one character, is found at that entry."""
    original = tmp_path / "ledger.db"
    store = Store.open(f"sqlite:///{original}")
    fill(store, key)
    rows = list(store.ledger_entries())
    store.close()
    for row in rows:
        for field in FIELDS:
            copy = tmp_path / f"edit-{row.seq}-{field}.db"
            shutil.copy(original, copy)
            edited = Store.open(f"sqlite:///{copy}")
            _execute(edited, f"UPDATE ledger SET {field} = :value WHERE seq = :seq",
                     value=_one_byte(getattr(row, field)), seq=row.seq)
            first = _first(edited, key)
            edited.close()
            assert first.startswith(f"entry {row.seq}"), (field, first)
