"""One provenance cycle: inventory, log reading, evaluation, verdicts."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
import orjson

from imageprov.config import (
    AwsApi,
    Config,
    GcpApi,
    GcpLogLocation,
    InventoryFile,
    RegistrySource,
    TrailLocation,
)
from imageprov.errors import IncompleteListing, SourceError
from imageprov.ingest import IngestSummary, ingest
from imageprov.ledger import sign_ledger_head
from imageprov.ledger.keys import load_private_key
from imageprov.model import Image, LogValidation, Verdict
from imageprov.policy import Policy, evaluate_images
from imageprov.policy.evaluate import Evaluation
from imageprov.sources.aws import ami, ecr, trail_digests
from imageprov.sources.aws.lookup_events import LookupEventsTrail
from imageprov.sources.aws.notifications import SqsTrail
from imageprov.sources import LogObject
from imageprov.sources.files import LocalFolder
from imageprov.sources.gcp import audit_documents
from imageprov.sources.aws.trail_locations import LocalTrail, S3Trail
from imageprov.sources.files import LocalFolder
from imageprov.sources.oci.cosign import RegistryEvidence
from imageprov.sources.oci.inventory import RegistryInventory
from imageprov.sources.oci.registry import Credentials, RegistryClient
from imageprov.store import Store

logger = logging.getLogger(__name__)


@dataclass
class CycleSummary:
    images: int = 0
    sources_failed: list[str] = field(default_factory=list)
    logs: IngestSummary = field(default_factory=IngestSummary)
    # The same counts per log kind (cloudtrail, azure-activity, gcp-audit, ...).
    logs_by_kind: dict[str, IngestSummary] = field(default_factory=dict)
    verdicts_changed: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    digest_problems: list[trail_digests.DigestProblem] = field(default_factory=list)


# Timeouts and retries of every AWS client. With botocore's defaults (60 s per read,
# and retries), an endpoint that stopped replying held a step, and so the
# daemon's stop, for 356 s in a test against a server that never replied.
# NOTE: 20 s without a byte from AWS is taken as a failure; the value is an
# estimate, not a figure AWS publishes.
CLIENT_CONFIG = BotoConfig(connect_timeout=5, read_timeout=20,
                           retries={"total_max_attempts": 3, "mode": "standard"})


def _boto_session(api: AwsApi | None) -> boto3.Session:
    return boto3.Session(profile_name=api.profile if api else None)


def aws_client(session: boto3.Session, service: str, region: str | None,
               config: BotoConfig | None = None) -> Any:
    """Return a client of `service` with imageprov's timeouts and retries, merged
    with `config`."""
    merged = CLIENT_CONFIG.merge(config) if config is not None else CLIENT_CONFIG
    return session.client(service, region_name=region, config=merged)


def _file_images(item: InventoryFile) -> list[Image]:
    origin = f"file:{item.path}"
    try:
        document = orjson.loads(item.path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise SourceError(origin, f"cannot read saved inventory: {error}") from error
    skipped: list[int] = []
    if item.kind == "ami":
        images = list(ami.images_from_saved_output(document, item.region, origin,
                                                   item.account, skipped))
    else:
        images = list(ecr.images_from_saved_output(document, item.region, origin, skipped))
    if skipped:
        raise IncompleteListing(origin, f"{len(skipped)} entries could not be read "
                                f"(indexes {', '.join(map(str, skipped[:10]))})", images)
    return images


def _api_sources(api: AwsApi) -> Iterator[Any]:
    session = _boto_session(api)
    for region in api.regions:
        if api.ami:
            yield ami.AmiInventory(aws_client(session, "ec2", region), region,
                                   api.accounts)
        if api.ecr:
            yield ecr.EcrInventory(aws_client(session, "ecr", region), region,
                                   api.accounts)


InventoryJob = tuple[str, Callable[[], list[Image]]]
LogJob = tuple[str, str, Callable[[], IngestSummary]]


def _aws_inventory_jobs(config: Config) -> list[InventoryJob]:
    jobs: list[InventoryJob] = [
        (f"file:{item.path}", lambda item=item: _file_images(item))
        for item in config.aws.inventory_files
    ]
    if config.aws.api is not None:
        for source in _api_sources(config.aws.api):
            jobs.append((source.name, lambda source=source: list(source.images())))
    return jobs


def _azure_inventory_jobs(config: Config) -> list[InventoryJob]:
    from imageprov.sources.azure import clients
    from imageprov.sources.azure.acr import AcrInventory
    from imageprov.sources.azure.compute import ComputeInventory

    azure = config.azure
    jobs: list[InventoryJob] = []
    for subscription in azure.subscriptions:
        def compute(subscription: Any = subscription) -> list[Image]:
            client = clients.compute_client(azure, subscription.id)
            return list(ComputeInventory(client, subscription.id, subscription.managed_images,
                                         subscription.gallery_images).images())
        jobs.append((f"azure-compute:{subscription.id.lower()}", compute))
    for registry in azure.registries:
        def registry_images(registry: Any = registry) -> list[Image]:
            client = clients.registry_client(azure, registry)
            return list(AcrInventory(client, registry.login_server,
                                     registry.subscription).images())
        jobs.append((f"acr:{registry.login_server.lower()}", registry_images))
    return jobs
def _gcp_sources(api: GcpApi) -> Iterator[Any]:
    # Imported here so that a configuration without `gcp:` loads no Google library.
    from imageprov.sources.gcp import clients
    from imageprov.sources.gcp.artifact_registry import ArtifactRegistryInventory
    from imageprov.sources.gcp.compute import ComputeImageInventory

    credentials = clients.credentials_from(api.credentials, api.token_env, api.key_file)
    if api.compute:
        images = clients.images_client(credentials, api.compute_endpoint, api.ca_bundle)
        for project in api.projects:
            yield ComputeImageInventory(images, project, api.watched_families,
                                        api.iam_policies)
    if api.artifact_registry_locations:
        registry = clients.artifact_registry_client(
            credentials, api.artifact_registry_endpoint, api.ca_bundle)
        for project in api.projects:
            for location in api.artifact_registry_locations:
                yield ArtifactRegistryInventory(registry, project, location)


def _gcp_inventory_jobs(config: Config) -> list[InventoryJob]:
    if config.gcp.api is None:
        return []
    try:
        sources = list(_gcp_sources(config.gcp.api))
    except SourceError as error:
        # Missing credentials fail the GCP sources alone, like a failed API call.
        def fail(error: SourceError = error) -> list[Image]:
            raise error
        return [("gcp", fail)]
    return [(source.name, lambda source=source: list(source.images())) for source in sources]
def _secret(variable: str | None, registry: RegistrySource) -> str | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise SourceError(f"registry:{registry.host}",
                          f"environment variable {variable} is not set")
    return value


def registry_client(registry: RegistrySource) -> RegistryClient:
    """Build the client of one configured registry, reading its secret now.

    Raises:
        SourceError: the environment variable that contains its secret is not set.
    """
    credentials = Credentials(username=registry.username,
                              password=_secret(registry.password_env, registry),
                              token=_secret(registry.token_env, registry))
    return RegistryClient(registry.url, credentials, registry.tls_verify,
                          str(registry.ca_file) if registry.ca_file else None,
                          registry.timeout)


def _oci_inventory_jobs(config: Config) -> list[InventoryJob]:
    def job(item: RegistrySource) -> list[Image]:
        inventory = RegistryInventory(registry_client(item), item.host, item.repositories)
        return list(inventory.images())
    return [(f"registry:{item.host}", lambda item=item: job(item))
            for item in config.registries]


def inventory_jobs(config: Config) -> list[InventoryJob]:
    """Return every configured inventory source as a name and a call that lists it."""
    return (_aws_inventory_jobs(config) + _azure_inventory_jobs(config)
            + _gcp_inventory_jobs(config) + _oci_inventory_jobs(config))


def run_inventory(config: Config, store: Store, summary: CycleSummary,
                  stop: threading.Event | None = None) -> None:
    """Store every image each inventory source reports; a failed source is logged.

    With `stop` set, no further source is listed, and the sources not listed keep
    their images.
    """
    seen_at = datetime.now(UTC)
    # A replica that finds a source claimed leaves it to the one listing it now.
    with store.claims() as claim:
        for name, job in inventory_jobs(config):
            if stop is not None and stop.is_set():
                return
            if not claim(f"inventory:{name}"):
                logger.info("source=%s kind=inventory skipped: another replica is "
                            "listing it", name)
                continue
            _list_source(store, summary, name, job, seen_at)


def _list_source(store: Store, summary: CycleSummary, name: str,
                 job: Callable[[], list[Image]], seen_at: datetime) -> None:
    started = time.perf_counter()
    try:
        images = job()
    except IncompleteListing as error:
        # The entries that were read are stored, and no image of the source is
        # taken for gone, since an unreadable entry may be any of them.
        logger.error("inventory source failed: %s", error)
        summary.sources_failed.append(name)
        store.keep_present(name, seen_at)
        store.save_images(error.images, seen_at)
        summary.images += len(error.images)
        return
    except SourceError as error:
        logger.error("inventory source failed: %s", error)
        summary.sources_failed.append(name)
        return
    store.save_images(images, seen_at)
    store.record_listing(name, seen_at, len(images))
    summary.images += len(images)
    accounts, regions = _scopes((image.account, image.region) for image in images)
    logger.info("source=%s kind=inventory account=%s region=%s images=%d seconds=%.2f",
                name, accounts, regions, len(images), time.perf_counter() - started)


def _scopes(pairs: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """Return the accounts and the regions of (account, region) pairs, as text."""
    accounts: set[str] = set()
    regions: set[str] = set()
    for account, region in pairs:
        accounts.add(account)
        regions.add(region)
    return ",".join(sorted(accounts)) or "-", ",".join(sorted(regions)) or "-"


def _whole_days(span: timedelta) -> int:
    """Return the number of whole days that cover `span`."""
    return -(-span // timedelta(days=1))


def trail_objects(location: TrailLocation, api: AwsApi | None,
                  start_after: Callable[[str], str | None] | None = None,
                  claim: Callable[[str], bool] | None = None,
                  known: Callable[[list[str]], set[str]] | None = None,
                  stop: threading.Event | None = None,
                  ) -> Iterator[LogObject]:
    if location.path is not None:
        objects = LocalTrail(location.path).objects()
    else:
        client = aws_client(_boto_session(api), "s3", location.region)
        objects = S3Trail(client, location.s3_bucket or "", location.prefix,
                          start_after=start_after, claim=claim, known=known,
                          reread_days=_whole_days(location.reread), stop=stop).objects()
    if location.public_keys is None:
        yield from objects
        return
    # Files are hashed for the digest checks only where they will run.
    for item in objects:
        yield replace(item, content_hash=True)


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
        client = aws_client(session, "cloudtrail", location.region,
                            BotoConfig(retries={"total_max_attempts": 1}))
        total = IngestSummary()
        with store.claims() as claim:
            for event_source in location.event_sources:
                history = LookupEventsTrail(client, location.region or "", event_source,
                                            store.checkpoint, location.backfill)
                # Another replica reading this history now moves the same checkpoint.
                if not claim(history.checkpoint):
                    continue
                _add(total, ingest(store, _until(stop, history.objects()), config.workers,
                                   on_file, config.batch_files))
        return total
    if location.sqs_queue_url is not None:
        session = _boto_session(config.aws.api)
        queue = SqsTrail(aws_client(session, "sqs", location.region),
                         aws_client(session, "s3", location.region),
                         location.sqs_queue_url)
        result = ingest(store, _until(stop, queue.objects()), config.workers, on_file,
                        config.batch_files)
        # Every file the messages named is stored or quarantined by now.
        queue.acknowledge()
        return result
    # Claims on trail folders last until the files read under them are stored.
    with store.claims() as claim:
        objects = _until(stop, trail_objects(location, config.aws.api, store.checkpoint,
                                             claim, store.known_locations, stop))
        return ingest(store, objects, config.workers, on_file, config.batch_files)


def _aws_log_jobs(config: Config, store: Store, on_file: Callable[[str], None] | None,
                  stop: threading.Event | None) -> list[LogJob]:
    return [
        (location.name, "cloudtrail",
         lambda location=location: _read_location(config, store, location, on_file, stop))
        for location in config.aws.cloudtrail
    ]


def _azure_objects(config: Config, store: Store, location: Any,
                   default_format: str) -> Iterator[LogObject]:
    from imageprov.sources.azure import clients
    from imageprov.sources.azure.blob_locations import BlobLogs

    # A file is read in the format of the list its location is in, unless the
    # location names one, as a blob is: a record could otherwise pass for another
    # cloud's, and its events would be lost.
    if location.path is not None:
        yield from LocalFolder(location.path, lambda _path: location.subscription,
                               location.format or default_format).objects()
        return
    container = clients.blob_container(config.azure, location)
    blobs = BlobLogs(container, location.prefix, location.format or default_format,
                     location.reread, store.checkpoint, location.subscription)
    yield from blobs.objects()


def _azure_log_jobs(config: Config, store: Store, on_file: Callable[[str], None] | None,
                    stop: threading.Event | None) -> list[LogJob]:
    jobs: list[LogJob] = []
    for kind, locations in (("azure-activity", config.azure.activity_logs),
                            ("acr-events", config.azure.acr_events)):
        for location in locations:
            def read(location: Any = location, kind: str = kind) -> IngestSummary:
                objects = _until(stop, _azure_objects(config, store, location, kind))
                return ingest(store, objects, config.workers, on_file, config.batch_files)
            jobs.append((location.name, kind, read))
    return jobs


def _gcp_log_jobs(config: Config, store: Store, on_file: Callable[[str], None] | None,
                  stop: threading.Event | None) -> list[LogJob]:
    def read(location: GcpLogLocation) -> IngestSummary:
        folder = LocalFolder(location.path, format=audit_documents.FORMAT.name)
        return ingest(store, _until(stop, folder.objects()), config.workers, on_file,
                      config.batch_files)

    return [(str(location.path), "gcp-audit", lambda location=location: read(location))
            for location in config.gcp.audit_logs]
def _oci_log_jobs(config: Config, store: Store, on_file: Callable[[str], None] | None,
                  stop: threading.Event | None) -> list[LogJob]:
    # Push notifications are stored by the receiver as they arrive; the log step
    # reads the signatures and attestations kept in each registry.
    def job(item: RegistrySource) -> IngestSummary:
        evidence = RegistryEvidence(registry_client(item), item.host, item.repositories)
        return ingest(store, _until(stop, evidence.objects()), config.workers, on_file,
                      config.batch_files)
    return [(f"cosign:{item.host}", "cosign", lambda item=item: job(item))
            for item in config.registries if item.signatures]


def log_jobs(config: Config, store: Store, on_file: Callable[[str], None] | None = None,
             stop: threading.Event | None = None) -> list[LogJob]:
    """Return every configured log location as a name, a log kind and a call that
    reads it into the store."""
    return (_aws_log_jobs(config, store, on_file, stop)
            + _azure_log_jobs(config, store, on_file, stop)
            + _gcp_log_jobs(config, store, on_file, stop)
            + _oci_log_jobs(config, store, on_file, stop))


def run_logs(config: Config, store: Store, summary: CycleSummary,
             on_file: Callable[[str], None] | None = None,
             stop: threading.Event | None = None) -> None:
    """Read every configured log location; a failed location is logged and skipped.

    After a trail location with `public_keys` is read, its digests are checked.
    """
    checked_locations = {location.name: location for location in config.aws.cloudtrail
                         if location.public_keys is not None}
    for name, kind, job in log_jobs(config, store, on_file, stop):
        try:
            result = job()
        except SourceError as error:
            logger.error("log source failed: %s", error)
            summary.sources_failed.append(name)
            continue
        checked = checked_locations.get(name)
        if checked is not None:
            try:
                check_digests(config, store, checked, summary)
            except SourceError as error:
                logger.error("digest check failed: %s", error)
                summary.sources_failed.append(f"{name} (digests)")
        accounts, regions = _scopes(result.scopes)
        logger.info(
            "source=%s kind=%s account=%s region=%s files=%d skipped=%d records=%d "
            "events=%d new_events=%d quarantined=%d seconds=%.2f", name, kind, accounts,
            regions, result.files,
            result.skipped, result.records, result.events, result.new_events,
            result.problems, result.seconds)
        _add(summary.logs, result)
        _add(summary.logs_by_kind.setdefault(kind, IngestSummary()), result)


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
        client = aws_client(_boto_session(config.aws.api), "s3", location.region)
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
    for name in ("files", "skipped", "records", "events", "new_events", "problems",
                 "files_failed"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.seconds += part.seconds
    total.scopes.update(part.scopes)
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
    # The gate takes every verdict as confirmed at `now`, not only the changed ones.
    store.mark_evaluated(policy.hash, now)
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
