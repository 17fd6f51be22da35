"""Checks of a ledger chain, its signed heads and the verdict rows it records.

The checks take plain mappings, so the same code checks the database in place and
an evidence bundle with no database at all. An entry is a mapping with `seq` and
`content_hash`, and, when it is whole rather than a stub, `content`, `kind`,
`image` and `verdict_id`. `previous_hash` and `entry_hash` are checked when given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from imageprov.ledger.keys import head_signature_valid, key_id
from imageprov.store.ledger import GENESIS, canonical_json, entry_hash, sha256_hex

_COLUMNS = ("kind", "image", "verdict_id")


@dataclass(frozen=True)
class Problem:
    """One mismatch, named by the entry, head or verdict row where it was found."""

    where: str
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"


@dataclass
class ChainResult:
    """The findings of one walk over the chain.

    `hashes` maps a sequence number to the entry hash computed for it, and
    `verdicts` maps a verdict row id to the sequence number and canonical JSON of
    the verdict its entry records.
    """


    problems: list[Problem] = field(default_factory=list)
    hashes: dict[int, str] = field(default_factory=dict)
    verdicts: dict[int, tuple[int, str]] = field(default_factory=dict)
    last_seq: int = 0
    entries: int = 0
    # The image and `image_previous` of each whole entry, by sequence number.
    image_links: dict[int, tuple[str, int | None]] = field(default_factory=dict)


def _name(entry: Mapping[str, Any]) -> str:
    image = entry.get("image")
    return f"entry {entry.get('seq')}" + (f" ({image})" if image else "")


def check_chain(entries: Iterable[Mapping[str, Any]], first_seq: int = 1,
                first_previous: str = GENESIS) -> ChainResult:
    """Walk entries in the order given and report every link that does not hold.

    The walk expects sequence numbers `first_seq`, `first_seq + 1`, ... and a
    first previous hash of `first_previous`. After a problem it goes on from the
    entry as recorded, so one edit is reported once, at the entry it touched.
    """
    result = ChainResult(last_seq=first_seq - 1)
    previous = first_previous
    for entry in entries:
        result.entries += 1
        seq = entry.get("seq")
        where = _name(entry)
        if not isinstance(seq, int):
            result.problems.append(Problem(where, "has no integer sequence number"))
            continue
        expected = result.last_seq + 1
        if seq > expected:
            missing = (f"entry {expected}" if seq == expected + 1
                       else f"entries {expected} to {seq - 1}")
            result.problems.append(Problem(
                where, f"{missing} missing before it (deleted or never exported)"))
        elif seq < expected:
            result.problems.append(Problem(
                where, f"out of order: it follows entry {result.last_seq}"))
        content_hash = entry.get("content_hash")
        content = entry.get("content")
        if content is not None:
            computed = sha256_hex(content)
            if computed != content_hash:
                result.problems.append(Problem(
                    where, f"content does not match its content_hash (recorded "
                           f"{content_hash}, computed {computed})"))
                content_hash = computed
            _check_content(entry, content, seq, result)
        recorded_previous = entry.get("previous_hash")
        if recorded_previous is not None and recorded_previous != previous:
            result.problems.append(Problem(
                where, f"previous_hash {recorded_previous} is not the hash of the entry "
                       f"before it ({previous})"))
        computed_hash = entry_hash(seq, previous, str(content_hash))
        recorded_hash = entry.get("entry_hash")
        if recorded_hash is not None and recorded_hash != computed_hash:
            result.problems.append(Problem(
                where, f"entry_hash {recorded_hash} does not match the computed "
                       f"{computed_hash}"))
        result.hashes[seq] = computed_hash
        previous = computed_hash
        result.last_seq = max(result.last_seq, seq)
    return result


def _check_content(entry: Mapping[str, Any], content: str, seq: int,
                   result: ChainResult) -> None:
    where = _name(entry)
    try:
        fields = orjson.loads(content)
    except orjson.JSONDecodeError as error:
        result.problems.append(Problem(where, f"content is not valid JSON: {error}"))
        return
    if not isinstance(fields, dict):
        result.problems.append(Problem(where, "content is not a JSON object"))
        return
    if fields.get("seq") != seq:
        result.problems.append(Problem(
            where, f"content names sequence number {fields.get('seq')}, so the entry "
                   "was moved"))
    for column in _COLUMNS:
        if column in entry and entry[column] != fields.get(column):
            result.problems.append(Problem(
                where, f"column {column} is {entry[column]!r} but the content records "
                       f"{fields.get(column)!r}"))
    result.image_links[seq] = (str(fields.get("image")), fields.get("image_previous"))
    verdict = fields.get("verdict")
    verdict_id = fields.get("verdict_id")
    if fields.get("kind") == "verdict" and isinstance(verdict_id, int):
        result.verdicts[verdict_id] = (seq, canonical_json(verdict))


def check_heads(heads: Iterable[Mapping[str, Any]], chain: ChainResult,
                key: Ed25519PublicKey) -> list[Problem]:
    """Check each signed head against the key and the hashes the walk computed.

    A head that signs a sequence number the chain does not reach means entries
    were removed from the end.
    """
    problems: list[Problem] = []
    fingerprint = key_id(key)
    for head in heads:
        seq = head["seq"]
        where = (f"head {head['id']}" if "id" in head else "head") + f" of entry {seq}"
        if head.get("key_id") != fingerprint:
            problems.append(Problem(where, f"signed by key {head.get('key_id')}, not by "
                                           f"the key given ({fingerprint})"))
            continue
        if not head_signature_valid(key, seq, head["entry_hash"], head["signed_at"],
                                    head["signature"]):
            problems.append(Problem(where, "the signature is invalid"))
            continue
        computed = chain.hashes.get(seq)
        if computed is None:
            problems.append(Problem(
                where, f"signs entry {seq}, which the ledger does not hold (it ends at "
                       f"entry {chain.last_seq}): entries were deleted"))
        elif computed != head["entry_hash"]:
            problems.append(Problem(
                where, f"signs hash {head['entry_hash']} for entry {seq}, but the chain "
                       f"gives {computed}"))
    return problems


def check_verdict(verdict_id: int, body: Mapping[str, Any], chain: ChainResult,
                  image: str | None = None) -> Problem | None:
    """Compare one verdict row with the verdict its ledger entry records."""
    where = f"verdict row {verdict_id}" + (f" ({image})" if image else "")
    recorded = chain.verdicts.get(verdict_id)
    if recorded is None:
        return Problem(where, "has no ledger entry (added outside imageprov)")
    seq, text = recorded
    if canonical_json(body) == text:
        return None
    expected = orjson.loads(text) or {}
    changed = sorted(name for name in set(expected) | set(body)
                     if expected.get(name) != body.get(name))
    detail = ", ".join(f"{name} is {body.get(name)!r}, the ledger has "
                       f"{expected.get(name)!r}" for name in changed)
    return Problem(where, f"differs from ledger entry {seq}: {detail}")


def check_image_links(chain: ChainResult, complete: bool) -> list[Problem]:
    """Check that each whole entry names the previous whole entry of its image.

    With `complete`, as for the database, every entry is whole, so each link must
    name exactly the image's previous entry. In a bundle, an image's first entry
    must name none, so an image's older entries cannot be left out unnoticed.
    """
    problems: list[Problem] = []
    last: dict[str, int] = {}
    for seq, (image, previous) in sorted(chain.image_links.items()):
        expected = last.get(image)
        if previous != expected:
            if expected is None and not complete:
                detail = (f"follows entry {previous} of the same image, which the bundle "
                          "lacks")
            else:
                detail = (f"names entry {previous} as the image's previous entry, but "
                          f"that is entry {expected}")
            problems.append(Problem(f"entry {seq} ({image})", detail))
        last[image] = seq
    return problems
