"""Evidence bundles: a JSON file that proves an image's verdicts with no database.

A bundle holds, for the images it names, every verdict row of their history, the
ledger entries that record them, the raw creation events and policy texts those
entries rest on, the chain from the first of those entries to a signed head, and
the public key. Entries of other images appear as stubs (`seq` and
`content_hash`), which keep the chain checkable without showing their content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from imageprov.errors import EvidenceError, LedgerKeyError
from imageprov.ledger import entry_fields, head_fields
from imageprov.ledger.chain import (
    Problem,
    check_chain,
    check_heads,
    check_image_links,
    check_verdict,
)
from imageprov.ledger.keys import key_id, parse_public_key
from imageprov.store import Store
from imageprov.store.ledger import GENESIS, evidence_hash, sha256_hex, verdict_body

FORMAT = "imageprov-evidence/1"


def export_bundle(store: Store, images: Sequence[str], out: Path) -> dict[str, int]:
    """Write the bundle of `images` (refs) to `out`; return what it holds.

    Raises:
        EvidenceError: an image has no ledger entry, or the ledger has no signed head.
    """
    head = store.latest_head()
    if head is None:
        raise EvidenceError("the ledger has no signed head yet; set ledger_key in the "
                            "configuration and run a scan")
    wanted = set(images)
    chosen = [entry_fields(row) for row in store.ledger_entries(images=wanted)
              if row.seq <= head.seq]
    missing = sorted(wanted - {entry["image"] for entry in chosen})
    if missing:
        raise EvidenceError(f"no signed ledger entry for {', '.join(missing)}")
    first = chosen[0]["seq"]
    chain: list[dict[str, Any]] = []
    for row in store.ledger_entries(start=first):
        if row.seq > head.seq:
            break
        if row.image in wanted:
            chain.append(entry_fields(row))
        else:
            chain.append({"seq": row.seq, "content_hash": row.content_hash})

    keys: set[str] = set()
    policies: set[str] = set()
    for entry in chosen:
        content = orjson.loads(entry["content"])
        keys.update(item["key"] for item in content.get("evidence", ()))
        if content.get("policy_hash"):
            policies.add(content["policy_hash"])
    history = {ref: [{"id": verdict_id, "verdict": verdict_body(verdict)}
                     for verdict_id, verdict in store.verdict_history_rows(ref)]
               for ref in sorted(wanted)}
    events = [{"key": event.key, "event": event.model_dump(mode="json"),
               "raw": (raw or b"").decode("utf-8", errors="replace")}
              for event, raw in store.events_by_key(keys)]
    bundle = {
        "format": FORMAT,
        "exported_at": datetime.now(UTC).isoformat(),
        "images": sorted(wanted),
        "verdicts": history,
        "events": events,
        "policies": {digest: store.policy_text(digest) for digest in sorted(policies)},
        "chain": chain,
        "head": {name: value for name, value in head_fields(head).items()
                 if name != "public_key"},
        "public_key": head.public_key,
    }
    try:
        out.write_bytes(orjson.dumps(bundle, option=orjson.OPT_INDENT_2))
    except OSError as error:
        raise EvidenceError(f"cannot write {out}: {error}") from None
    return {"images": len(wanted), "entries": len(chosen), "chain": len(chain),
            "events": len(events), "policies": len(policies)}


@dataclass
class BundleReport:
    """The outcome of checking a bundle; it holds when `problems` is empty."""

    images: list[str] = field(default_factory=list)
    entries: int = 0
    head_seq: int = 0
    key_id: str = ""
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def read_bundle(path: Path) -> dict[str, Any]:
    """Read a bundle file.

    Raises:
        EvidenceError: the file cannot be read, is not JSON or not a bundle.
    """
    try:
        bundle = orjson.loads(path.read_bytes())
    except OSError as error:
        raise EvidenceError(f"cannot read {path}: {error}") from None
    except orjson.JSONDecodeError as error:
        raise EvidenceError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise EvidenceError(f"{path} is not an evidence bundle (format {FORMAT})")
    for name in ("images", "verdicts", "events", "policies", "chain", "head",
                 "public_key"):
        if name not in bundle:
            raise EvidenceError(f"{path}: the bundle has no {name!r} field")
    return bundle


def verify_bundle(bundle: dict[str, Any],
                  pinned: Ed25519PublicKey | None = None) -> BundleReport:
    """Check a bundle with nothing but its own content (and an optional pinned key).

    The checks: the head signature; the chain from the first entry to the head;
    each whole entry's content against its hash; each verdict of the history
    against its entry and each entry against the history; the raw events against
    the evidence hashes; the policy texts against their hashes. A bundle whose
    fields have the wrong shape fails with a problem, never an exception: anyone
    can write one.
    """
    report = BundleReport()
    try:
        _verify(bundle, pinned, report)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        detail = f"{type(error).__name__}: {error}"[:300]
        report.problems.append(Problem("bundle", f"malformed ({detail})"))
    return report


def _verify(bundle: dict[str, Any], pinned: Ed25519PublicKey | None,
            report: BundleReport) -> None:
    if not isinstance(bundle, dict):
        raise TypeError(f"expected a JSON object, got {type(bundle).__name__}")
    report.images = [str(image) for image in bundle["images"]]
    try:
        key = parse_public_key(bundle["public_key"], "the bundle")
    except LedgerKeyError as error:
        report.problems.append(Problem("public key", str(error)))
        return
    report.key_id = key_id(key)
    if pinned is not None and key_id(pinned) != report.key_id:
        report.problems.append(Problem(
            "public key", f"the bundle's key {report.key_id} is not the key given "
                          f"({key_id(pinned)})"))
    chain_entries = bundle["chain"]
    if not chain_entries:
        report.problems.append(Problem("chain", "the bundle holds no ledger entries"))
        return
    first = chain_entries[0]
    chain = check_chain(chain_entries, first_seq=int(first.get("seq", 1)),
                        first_previous=first.get("previous_hash") or GENESIS)
    report.problems.extend(chain.problems)
    report.problems.extend(check_image_links(chain, complete=False))
    head = bundle["head"]
    report.head_seq = head.get("seq", 0)
    report.problems.extend(check_heads([head], chain, key))
    if chain.last_seq != head.get("seq"):
        report.problems.append(Problem(
            "chain", f"ends at entry {chain.last_seq}, not at the signed entry "
                     f"{head.get('seq')}"))
    whole = [entry for entry in chain_entries if "content" in entry]
    report.entries = len(whole)
    report.problems.extend(_check_history(bundle, chain, whole))
    report.problems.extend(_check_evidence(bundle, whole))


def _check_history(bundle: dict[str, Any], chain: Any,
                   whole: list[dict[str, Any]]) -> list[Problem]:
    problems: list[Problem] = []
    listed: set[int] = set()
    images = set(bundle["images"])
    for image, history in sorted(bundle["verdicts"].items()):
        if image not in images:
            problems.append(Problem(f"verdicts of {image}", "the image is not listed"))
        for item in history:
            listed.add(item["id"])
            problem = check_verdict(item["id"], item["verdict"], chain, image)
            if problem is not None:
                problems.append(problem)
    proven = {entry.get("image") for entry in whole}
    for image in sorted(images - proven):
        problems.append(Problem(f"image {image}", "the bundle holds no ledger entry for it"))
    for entry in whole:
        if entry.get("image") not in images:
            problems.append(Problem(f"entry {entry.get('seq')}",
                                    f"is whole but its image {entry.get('image')!r} is "
                                    "not listed"))
    for verdict_id, (seq, _) in sorted(chain.verdicts.items(), key=lambda item: item[1]):
        if verdict_id not in listed:
            problems.append(Problem(
                f"entry {seq}", f"records verdict row {verdict_id}, which the bundle's "
                                "history lacks"))
    return problems


def _check_evidence(bundle: dict[str, Any], whole: list[dict[str, Any]]) -> list[Problem]:
    problems: list[Problem] = []
    raw = {item["key"]: item.get("raw", "") for item in bundle["events"]}
    policies = bundle["policies"]
    for digest, text in sorted(policies.items()):
        if text is None or hashlib.sha256(text.encode()).hexdigest() != digest:
            problems.append(Problem(f"policy {digest}", "the text does not match its hash"))
    for entry in whole:
        where = f"entry {entry['seq']} ({entry.get('image')})"
        try:
            content = orjson.loads(entry["content"])
        except orjson.JSONDecodeError:
            continue  # reported by the chain check
        evidence = content.get("evidence", [])
        if "evidence_hash" in content and evidence_hash(evidence) != content["evidence_hash"]:
            problems.append(Problem(where, "the evidence list does not match its hash"))
        for item in evidence:
            if item["key"] not in raw:
                problems.append(Problem(where, f"creation event {item['key']} is missing "
                                               "from the bundle"))
            elif sha256_hex(raw[item["key"]].encode()) != item["sha256"]:
                problems.append(Problem(where, f"the raw record of {item['key']} does not "
                                               "match the hash the entry recorded"))
        policy_hash = content.get("policy_hash")
        if policy_hash and policy_hash not in policies:
            problems.append(Problem(where, f"policy {policy_hash} is missing from the bundle"))
    return problems
