"""Verdicts: what the policy decided about one image, and why."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class VerdictStatus(StrEnum):
    APPROVED = "approved"
    FLAGGED = "flagged"
    UNATTRIBUTED = "unattributed"
    EXCEPTED = "excepted"
    PENDING = "pending"


class Flag(StrEnum):
    ROOT = "root"
    EXTERNAL_NETWORK = "external-network"
    UNEXPECTED_ACTOR = "unexpected-actor"
    UNAPPROVED_AGENT = "unapproved-agent"
    PUBLIC = "public"
    SHARED = "shared"
    UNAPPROVED_SOURCE = "unapproved-source"
    FAMILY_TAKEOVER = "family-takeover"
    MISSING_SIGNATURE = "missing-signature"
    MISSING_PROVENANCE = "missing-provenance"
    UNAPPROVED_BUILDER = "unapproved-builder"
    UNAPPROVED_REPOSITORY = "unapproved-repository"
    UNVALIDATED_LOG = "unvalidated-log"


class Verdict(BaseModel):
    """The decision about one image under one policy version.

    `rule` names the builder that approved the image or the check that flagged it;
    `event_id` is the creation event that decided, when there is one.
    """

    model_config = ConfigDict(frozen=True)

    image: str
    status: VerdictStatus
    flags: tuple[Flag, ...] = ()
    rule: str | None = None
    event_id: str | None = None
    reason: str
    policy_hash: str
    actor: str | None = None
    source_ip: str | None = None
    decided_at: datetime

    def same_decision(self, other: Verdict) -> bool:
        """Return whether two verdicts decide the same.

        The time and the wording of the reason are left out: the reason of an
        unattributed image names the logs read so far, which grow every cycle.
        """
        ignored = {"decided_at", "reason"}
        return self.model_dump(exclude=ignored) == other.model_dump(exclude=ignored)
