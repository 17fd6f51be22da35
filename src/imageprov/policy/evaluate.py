"""Judge each image against the policy, from its creation event and history."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from itertools import groupby

from imageprov.correlate import Attribution, Correlator
from imageprov.model import (
    DISPLACED_TAG,
    HEADS_FAMILY_TAG,
    CreationEvent,
    EventEffect,
    Flag,
    Image,
    ImageKind,
    LogValidation,
    Platform,
    PrincipalKind,
    Verdict,
    VerdictStatus,
    ami_arn,
)
from imageprov.policy.evidence import assess
from imageprov.policy.network import AddressClass, Caller, classify, service_name
from imageprov.policy.schema import Builder, ImageException, Policy
from imageprov.policy.signatures import load_public_key

Spans = dict[tuple[str, str], list[tuple[datetime, datetime]]]

_ORDER = [Flag.ROOT, Flag.UNEXPECTED_ACTOR, Flag.EXTERNAL_NETWORK, Flag.UNAPPROVED_AGENT,
          Flag.UNAPPROVED_SOURCE, Flag.FAMILY_TAKEOVER, Flag.MISSING_SIGNATURE,
          Flag.MISSING_PROVENANCE, Flag.UNAPPROVED_BUILDER, Flag.UNAPPROVED_REPOSITORY,
          Flag.PUBLIC, Flag.SHARED, Flag.UNVALIDATED_LOG]
# Grantees that make an image usable by everyone: EC2's launch-permission group
# `all`, and the IAM members allUsers and allAuthenticatedUsers on GCP.
_PUBLIC_GRANTEES = frozenset({"all", "allUsers", "allAuthenticatedUsers"})


def _glob(value: str | None, patterns: Sequence[str]) -> bool:
    return value is not None and bool(patterns) and (
        _matcher(tuple(patterns)).match(value) is not None)


@lru_cache(maxsize=1024)
def _matcher(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """Compile shell-style patterns into one expression, as fnmatchcase reads them."""
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _BuilderMatch:
    builder: Builder
    failures: list[tuple[str, str]] = field(default_factory=list)


def _match_builder(
    builder: Builder, event: CreationEvent, caller: Caller, service: str | None
) -> _BuilderMatch | None:
    """Return None when the builder does not name this caller, else what failed.

    Every identity criterion the builder lists must be met: its principals, its
    session-issuer roles and its services.
    """
    principal = event.principal
    if builder.platforms and event.platform not in builder.platforms:
        return None
    if builder.principals and not any(_glob(name, builder.principals)
                                      for name in (principal.id, *principal.aliases)):
        return None
    if builder.roles and not _glob(principal.issuer, builder.roles):
        return None
    # A call an AWS service made is approved only where the builder names that
    # service, and a builder that names services approves only calls they made.
    if service is None:
        if builder.services:
            return None
    elif not _glob(service, builder.services):
        return None

    match = _BuilderMatch(builder)
    if builder.accounts:
        account = principal.account or event.account
        if account not in builder.accounts:
            match.failures.append(("accounts", f"account {account} is not listed"))
    if event.effect not in builder.actions:
        match.failures.append(("actions", f"action {event.effect.value} is not allowed"))
    if builder.networks and not caller.within(builder.networks):
        if caller.kind is AddressClass.HIDDEN:
            detail = "the address is hidden (AWS Internal), so no network rule can hold"
        else:
            detail = f"address {caller.text} is outside the builder's networks"
        match.failures.append(("networks", detail))
    if builder.user_agents and not _glob(event.user_agent, builder.user_agents):
        match.failures.append(("user_agents", f"user agent {event.user_agent!r} is not listed"))
    return match


def _near_miss(builder: Builder, event: CreationEvent, service: str | None) -> str | None:
    """Return which identity criteria of `builder` the caller fails, when it meets at
    least one other, so that the reason shows why a builder that names it did not
    match."""
    principal = event.principal
    if builder.platforms and event.platform not in builder.platforms:
        return None
    met: list[str] = []
    failed: list[str] = []
    if builder.principals:
        names = (principal.id, *principal.aliases)
        (met if any(_glob(name, builder.principals) for name in names)
         else failed).append("principals")
    if builder.roles:
        (met if _glob(principal.issuer, builder.roles) else failed).append("roles")
    if builder.services or service is not None:
        # A call made through a service needs a builder that names it.
        (met if service is not None and _glob(service, builder.services)
         else failed).append("services")
    if not met or not failed:
        return None
    return (f"builder {builder.name!r} matches its {', '.join(met)} but not its "
            f"{', '.join(failed)}")


@dataclass
class Evaluation:
    """The verdict of every image, with the attribution it was drawn from."""

    verdicts: dict[str, Verdict]
    attributions: dict[str, Attribution]


class _Judge:
    def __init__(self, policy: Policy, spans: Spans, now: datetime) -> None:
        self.policy = policy
        self.spans = spans
        self.now = now
        self.keys = {key.name: load_public_key(key.public_key) for key in policy.keys}

    def verdict(self, attribution: Attribution) -> Verdict:
        return _note_family_head(attribution.image, self._verdict(attribution))

    def _verdict(self, attribution: Attribution) -> Verdict:
        image = attribution.image
        exposure = self._exposure(image, attribution)
        exception = self._exception(image)
        if exception is not None:
            excepted = (f"excepted until {_stamp(exception.expires)}: "
                        f"{exception.reason}")
            if exposure:
                # An exception accepts who built the image, not who may launch it.
                return self._make(image, VerdictStatus.FLAGGED,
                                  tuple(flag for flag, _ in exposure), "exception-exposed",
                                  attribution.creation, "; ".join(
                                      [excepted, *(text for _, text in exposure)]))
            return self._make(image, VerdictStatus.EXCEPTED, (), "exception",
                              attribution.creation, excepted)
        event = attribution.creation
        if event is None:
            verdict = self._unattributed(image, exposure, attribution.history)
        else:
            verdict = self._judge_event(image, event, exposure)
            if verdict.status is VerdictStatus.APPROVED:
                verdict = self._judge_tag_moves(image, attribution, verdict)
        if image.kind is ImageKind.CONTAINER:
            verdict = self._judge_origin(image, attribution, verdict)
            return self._judge_evidence(image, attribution, verdict)
        return verdict

    def _judge_origin(self, image: Image, attribution: Attribution,
                      verdict: Verdict) -> Verdict:
        """Flag a digest that was pushed elsewhere first by an unapproved principal.

        Pushing the same digest again, to another registry or repository, copies the
        content and not its origin: the earliest push anywhere is judged as well.
        """
        own = attribution.creation
        earlier = [event for event in attribution.elsewhere
                   if event.succeeded and event.effect is EventEffect.PUSH
                   and (own is None or (event.time, event.key) < (own.time, own.key))]
        if not earlier or verdict.status in (VerdictStatus.PENDING,
                                             VerdictStatus.UNATTRIBUTED):
            return verdict
        origin = earlier[0]
        judged = self._judge_event(image, origin, [])
        if judged.status is not VerdictStatus.FLAGGED:
            return verdict
        flags = tuple(f for f in _ORDER if f in (*verdict.flags, Flag.UNAPPROVED_SOURCE))
        return verdict.model_copy(update={
            "status": VerdictStatus.FLAGGED, "flags": flags,
            "rule": verdict.rule if verdict.status is VerdictStatus.FLAGGED
            else "digest-origin",
            "reason": f"{verdict.reason}; the digest was pushed first to "
                      f"{origin.registry}/{origin.repository} at "
                      f"{_stamp(origin.time)}: {judged.reason}"})

    def _judge_evidence(self, image: Image, attribution: Attribution,
                        verdict: Verdict) -> Verdict:
        """Add what the signatures and provenance show, and flag missing or wrong ones.

        A pending image keeps its status, since signatures are pushed after images.
        """
        result = assess(self.policy, self.keys, image, attribution.history)
        notes = "; ".join(result.notes)
        if not result.flags or verdict.status is VerdictStatus.PENDING:
            if not notes:
                return verdict
            return verdict.model_copy(update={"reason": f"{verdict.reason}; {notes}"})
        flags = tuple(f for f in _ORDER if f in verdict.flags
                      or any(f is found for found, _, _ in result.flags))
        rule = (verdict.rule if verdict.status is VerdictStatus.FLAGGED
                else result.flags[0][1])
        texts = "; ".join(dict.fromkeys(text for _, _, text in result.flags))
        return verdict.model_copy(update={
            "status": VerdictStatus.FLAGGED, "flags": flags, "rule": rule,
            "reason": f"{verdict.reason}; {texts}" + (f"; {notes}" if notes else "")})

    def _judge_tag_moves(self, image: Image, attribution: Attribution,
                         verdict: Verdict) -> Verdict:
        """Flag an approved digest that a tag was moved back to by an unapproved push.

        Pointing `latest` at an older digest needs no new image, so the push that
        moved each current tag here is judged as well as the first push.
        """
        for tag, pushes in sorted(attribution.tag_pushes.items()):
            moves = [p for p in pushes if p.succeeded]
            last = moves[-1] if moves else None
            if last is None or last.target != image.digest:
                continue
            if attribution.creation is not None and last.key == attribution.creation.key:
                continue
            moved = self._judge_event(image, last, [])
            if moved.status is VerdictStatus.FLAGGED:
                return moved.model_copy(update={
                    "reason": f"tag {tag} was moved here: {moved.reason}"})
        return verdict

    def _exception(self, image: Image) -> ImageException | None:
        for exception in self.policy.exceptions:
            names = {image.ref, image.native_id, image.digest}
            if exception.image in names and exception.expires > self.now:
                return exception
        return None

    def _exposure(self, image: Image, attribution: Attribution) -> list[tuple[Flag, str]]:
        """Replay launch-permission changes and flag a public or foreign share."""
        grantees: set[str] = set()
        # Changes with the same time have no known order (CloudTrail times have
        # whole seconds). Their removals are applied before their grants, so that a
        # grant that may still hold is flagged.
        for _, changes in groupby(attribution.shares, key=lambda event: event.time):
            batch = list(changes)
            for event in batch:
                # An IAM policy set whole, or a reset of launch permissions (`*`),
                # removes every earlier grant.
                if "*" in event.unshared_from:
                    grantees.clear()
                grantees.difference_update(event.unshared_from)
            for event in batch:
                grantees.update(event.shared_with)
        found: list[tuple[Flag, str]] = []
        public = sorted(grantees & _PUBLIC_GRANTEES)
        if image.public or public:
            if public and image.platform is not Platform.AWS:
                text = f"the image's IAM policy grants it to {', '.join(public)}"
            elif image.platform is Platform.GCP:
                text = ("the image's IAM policy, as the inventory read it, grants it to "
                        "allUsers or allAuthenticatedUsers")
            else:
                text = "the image can be launched by every AWS account"
            found.append((Flag.PUBLIC, text))
        allowed = set(self.policy.share_targets) | {image.account}
        foreign = sorted(g for g in grantees if g not in _PUBLIC_GRANTEES
                         and g not in allowed)
        if foreign:
            found.append((Flag.SHARED, f"shared with {', '.join(foreign)}, "
                                       "which share_targets does not list"))
        return found

    def _unattributed(self, image: Image, exposure: list[tuple[Flag, str]],
                      history: tuple[CreationEvent, ...] = ()) -> Verdict:
        flags = tuple(flag for flag, _ in exposure)
        created = image.created
        if created is not None and self.now - created < self.policy.delivery_window:
            return self._make(image, VerdictStatus.PENDING, flags, "delivery-window", None,
                              f"created {_stamp(created)}, inside the "
                              f"{self.policy.delivery_window} delivery window; "
                              "its creation event may not have arrived yet")
        reason = self._coverage_reason(image)
        # A failed or unfinished creating call that names the image shows where to
        # look, though it attributes nothing.
        tries = [f"{event.action} by {event.principal.id} ({event.error_code})"
                 for event in history if event.effect.creates and not event.succeeded]
        if tries:
            reason += f"; calls that did not complete name it: {', '.join(tries[:3])}"
        extra = "; ".join(text for _, text in exposure)
        return self._make(image, VerdictStatus.UNATTRIBUTED, flags, "no-creation-event",
                          None, reason + (f"; {extra}" if extra else ""))

    def _coverage_reason(self, image: Image) -> str:
        if image.platform is Platform.OCI:
            # Registry notifications cover no span of time: a registry keeps
            # undelivered ones in memory and drops them when it restarts.
            return ("no push event found: no notification of this push was received, "
                    "and the registry API does not say who pushed")
        scope = f"{image.account}/{image.region}"
        spans = self.spans.get((image.account, image.region), [])
        if not spans and image.platform is Platform.GCP and image.kind is ImageKind.CONTAINER:
            return (f"no creation event found: no Artifact Registry Data Access log has "
                    f"been read for {scope}, and Docker-PutManifest entries are written "
                    "only where DATA_WRITE audit logs are enabled for "
                    "artifactregistry.googleapis.com")
        if not spans:
            return f"no creation event found: no audit logs have been read for {scope}"
        if len(spans) <= 3:
            read = ", ".join(f"{_stamp(a)} to {_stamp(b)}" for a, b in spans)
        else:
            read = (f"{_stamp(spans[0][0])} to {_stamp(spans[-1][1])} "
                    f"with {len(spans) - 1} gaps")
        base = f"no creation event found in the audit logs read for {scope} ({read})"
        created = image.created
        if created is None:
            return base
        if created < spans[0][0]:
            return (f"{base}; the image was created {_stamp(created)}, "
                    "before the logs read begin")
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            if end < created < start:
                return (f"{base}; the image was created {_stamp(created)}, inside a gap "
                        f"in the logs read from {_stamp(end)} to {_stamp(start)}")
        if created > spans[-1][1]:
            return (f"{base}; the image was created {_stamp(created)}, "
                    "after the newest log read")
        return base

    def _judge_event(
        self, image: Image, event: CreationEvent, exposure: list[tuple[Flag, str]]
    ) -> Verdict:
        caller = classify(event.source_ip, self.policy.internal_networks)
        service = service_name(caller, event.principal.invoked_by)
        matches = [
            match for builder in self.policy.builders
            if (match := _match_builder(builder, event, caller, service)) is not None
        ]
        # Of the approving builders, one whose networks contain a public caller
        # decides, so the order of builders in the policy changes no flag.
        approvals = [match for match in matches if not match.failures]
        approving = next((match for match in approvals if caller.kind is AddressClass.PUBLIC
                          and caller.within(match.builder.networks)),
                         approvals[0] if approvals else None)
        flags: list[tuple[Flag, str, str]] = []

        if event.principal.kind is PrincipalKind.ROOT:
            # Root credentials stay root when a service uses them on the caller's behalf.
            flags.append((Flag.ROOT, "root", "made with the account's root credentials"))
        approved_networks = approving.builder.networks if approving else []
        if caller.kind is AddressClass.PUBLIC and not caller.within(approved_networks):
            flags.append((Flag.EXTERNAL_NETWORK, "internal-networks",
                          f"called from public address {caller.text}"))
        if approving is None:
            flags.extend(self._builder_flags(event, matches,
                                             caller.kind is AddressClass.PUBLIC, service))
        for flag, text in exposure:
            flags.append((flag, "share_targets" if flag is Flag.SHARED else "public", text))
        unvalidated = self._validation_flag(event)
        if unvalidated is not None:
            if (not flags and approving is not None
                    and event.log_validation is LogValidation.UNVALIDATED
                    and self.now - event.time < self.policy.digest_window):
                return self._make(image, VerdictStatus.PENDING, (), "digest-window", event,
                                  f"{event.action} by {event.principal.id} matches builder "
                                  f"{approving.builder.name!r}; waiting for the digest of "
                                  f"{event.origin.location}")
            flags.append(unvalidated)

        if not flags and approving is not None:
            return self._make(image, VerdictStatus.APPROVED, (), approving.builder.name,
                              event, f"{event.action} by {event.principal.id} matches "
                              f"builder {approving.builder.name!r}")
        flags.sort(key=lambda item: _ORDER.index(item[0]))
        unique = tuple(dict.fromkeys(flag for flag, _, _ in flags))
        reason = f"{event.action} by {event.principal.id}: " + "; ".join(
            dict.fromkeys(text for _, _, text in flags)
        )
        return self._make(image, VerdictStatus.FLAGGED, unique, flags[0][1], event, reason)

    def _validation_flag(self, event: CreationEvent) -> tuple[Flag, str, str] | None:
        """Flag an event whose log file failed its digest check, or, when the policy
        requires validated logs, one whose file no valid digest lists."""
        detail = f" ({event.validation_detail})" if event.validation_detail else ""
        if event.log_validation is LogValidation.FAILED:
            return (Flag.UNVALIDATED_LOG, "log-validation",
                    f"log file {event.origin.location} failed its digest check{detail}")
        # Only CloudTrail has digest files; other platforms' logs cannot be validated.
        if (event.log_validation is LogValidation.UNVALIDATED
                and self.policy.require_validated_logs and event.platform == "aws"):
            return (Flag.UNVALIDATED_LOG, "require_validated_logs",
                    f"log file {event.origin.location} is not validated by a "
                    f"CloudTrail digest{detail}")
        return None

    def _builder_flags(
        self, event: CreationEvent, matches: list[_BuilderMatch], caller_public: bool,
        service: str | None,
    ) -> list[tuple[Flag, str, str]]:
        if not matches:
            detail = f"{event.principal.id} is not an approved builder"
            near = [miss for builder in self.policy.builders
                    if (miss := _near_miss(builder, event, service)) is not None]
            if near:
                detail += "; " + "; ".join(near[:3])
            return [(Flag.UNEXPECTED_ACTOR, "builders", detail)]
        found = []
        for match in matches:
            rule = f"builder:{match.builder.name}"
            for field_name, detail in match.failures:
                if field_name == "user_agents":
                    found.append((Flag.UNAPPROVED_AGENT, rule, detail))
                elif field_name == "networks" and caller_public:
                    found.append((Flag.EXTERNAL_NETWORK, rule, detail))
                else:
                    found.append((Flag.UNEXPECTED_ACTOR, f"{rule}.{field_name}",
                                  f"builder {match.builder.name!r}: {detail}"))
        return found

    def _make(self, image: Image, status: VerdictStatus, flags: tuple[Flag, ...],
              rule: str | None, event: CreationEvent | None, reason: str) -> Verdict:
        return Verdict(
            image=image.ref, status=status, flags=flags, rule=rule,
            event_id=event.event_id if event else None, reason=reason,
            policy_hash=self.policy.hash,
            actor=event.principal.id if event else None,
            source_ip=event.source_ip if event else None, decided_at=self.now,
        )


def _note_family_head(image: Image, verdict: Verdict) -> Verdict:
    """Name the watched families a GCP image heads in a verdict that is not approved.

    New VMs that name such a family boot this image. A head flagged for who made it
    or how (any flag beside `public` and `shared`) is a family takeover, so it also
    gets `family-takeover`. Other verdicts only name the family and what it displaced.
    """
    families = image.tags.get(HEADS_FAMILY_TAG) if image.platform is Platform.GCP else None
    if not families or verdict.status in (VerdictStatus.APPROVED, VerdictStatus.EXCEPTED):
        return verdict
    names = ", ".join(families.split(","))
    displaced = image.tags.get(DISPLACED_TAG)
    text = (f"it is the newest image of watched family {names}, so new VMs of the family "
            "boot it; ")
    if displaced:
        text += f"it displaced {displaced}"
    else:
        text += "no earlier image of the family is in the inventory"
    update: dict[str, object] = {"reason": f"{verdict.reason}; {text}"}
    if verdict.status is VerdictStatus.FLAGGED and set(verdict.flags) - {Flag.PUBLIC,
                                                                         Flag.SHARED}:
        update["flags"] = tuple(flag for flag in _ORDER
                                if flag in (*verdict.flags, Flag.FAMILY_TAKEOVER))
    return verdict.model_copy(update=update)


def _source_verdicts(
    images: Sequence[Image], verdicts: dict[str, Verdict]
) -> dict[tuple[str, str], Verdict]:
    by_id: dict[tuple[str, str], Verdict] = {}
    for image in images:
        if image.kind is not ImageKind.CONTAINER and image.ref in verdicts:
            by_id[(image.region, image.native_id)] = verdicts[image.ref]
    return by_id


def _origin_verdict(image: Image, event: CreationEvent, correlator: Correlator,
                    judge: _Judge, sources: dict[tuple[str, str], Verdict]
                    ) -> Verdict | None:
    """Return the verdict of a copy's source: from the inventory, or else from the
    source's own creation event when the logs hold it."""
    region = event.source_region or image.region
    origin = sources.get((region, event.source_image or ""))
    if origin is not None:
        return origin
    source = Image(ref=ami_arn(region, image.account, event.source_image or ""),
                   platform=image.platform, kind=image.kind, account=image.account,
                   region=region, native_id=event.source_image or "")
    attribution = correlator.attribute(source)
    if attribution.creation is None:
        return None
    return judge.verdict(attribution)


# Flags about who may launch an image, not about what it contains.
_EXPOSURE_FLAGS = frozenset({Flag.PUBLIC, Flag.SHARED})


def _taints_copies(origin: Verdict) -> bool:
    """Return whether a source image's verdict puts the content of its copies in doubt.

    A public or foreign launch permission changes who may launch the source, not its
    content, so a source flagged for that alone taints no copy.
    """
    if origin.status in (VerdictStatus.APPROVED, VerdictStatus.EXCEPTED):
        return False
    if origin.status is VerdictStatus.FLAGGED:
        return not set(origin.flags) <= _EXPOSURE_FLAGS
    return True


def _judge_copies(
    images: Sequence[Image], evaluation: Evaluation, correlator: Correlator,
    judge: _Judge,
) -> None:
    """Flag a copy whose source image is known here and not approved.

    A copy is attributed to whoever copied it, but a backdoor survives the copy, so
    the origin is judged as well. Chains of copies settle within their length.
    """
    for _ in range(len(images)):
        sources = _source_verdicts(images, evaluation.verdicts)
        changed = False
        for image in images:
            attribution = evaluation.attributions[image.ref]
            event = attribution.creation
            if event is None or event.effect is not EventEffect.COPY or not event.source_image:
                continue
            origin = _origin_verdict(image, event, correlator, judge, sources)
            verdict = evaluation.verdicts[image.ref]
            if origin is None or not _taints_copies(origin):
                continue
            if origin.status is VerdictStatus.PENDING:
                # The source's creation event may not have arrived yet, so an
                # approved copy waits for it.
                if verdict.status is VerdictStatus.APPROVED:
                    evaluation.verdicts[image.ref] = verdict.model_copy(update={
                        "status": VerdictStatus.PENDING, "rule": "copy-source",
                        "reason": f"{verdict.reason}; copied from {event.source_image}, "
                                  "which is pending"})
                    changed = True
                continue
            if Flag.UNAPPROVED_SOURCE in verdict.flags or verdict.status is VerdictStatus.EXCEPTED:
                continue
            flags = tuple(f for f in _ORDER if f in (*verdict.flags, Flag.UNAPPROVED_SOURCE))
            evaluation.verdicts[image.ref] = verdict.model_copy(update={
                "status": VerdictStatus.FLAGGED,
                "flags": flags,
                "rule": verdict.rule if verdict.status is VerdictStatus.FLAGGED else "copy-source",
                "reason": f"{verdict.reason}; copied from {event.source_image}, "
                          f"which is {origin.status.value}",
            })
            changed = True
        if not changed:
            return


def evaluate_images(
    images: Iterable[Image],
    events: Iterable[CreationEvent],
    policy: Policy,
    spans: Spans,
    now: datetime,
) -> Evaluation:
    """Judge every image; the result depends only on its arguments."""
    image_list = sorted(images, key=lambda image: image.ref)
    correlator = Correlator(events)
    judge = _Judge(policy, spans, now)
    evaluation = Evaluation(verdicts={}, attributions={})
    for image in image_list:
        attribution = correlator.attribute(image)
        evaluation.attributions[image.ref] = attribution
        evaluation.verdicts[image.ref] = judge.verdict(attribution)
    _unclaim_shared_imports(image_list, evaluation, judge)
    _judge_copies(image_list, evaluation, correlator, judge)
    return evaluation


def _unclaim_shared_imports(images: Sequence[Image], evaluation: Evaluation,
                            judge: _Judge) -> None:
    """Attribute an import joined by name to no image when several images carry
    that name.

    The ImportImage record names only the task, and the image takes the task's name
    unless the caller that registers it sets another. One task creates one image, so
    when several carry its name, the record does not show which one it created.
    """
    claims: dict[str, list[Image]] = {}
    events: dict[str, CreationEvent] = {}
    for image in images:
        event = evaluation.attributions[image.ref].creation
        if (event is not None and event.effect is EventEffect.IMPORT
                and event.target is not None and event.target != image.native_id
                and event.target in image.names):
            claims.setdefault(event.key, []).append(image)
            events[event.key] = event
    for key, claimants in claims.items():
        if len(claimants) < 2:
            continue
        event = events[key]
        names = ", ".join(image.native_id for image in claimants)
        for image in claimants:
            attribution = replace(evaluation.attributions[image.ref], creation=None)
            evaluation.attributions[image.ref] = attribution
            verdict = judge.verdict(attribution)
            evaluation.verdicts[image.ref] = verdict.model_copy(update={
                "reason": f"{verdict.reason}; import task {event.target} by "
                          f"{event.principal.id} names {len(claimants)} images "
                          f"({names}), and one task creates one image"})
