"""The verdict ledger in place: sign its head, and check it against the store.

The chain itself is written by the store, in the transactions that write verdicts
(`imageprov.store.ledger`). This package signs the newest entry at the end of a
cycle and checks every entry, head and verdict row afterwards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from imageprov.ledger.chain import (
    ChainResult,
    Problem,
    check_chain,
    check_heads,
    check_image_links,
    check_verdict,
)
from imageprov.ledger.keys import key_id, public_pem, sign_head
from imageprov.store import Store
from imageprov.store.ledger import verdict_body
from imageprov.store.tables import LedgerEntryRow, LedgerHeadRow

logger = logging.getLogger(__name__)

__all__ = ["LedgerReport", "Problem", "sign_ledger_head", "verify_ledger"]


@dataclass
class LedgerReport:
    """The outcome of checking the ledger; it holds when `problems` is empty."""

    entries: int = 0
    heads: int = 0
    verdict_rows: int = 0
    signed_seq: int = 0
    last_seq: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def entry_fields(row: LedgerEntryRow) -> dict[str, Any]:
    return {"seq": row.seq, "kind": row.kind, "image": row.image,
            "verdict_id": row.verdict_id, "content": row.content,
            "content_hash": row.content_hash, "previous_hash": row.previous_hash,
            "entry_hash": row.entry_hash}


def head_fields(row: LedgerHeadRow) -> dict[str, Any]:
    return {"id": row.id, "seq": row.seq, "entry_hash": row.entry_hash,
            "key_id": row.key_id, "public_key": row.public_key,
            "signature": row.signature, "signed_at": row.signed_at}


def verify_ledger(store: Store, key: Ed25519PublicKey) -> LedgerReport:
    """Check every entry, every signed head and every verdict row of the store.

    Problems come in the order found: entries in sequence order, then heads, then
    verdict rows, so the first problem names the first entry that does not match.
    """
    chain = check_chain(entry_fields(row) for row in store.ledger_entries())
    heads = [head_fields(row) for row in store.ledger_heads()]
    report = LedgerReport(entries=chain.entries, heads=len(heads),
                          last_seq=chain.last_seq, problems=list(chain.problems))
    report.problems.extend(check_image_links(chain, complete=True))
    report.problems.extend(check_heads(heads, chain, key))
    report.signed_seq = max((head["seq"] for head in heads), default=0)
    report.problems.extend(_check_rows(store, chain, report))
    return report


def _check_rows(store: Store, chain: ChainResult, report: LedgerReport) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[int] = set()
    for verdict_id, verdict in store.verdict_rows():
        report.verdict_rows += 1
        seen.add(verdict_id)
        problem = check_verdict(verdict_id, verdict_body(verdict), chain, verdict.image)
        if problem is not None:
            problems.append(problem)
    for verdict_id, (seq, _) in sorted(chain.verdicts.items(), key=lambda item: item[1]):
        if verdict_id not in seen:
            problems.append(Problem(f"entry {seq}",
                                    f"records verdict row {verdict_id}, which is missing"))
    return problems


def sign_ledger_head(store: Store, key: Ed25519PrivateKey,
                     now: datetime | None = None) -> LedgerHeadRow | None:
    """Sign the newest entry when it is not signed yet; return the new head, if any.

    The entries added since the previous head are checked first, so a chain
    edited between cycles is never signed over. Returns None when the ledger is
    empty, the newest entry is signed already, or that check fails (logged).
    """
    seq, digest = store.ledger_tail()
    if seq == 0:
        return None
    public = key.public_key()
    fingerprint = key_id(public)
    latest = store.latest_head()
    if latest is not None and latest.seq == seq and latest.key_id == fingerprint:
        return None
    start, previous = 1, None
    if latest is not None and latest.seq < seq:
        start, previous = latest.seq + 1, latest.entry_hash
    entries = (entry_fields(row) for row in store.ledger_entries(start=start))
    chain = (check_chain(entries, start, previous) if previous is not None
             else check_chain(entries))
    if chain.problems or chain.hashes.get(seq) != digest:
        first = chain.problems[0] if chain.problems else Problem(
            f"entry {seq}", "the newest entry changed while it was checked")
        logger.error("ledger head not signed: %s (run `imageprov ledger verify`)", first)
        return None
    signed_at = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
    signature = sign_head(key, seq, digest, signed_at)
    store.save_head(seq, digest, fingerprint, public_pem(public), signature, signed_at)
    logger.info("ledger head signed: entry=%d hash=%s key=%s", seq, digest, fingerprint)
    return store.latest_head()
