"""The verdict ledger: a hash chain of every verdict change and exception change.

Each entry's `content` is canonical JSON (sorted keys, no spaces, UTF-8) that
holds its sequence number, kind, image, the verdict or exception it records, the
evidence records the verdict rests on and the policy hash. Hashes are hex SHA-256:

- `content_hash` = H(content)
- `entry_hash` = H("<seq>\\n<previous_hash>\\n<content_hash>")

The first entry's previous hash is 64 zeros. Because an entry hash covers the
content only through its hash, a chain can be checked from stubs that carry just
`seq` and `content_hash`, which is how an evidence bundle leaves out other images.
Entries are appended in the transaction that writes the rows they record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from imageprov.model import Verdict
from imageprov.store._locks import lock_for_write
from imageprov.store.tables import EventRow, LedgerEntryRow

GENESIS = "0" * 64

VERDICT = "verdict"
EXCEPTION_GRANTED = "exception-granted"
EXCEPTION_EXPIRED = "exception-expired"

# The advisory lock that serialises appends on PostgreSQL, so two replicas never
# take the same sequence number (SQLite takes its write lock instead).
_APPEND_LOCK = 0x1A9E_0002


def canonical_json(value: Any) -> str:
    """Return the canonical JSON text of `value`: sorted keys and no whitespace."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def sha256_hex(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def entry_hash(seq: int, previous_hash: str, content_hash: str) -> str:
    return sha256_hex(f"{seq}\n{previous_hash}\n{content_hash}")


def verdict_body(verdict: Verdict) -> dict[str, Any]:
    """Return the JSON form of a verdict as the ledger records it."""
    return verdict.model_dump(mode="json")


def evidence_hash(evidence: Sequence[dict[str, Any]]) -> str:
    """Return the hash of evidence records, each `{"key", "sha256"}` of a raw event."""
    items = sorted(({"key": item["key"], "sha256": item["sha256"]} for item in evidence),
                   key=lambda item: item["key"])
    return sha256_hex(canonical_json(items))


def _lock(session: Session) -> None:
    lock_for_write(session, _APPEND_LOCK)


def _tail(session: Session) -> tuple[int, str]:
    row = session.execute(
        select(LedgerEntryRow.seq, LedgerEntryRow.entry_hash)
        .order_by(LedgerEntryRow.seq.desc()).limit(1)
    ).first()
    return (row[0], row[1]) if row else (0, GENESIS)


class Appender:
    """Appends entries to the ledger inside one transaction.

    Each entry's content names, as `image_previous`, the sequence number of the
    previous entry of the same image (None for its first), so that a bundle that
    leaves out an image's older entries is found.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        _lock(session)
        self.seq, self.previous = _tail(session)
        self.rows: list[dict[str, Any]] = []
        self.last_of_image: dict[str, int | None] = {}

    def prefetch(self, images: Sequence[str]) -> None:
        """Look up the newest entry of each image in one query per 500 images."""
        wanted = sorted(set(images) - set(self.last_of_image))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            self.last_of_image.update(dict.fromkeys(chunk))
            rows = self.session.execute(
                select(LedgerEntryRow.image, func.max(LedgerEntryRow.seq))
                .where(LedgerEntryRow.image.in_(chunk)).group_by(LedgerEntryRow.image))
            self.last_of_image.update({image: seq for image, seq in rows})

    def append(self, kind: str, image: str, fields: dict[str, Any],
               policy_hash: str | None, recorded_at: datetime,
               verdict_id: int | None = None) -> None:
        if image not in self.last_of_image:
            self.prefetch([image])
        self.seq += 1
        content = canonical_json({
            "seq": self.seq, "kind": kind, "image": image, "verdict_id": verdict_id,
            "image_previous": self.last_of_image[image],
            "policy_hash": policy_hash, "recorded_at": recorded_at.isoformat(),
            **fields,
        })
        self.last_of_image[image] = self.seq
        content_hash = sha256_hex(content)
        digest = entry_hash(self.seq, self.previous, content_hash)
        self.rows.append({
            "seq": self.seq, "kind": kind, "image": image, "verdict_id": verdict_id,
            "content": content, "content_hash": content_hash,
            "previous_hash": self.previous, "entry_hash": digest,
        })
        self.previous = digest

    def flush(self) -> int:
        if self.rows:
            self.session.execute(LedgerEntryRow.__table__.insert(), self.rows)
        count = len(self.rows)
        self.rows = []
        return count


def evidence_of(session: Session, event_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Return, per event id, the stored events with that id: key, raw hash, origin."""
    found: dict[str, list[dict[str, Any]]] = {}
    wanted = sorted(set(event_ids))
    for start in range(0, len(wanted), 500):
        rows = session.execute(
            select(EventRow.event_id, EventRow.key, EventRow.raw,
                   EventRow.origin_location)
            .where(EventRow.event_id.in_(wanted[start : start + 500]))
        )
        for event_id, key, raw, location in rows:
            found.setdefault(event_id, []).append({
                "key": key, "sha256": sha256_hex(raw or b""), "origin": location})
    for items in found.values():
        items.sort(key=lambda item: item["key"])
    return found


def active_exceptions(session: Session) -> dict[str, dict[str, Any]]:
    """Replay the exception entries and return the granted ones still active.

    The result maps `image|expires|reason` to the exception's fields.
    """
    state: dict[str, dict[str, Any]] = {}
    rows = session.scalars(
        select(LedgerEntryRow.content)
        .where(LedgerEntryRow.kind.in_([EXCEPTION_GRANTED, EXCEPTION_EXPIRED]))
        .order_by(LedgerEntryRow.seq)
    )
    for content in rows:
        entry = orjson.loads(content)
        exception = entry.get("exception", {})
        key = exception_key(exception)
        if entry["kind"] == EXCEPTION_GRANTED:
            state[key] = exception
        else:
            state.pop(key, None)
    return state


def exception_key(exception: dict[str, Any]) -> str:
    return f"{exception.get('image')}|{exception.get('expires')}|{exception.get('reason')}"
