"""One provenance cycle: inventory, log reading, evaluation, verdicts."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
import orjson

from imageprov.config import AwsApi, Config, InventoryFile, TrailLocation
from imageprov.errors import SourceError
from imageprov.ingest import IngestSummary, ingest
from imageprov.ledger import sign_ledger_head
from imageprov.ledger.keys import load_private_key
from imageprov.model import Image, LogValidation, Verdict
from imageprov.policy import Policy, evaluate_images
from imageprov.policy.evaluate import Evaluation
from imageprov.sources.aws import ami, ecr, trail_digests
from imageprov.sources.aws.lookup_events import LookupEventsTrail
from imageprov.sources.aws.notifications import SqsTrail
from imageprov.sources.aws.trail_locations import LocalTrail, LogObject, S3Trail
from imageprov.store import Store

logger = logging.getLogger(__name__)


@dataclass
class CycleSummary:
    images: int = 0
    sources_failed: list[str] = field(default_factory=list)
    logs: IngestSummary = field(default_factory=IngestSummary)
    verdicts_changed: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    digest_problems: list[trail_digests.DigestProblem] = field(default_factory=list)


def _boto_session(api: AwsApi | None) -> boto3.Session:
    return boto3.Session(profile_name=api.profile if api else None)


def _file_images(item: InventoryFile) -> list[Image]:
    origin = f"file:{item.path}"
    try:
        document = orjson.loads(item.path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise SourceError(origin, f"cannot read saved inventory: {error}") from error
    if item.kind == "ami":
        return list(ami.images_from_saved_output(document, item.region, origin, item.account))
    return list(ecr.images_from_saved_output(document, item.region, origin))


def _api_sources(api: AwsApi) -> Iterator[Any]:
    session = _boto_session(api)
    for region in api.regions:
        if api.ami:
            yield ami.AmiInventory(session.client("ec2", region_name=region), region,
                                   api.accounts)
        if api.ecr:
            yield ecr.EcrInventory(session.client("ecr", region_name=region), region,
                                   api.accounts)


def run_inventory(config: Config, store: Store, summary: CycleSummary) -> None:
    """Store every image each inventory source reports; a failed source is logged."""
    seen_at = datetime.now(UTC)
    jobs: list[tuple[str, Callable[[], list[Image]]]] = [
        (f"file:{item.path}", lambda item=item: _file_images(item))
        for item in config.aws.inventory_files
    ]
    if config.aws.api is not None:
        for source in _api_sources(config.aws.api):
            jobs.append((source.name, lambda source=source: list(source.images())))
    for name, job in jobs:
        started = time.perf_counter()
        try:
            images = job()
        except SourceError as error:
            logger.error("inventory source failed: %s", error)
            summary.sources_failed.append(name)
            continue
        store.save_images(images, seen_at)
        summary.images += len(images)
        logger.info("source=%s kind=inventory images=%d seconds=%.2f", name, len(images),
                    time.perf_counter() - started)


def trail_objects(location: TrailLocation, api: AwsApi | None,
                  start_after: Callable[[str], str | None] | None = None,
                  claim: Callable[[str], bool] | None = None,
                  ) -> Iterator[LogObject]:
    # Files are hashed for the digest checks only where they will run.
    content_hash = location.public_keys is not None
    if location.path is not None:
        yield from LocalTrail(location.path, content_hash).objects()
        return
    client = _boto_session(api).client("s3", region_name=location.region)
    trail = S3Trail(client, location.s3_bucket or "", location.prefix,
                    start_after=start_after, claim=claim, content_hash=content_hash)
    yield from trail.objects()


def _until(stop: threading.Event | None, objects: Iterator[LogObject]) -> Iterator[LogObject]:
    # Stopping between files leaves every stored file whole; the rest is read next time.
    for item in objects:
        if stop is not None and stop.is_set():
            return
        yield item


def _read_location(config: Config, store: Store, location: TrailLocation,
                   on_file: Callable[[str], None] | None,
                   stop: threading.Event | None) -> IngestSummary:
    if location.lookup_events:
        session = _boto_session(config.aws.api)
        # Retries are paced here, within the API's rate limit, not by botocore.
        client = session.client("cloudtrail", region_name=location.region,
                                config=BotoConfig(retries={"total_max_attempts": 1}))
        total = IngestSummary()
        for event_source in location.event_sources:
            history = LookupEventsTrail(client, location.region or "", event_source,
                                        store.checkpoint, location.backfill)
            _add(total, ingest(store, _until(stop, history.objects()), config.workers,
                               on_file, config.batch_files))
        return total
    if location.sqs_queue_url is not None:
        session = _boto_session(config.aws.api)
        queue = SqsTrail(session.client("sqs", region_name=location.region),
                         session.client("s3", region_name=location.region),
                         location.sqs_queue_url)
        result = ingest(store, _until(stop, queue.objects()), config.workers, on_file,
                        config.batch_files)
        # Every file the messages named is stored or quarantined by now.
        queue.acknowledge()
        return result
    # Claims on trail folders last until the files read under them are stored.
    with store.claims() as claim:
        objects = _until(stop, trail_objects(location, config.aws.api, store.checkpoint,
                                             claim))
        return ingest(store, objects, config.workers, on_file, config.batch_files)


def run_logs(config: Config, store: Store, summary: CycleSummary,
             on_file: Callable[[str], None] | None = None,
             stop: threading.Event | None = None) -> None:
    """Read every configured log location; a failed location is logged and skipped."""
    for location in config.aws.cloudtrail:
        try:
            result = _read_location(config, store, location, on_file, stop)
        except SourceError as error:
            logger.error("log source failed: %s", error)
            summary.sources_failed.append(location.name)
            continue
        if location.public_keys is not None:
            try:
                check_digests(config, store, location, summary)
            except SourceError as error:
                logger.error("digest check failed: %s", error)
                summary.sources_failed.append(f"{location.name} (digests)")
        logger.info(
            "source=%s kind=cloudtrail files=%d skipped=%d records=%d events=%d "
            "new_events=%d quarantined=%d seconds=%.2f", location.name, result.files,
            result.skipped, result.records, result.events, result.new_events,
            result.problems, result.seconds)
        _add(summary.logs, result)


def check_digests(config: Config, store: Store, location: TrailLocation,
                  summary: CycleSummary) -> None:
    """Check the digests of a folder or bucket trail and store each file's outcome.

    Raises:
        SourceError: the public keys or the digests cannot be read.
    """
    keys = trail_digests.load_public_keys(location.public_keys or Path())
    if location.path is not None:
        digests = trail_digests.local_digests(location.path)
    else:
        client = _boto_session(config.aws.api).client("s3", region_name=location.region)
        trail = S3Trail(client, location.s3_bucket or "", location.prefix)
        digests = trail_digests.s3_digests(client, location.s3_bucket or "",
                                           trail.folders())
    result = trail_digests.validate_digests(digests, keys)
    outcomes, missing = trail_digests.match_log_files(result, store.log_file_contents())
    store.record_validation(outcomes)
    problems = result.problems + missing
    for problem in problems[:20]:
        logger.warning("digest check: %s", problem)
    if len(problems) > 20:
        logger.warning("digest check: %d more problems in %s", len(problems) - 20,
                       location.name)
    summary.digest_problems.extend(problems)
    validated = sum(1 for outcome, _ in outcomes.values()
                    if outcome is LogValidation.VALIDATED)
    logger.info("source=%s kind=cloudtrail-digest digests=%d valid=%d files_validated=%d "
                "problems=%d", location.name, result.digests, result.valid, validated,
                len(problems))


def _add(total: IngestSummary, part: IngestSummary) -> None:
    for name in ("files", "skipped", "records", "events", "new_events", "problems"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.seconds += part.seconds
    for notice, count in part.notices.items():
        total.notices[notice] = total.notices.get(notice, 0) + count


def evaluate(store: Store, policy: Policy, policy_text: str,
             now: datetime | None = None) -> tuple[Evaluation, int]:
    """Judge every stored image and append the verdicts that changed."""
    now = now or datetime.now(UTC)
    store.save_policy(policy.hash, policy.path, policy_text)
    # NOTE: every stored image and event is loaded each time; at 60,000 images this
    # is most of a steady-state cycle (docs/benchmarks.md).
    evaluation = evaluate_images(store.images(), store.events(), policy,
                                 store.coverage(), now)
    changed = store.save_verdicts(evaluation.verdicts.values())
    active = [{"image": item.image, "reason": item.reason,
               "expires": item.expires.astimezone(UTC).isoformat()}
              for item in policy.exceptions if item.expires > now]
    store.record_exceptions(active, policy.hash, now)
    return evaluation, changed


def sign_ledger(config: Config, store: Store, now: datetime | None = None) -> None:
    """Sign the ledger head with the configured key; without a key, do nothing."""
    if config.ledger_key is None:
        return
    sign_ledger_head(store, load_private_key(config.ledger_key), now)


def status_counts(verdicts: dict[str, Verdict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for verdict in verdicts.values():
        counts[verdict.status.value] = counts.get(verdict.status.value, 0) + 1
    return dict(sorted(counts.items()))


def run_cycle(config: Config, store: Store, policy: Policy, policy_text: str,
              now: datetime | None = None,
              on_file: Callable[[str], None] | None = None) -> CycleSummary:
    """Run inventory, log reading and evaluation once, then sign the ledger head."""
    summary = CycleSummary()
    run_inventory(config, store, summary)
    run_logs(config, store, summary, on_file)
    evaluation, summary.verdicts_changed = evaluate(store, policy, policy_text, now)
    summary.by_status = status_counts(evaluation.verdicts)
    sign_ledger(config, store, now)
    return summary
