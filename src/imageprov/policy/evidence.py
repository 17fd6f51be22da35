"""Judge the signatures and provenance of a container image against registry rules.

The evidence is checked beside the push, never in place of it. A digest signed
with an approved key but pushed by an account no builder approves stays flagged,
because a stolen push credential and a signing key kept elsewhere are two
separate controls.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field

from imageprov.model import CreationEvent, Flag, Image
from imageprov.policy.signatures import Finding, PublicKey, check, source_matches
from imageprov.policy.schema import Policy, RegistryRule


@dataclass
class EvidenceResult:
    """The flags, each with its rule and text, and the notes from one image's evidence."""

    flags: list[tuple[Flag, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def matching_rules(policy: Policy, image: Image) -> list[RegistryRule]:
    name = f"{image.registry}/{image.repository}"
    return [rule for rule in policy.registries
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in rule.repositories)]


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def assess(policy: Policy, keys: dict[str, PublicKey], image: Image,
           history: Sequence[CreationEvent]) -> EvidenceResult:
    """Check every signature and attestation of an image and the rules it falls under."""
    findings = [found for event in history if (found := check(event, keys)) is not None]
    result = EvidenceResult()
    signers = sorted({f.key for f in findings if f.kind == "signature" and f.valid
                      and f.key})
    if signers:
        result.notes.append(f"signed by {', '.join(signers)}")
    for finding in findings:
        if not finding.valid:
            result.notes.append(f"{finding.kind} {_short(finding.layer)} rejected: "
                                f"{finding.problem}")
    for rule in matching_rules(policy, image):
        _signature_rule(rule, signers, result)
        if rule.provenance is not None:
            _provenance_rule(rule, findings, result)
    return result


def _signature_rule(rule: RegistryRule, signers: list[str], result: EvidenceResult) -> None:
    if rule.signed_by and not set(signers) & set(rule.signed_by):
        result.flags.append((Flag.MISSING_SIGNATURE, f"registry:{rule.name}.signed_by",
                             f"no valid signature by {', '.join(rule.signed_by)}, which "
                             f"registry rule {rule.name!r} requires"))


def _provenance_rule(rule: RegistryRule, findings: list[Finding],
                     result: EvidenceResult) -> None:
    required = rule.provenance
    assert required is not None
    signed_by = set(required.signed_by)
    provenances = [f.provenance for f in findings
                   if f.kind == "attestation" and f.valid and f.provenance is not None
                   and (not signed_by or f.key in signed_by)]
    where = f"registry:{rule.name}.provenance"
    if not provenances:
        keys = ", ".join(sorted(signed_by)) or "a listed key"
        result.flags.append((Flag.MISSING_PROVENANCE, where,
                             f"no SLSA provenance signed by {keys}, which registry rule "
                             f"{rule.name!r} requires"))
        return
    for provenance in provenances:
        result.notes.append(provenance.describe())
    if required.builders:
        approved = [p for p in provenances if p.builder_id and any(
            fnmatch.fnmatchcase(p.builder_id, pattern) for pattern in required.builders)]
        if not approved:
            named = ", ".join(sorted({p.builder_id or "(none)" for p in provenances}))
            result.flags.append((Flag.UNAPPROVED_BUILDER, f"{where}.builders",
                                 f"provenance builder {named} is not an approved builder "
                                 f"(approved: {', '.join(required.builders)})"))
    if required.source_repositories:
        for provenance in provenances:
            source = provenance.source_repository
            if source is None or not source_matches(source,
                                                    required.source_repositories):
                result.flags.append((
                    Flag.UNAPPROVED_REPOSITORY, f"{where}.source_repositories",
                    f"provenance names source repository {source or '(none)'}, outside "
                    f"the approved {', '.join(required.source_repositories)}"))
