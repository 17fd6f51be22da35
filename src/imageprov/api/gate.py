"""Launch decisions: resolve a reference, keep the verdict fresh, answer from a cache.

A cached answer is served while all of these hold:

- it was made under the policy the gate holds now (a changed file is read again
  within `refresh`);
- no verdict row for its image was added since (the store is polled every
  `refresh`, so a scan in another process reaches the gate within that time);
- its verdict was confirmed less than `max_verdict_age` ago, no exception of the
  policy has expired since, and a pending image's delivery window is still open;
- for a tag or an unknown image, it is younger than `refresh`, because a push or an
  inventory can change what the reference names.

Otherwise the verdict is read from the store and, when it is stale by the same
rules, judged again (`judge.reevaluate`) before the answer is made.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import anyio.to_thread
import orjson

from imageprov.api.judge import reevaluate
from imageprov.api.references import Reference, ReferenceKind
from imageprov.errors import PolicyError
from imageprov.model import Image, ImageKind, Verdict, VerdictStatus, container_ref
from imageprov.policy import Policy
from imageprov.policy.schema import load_policy
from imageprov.store import Store

logger = logging.getLogger(__name__)

_ALLOWED = {VerdictStatus.APPROVED, VerdictStatus.EXCEPTED}


class AdmissionSettings(Protocol):
    def mode_for(self, namespace: str | None) -> str: ...


class GateSettings(Protocol):
    """The settings the gate reads; the `serve` section of the configuration
    (`config.Serve`) is one."""

    @property
    def max_verdict_age(self) -> timedelta: ...
    @property
    def unknown_images(self) -> str: ...
    @property
    def refresh(self) -> timedelta: ...
    @property
    def cache_size(self) -> int: ...
    @property
    def admission(self) -> AdmissionSettings: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """One decision, with the JSON body sent for it and how long it may be reused."""

    image: str
    ref: str | None
    allowed: bool
    status: str
    reason: str
    body: bytes
    policy_hash: str
    fresh_until: float


@dataclass(frozen=True)
class _Reload:
    """A policy file read again after it changed, with the stat it was read at."""

    policy: Policy
    stat: tuple[int, int, int] | None


@dataclass(frozen=True)
class Resolution:
    """The stored image a reference names, or the candidates when it names several."""

    ref: str | None
    image: Image | None = None
    tag: str | None = None
    candidates: tuple[str, ...] = ()


def _stamp(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def _later(moment: datetime, delay: timedelta) -> datetime:
    """Return `moment + delay`, or the last representable time when the sum passes
    the end of year 9999 (an image's creation time comes from its source)."""
    try:
        return moment + delay
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)


def token_hash(token: str) -> str:
    """Return the SHA-256 of a token's text, the form in which tokens are stored.

    Tokens are 256 random bits, so a fast hash is as safe as a slow one here and
    keeps the check off the latency budget.
    """
    return hashlib.sha256(token.encode()).hexdigest()


class Gate:
    """The state behind the API: policy, tokens and the cache of answers."""

    def __init__(self, store: Store, settings: GateSettings, policy_path: Path,
                 policy: Policy, policy_text: str) -> None:
        self.store = store
        self.settings = settings
        self.policy = policy
        self.policy_path = policy_path
        self.policy_error: str | None = None
        self.store_error: str | None = None
        self._policy_stat = _stat(policy_path)
        self._answers: dict[str, Answer] = {}
        self._by_ref: dict[str, set[str]] = defaultdict(set)
        self._inflight: dict[str, asyncio.Future[Answer]] = {}
        self._generation = 0
        # The time this gate last judged an image, per image, with the policy hash.
        self._confirmed: dict[str, tuple[str, datetime]] = {}
        self._evaluated_at: datetime | None = None
        self._last_verdict_id = 0
        self._tokens: dict[str, str] = {}
        self._next_expiry = _next_expiry(policy, datetime.now(UTC))
        store.save_policy(policy.hash, policy.path, policy_text)

    # Start and refresh -------------------------------------------------------

    def start(self) -> None:
        """Read tokens and marks from the store and fill the cache with fresh verdicts."""
        self._last_verdict_id = self.store.last_verdict_id()
        self._tokens = self.store.active_tokens()
        self._evaluated_at = self.store.evaluated_at(self.policy.hash)
        now = datetime.now(UTC)
        loaded = 0
        for ref, verdict in self.store.current_verdicts().items():
            if loaded >= self.settings.cache_size:
                break
            if verdict.policy_hash != self.policy.hash:
                continue
            if verdict.status is VerdictStatus.PENDING:
                continue
            checked = self._checked_at(verdict)
            if now - checked > self.settings.max_verdict_age:
                continue
            self._remember(self._answer_of(ref, ref, verdict, checked, now, None))
            loaded += 1
        logger.info("gate started: policy %s, %d fresh verdicts cached, %d tokens",
                    self.policy.hash[:12], loaded, len(self._tokens))

    async def watch(self) -> None:
        """Poll the policy file and the store every `refresh` until cancelled."""
        interval = self.settings.refresh.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                changes = await anyio.to_thread.run_sync(self._poll)
            except Exception as error:  # noqa: BLE001 - any store failure is reported
                message = f"{type(error).__name__}: {error}"
                if message != self.store_error:
                    logger.error("cannot read the store: %s", message)
                self.store_error = message
                continue
            self.store_error = None
            self._apply(*changes)

    def _poll(self) -> tuple[_Reload | None, int, set[str], dict[str, str],
                             datetime | None]:
        reloaded = self._reload_policy()
        policy = reloaded.policy if reloaded else self.policy
        newest, changed = self.store.verdict_changes(self._last_verdict_id)
        tokens = self.store.active_tokens()
        return reloaded, newest, changed, tokens, self.store.evaluated_at(policy.hash)

    def _reload_policy(self) -> _Reload | None:
        stat = _stat(self.policy_path)
        if stat == self._policy_stat:
            return None
        try:
            policy, text = load_policy(self.policy_path)
        except PolicyError as error:
            # The last valid policy stays in force, so a bad edit cannot open the gate.
            # The file is read again once it changes; until then it is not reported again.
            logger.error("policy file changed but is invalid; keeping policy %s: %s",
                         self.policy.hash[:12], error)
            self.policy_error = str(error)
            self._policy_stat = stat
            return None
        self.policy_error = None
        if policy.hash != self.policy.hash:
            self.store.save_policy(policy.hash, policy.path, text)
        # The stat is recorded when the poll is applied, so a store failure later in
        # the same poll leaves the file to be read again.
        return _Reload(policy, stat)

    def _apply(self, reloaded: _Reload | None, newest: int, changed: set[str],
               tokens: dict[str, str], evaluated_at: datetime | None) -> None:
        if reloaded is not None:
            self._policy_stat = reloaded.stat
            if reloaded.policy.hash != self.policy.hash:
                logger.info("policy changed from %s to %s; answers are judged again",
                            self.policy.hash[:12], reloaded.policy.hash[:12])
            self.policy = reloaded.policy
        if changed:
            self._generation += 1
            for ref in changed:
                for text in self._by_ref.pop(ref, ()):
                    self._answers.pop(text, None)
        self._last_verdict_id = newest
        self._next_expiry = _next_expiry(self.policy, datetime.now(UTC))
        self._tokens = tokens
        self._evaluated_at = evaluated_at

    # Tokens ------------------------------------------------------------------

    def token_name(self, token: str) -> str | None:
        """Return the name of a valid token found without the store, else None."""
        return self._tokens.get(token_hash(token))

    def lookup_token(self, token: str) -> str | None:
        """Return the name of a token from the store, for one created since the last
        poll, else None."""
        return self.store.active_tokens().get(token_hash(token))

    # Decisions ---------------------------------------------------------------

    def cached(self, text: str) -> Answer | None:
        """Return the cached answer for a reference when it is still fresh."""
        answer = self._answers.get(text)
        if answer is None:
            return None
        if answer.fresh_until <= time.time() or answer.policy_hash != self.policy.hash:
            return None
        return answer

    async def decide(self, reference: Reference) -> Answer:
        """Answer for one reference, from the cache or from the store.

        Concurrent requests for the same reference share one load.
        """
        answer = self.cached(reference.text)
        if answer is not None:
            return answer
        pending = self._inflight.get(reference.text)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._inflight[reference.text] = future
        generation = self._generation
        try:
            answer = await anyio.to_thread.run_sync(self._load, reference)
        except BaseException as error:
            future.set_exception(error)
            # Mark the exception retrieved for a future that nobody else awaits.
            future.exception()
            raise
        finally:
            del self._inflight[reference.text]
        # A verdict that changed while this load ran may not be in `answer`.
        if generation == self._generation:
            self._remember(answer)
        future.set_result(answer)
        return answer

    def _remember(self, answer: Answer) -> None:
        if answer.image in self._answers:
            del self._answers[answer.image]
        elif len(self._answers) >= self.settings.cache_size:
            oldest = next(iter(self._answers))
            evicted = self._answers.pop(oldest)
            if evicted.ref is not None:
                self._by_ref[evicted.ref].discard(oldest)
        self._answers[answer.image] = answer
        if answer.ref is not None:
            self._by_ref[answer.ref].add(answer.image)

    def _load(self, reference: Reference) -> Answer:
        now = datetime.now(UTC)
        policy = self.policy
        found = self._resolve(reference)
        if found.image is None:
            return self._unknown(reference, found, now)
        image = found.image
        verdict = self.store.current_verdict(image.ref)
        checked = self._checked_at(verdict) if verdict is not None else now
        if verdict is None or self._stale(verdict, image, checked, policy, now):
            verdict = reevaluate(self.store, policy, image, now)
            checked = now
            self._confirmed[image.ref] = (policy.hash, now)
            logger.debug("judged %s again: %s", image.ref, verdict.status.value)
        return self._answer_of(reference.text, image.ref, verdict, checked, now, found.tag,
                               image)

    def _checked_at(self, verdict: Verdict) -> datetime:
        """Return when the verdict was last known to hold: made, or confirmed since."""
        checked = verdict.decided_at
        confirmed = self._confirmed.get(verdict.image)
        if confirmed is not None and confirmed[0] == verdict.policy_hash:
            checked = max(checked, confirmed[1])
        if self._evaluated_at is not None and verdict.policy_hash == self.policy.hash:
            checked = max(checked, self._evaluated_at)
        return checked

    def _stale(self, verdict: Verdict, image: Image, checked: datetime, policy: Policy,
               now: datetime) -> bool:
        if verdict.policy_hash != policy.hash:
            return True
        if now - checked > self.settings.max_verdict_age:
            return True
        names = {image.ref, image.native_id, image.digest}
        for exception in policy.exceptions:
            if exception.image in names and checked < exception.expires <= now:
                return True
        if verdict.status is VerdictStatus.PENDING and image.created is not None:
            return now - image.created >= policy.delivery_window
        return False

    # Resolution --------------------------------------------------------------

    def _resolve(self, reference: Reference) -> Resolution:
        store = self.store
        if reference.kind in (ReferenceKind.REF, ReferenceKind.CONTAINER_DIGEST):
            return Resolution(reference.lookup, store.image(reference.lookup))
        if reference.kind is ReferenceKind.CONTAINER_TAG:
            return self._resolve_tag(reference)
        if reference.kind is ReferenceKind.AMI_ID:
            matches = [image for image in store.find_images(reference.lookup)
                       if image.kind is ImageKind.AMI and image.native_id == reference.lookup]
        else:
            matches = [image for image in store.find_images(reference.lookup)
                       if image.digest == reference.lookup]
        if len(matches) == 1:
            return Resolution(matches[0].ref, matches[0])
        return Resolution(None, candidates=tuple(sorted(image.ref for image in matches)))

    def _resolve_tag(self, reference: Reference) -> Resolution:
        """Find the digest a tag names now: the newer of the last successful push and
        the newest inventory that listed the tag."""
        registry, repository, tag = reference.registry or "", reference.repository or "", \
            reference.tag or "latest"
        pushes = [move for move in self.store.tag_history(registry, repository, tag)
                  if move.error_code is None and move.digest]
        listed = [(seen, image) for image, seen in
                  self.store.images_in_repository(registry, repository)
                  if tag in image.names and image.digest]
        digest = None
        if listed:
            seen, image = max(listed, key=lambda item: item[0])
            digest = image.digest
            if pushes and pushes[-1].time > seen:
                digest = pushes[-1].digest
        elif pushes:
            digest = pushes[-1].digest
        if digest is None:
            return Resolution(None, tag=reference.tag_name)
        # NOTE: the answer holds for the digest the tag names now. A runtime that
        # pulls the tag later may get a digest pushed after this answer.
        ref = container_ref(registry, repository, digest)
        return Resolution(ref, self.store.image(ref), tag=reference.tag_name)

    # Answers -----------------------------------------------------------------

    def _fail_open(self) -> bool:
        return self.settings.unknown_images == "fail-open"

    def _unknown(self, reference: Reference, found: Resolution, now: datetime) -> Answer:
        choice = "allowed" if self._fail_open() else "denied"
        rule = f"unknown images are {choice} ({self.settings.unknown_images})"
        if found.candidates:
            status = "ambiguous"
            reason = (f"{reference.text} names {len(found.candidates)} stored images "
                      f"({', '.join(found.candidates)}); give the full reference")
            allowed = False
        elif found.tag is not None and found.ref is not None:
            status = "unknown"
            reason = (f"{found.tag} names {found.ref}, which no inventory has listed; "
                      f"{rule}")
            allowed = self._fail_open()
        elif found.tag is not None:
            status = "unknown"
            reason = f"no push or inventory names the tag {found.tag}; {rule}"
            allowed = self._fail_open()
        else:
            status = "unknown"
            reason = f"no stored image matches {reference.text}; {rule}"
            allowed = self._fail_open()
        body = {
            "image": reference.text, "ref": found.ref, "decision": _word(allowed),
            "status": status, "reason": reason, "flags": [], "rule": None,
            "decided_at": None, "checked_at": _stamp(now), "policy_hash": self.policy.hash,
            "tag": found.tag,
        }
        fresh_until = now.timestamp() + self.settings.refresh.total_seconds()
        return Answer(reference.text, found.ref, allowed, status, reason,
                      orjson.dumps(body), self.policy.hash, fresh_until)

    def _answer_of(self, text: str, ref: str, verdict: Verdict, checked: datetime,
                   now: datetime, tag: str | None, image: Image | None = None) -> Answer:
        if verdict.status is VerdictStatus.PENDING:
            allowed = self._fail_open()
            reason = (f"{verdict.reason}; pending images are "
                      f"{'allowed' if allowed else 'denied'} "
                      f"({self.settings.unknown_images})")
        else:
            allowed = verdict.status in _ALLOWED
            reason = verdict.reason
        body = {
            "image": text, "ref": ref, "decision": _word(allowed),
            "status": verdict.status.value, "reason": reason,
            "flags": [flag.value for flag in verdict.flags], "rule": verdict.rule,
            "decided_at": _stamp(verdict.decided_at), "checked_at": _stamp(checked),
            "policy_hash": verdict.policy_hash, "tag": tag,
        }
        until = checked + self.settings.max_verdict_age
        if self._next_expiry is not None:
            until = min(until, self._next_expiry)
        if (verdict.status is VerdictStatus.PENDING and image is not None
                and image.created is not None):
            until = min(until, _later(image.created, self.policy.delivery_window))
        if tag is not None:
            until = min(until, now + self.settings.refresh)
        return Answer(text, ref, allowed, verdict.status.value, reason, orjson.dumps(body),
                      verdict.policy_hash, until.timestamp())

    def health(self) -> dict[str, object]:
        problems = [problem for problem in (self.store_error, self.policy_error) if problem]
        return {"status": "degraded" if problems else "ok",
                "policy_hash": self.policy.hash, "problems": problems}


def _word(allowed: bool) -> str:
    return "allow" if allowed else "deny"


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _next_expiry(policy: Policy, now: datetime) -> datetime | None:
    """Return the time the next exception of the policy expires, if one is due."""
    future = [exception.expires for exception in policy.exceptions
              if exception.expires > now]
    return min(future) if future else None


