"""The `imageprov` command line."""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy.exc import DBAPIError

from imageprov import cycle, formats
from imageprov.cli import explain as explain_view
from imageprov.cli import gate as gate_commands
from imageprov.cli import render
from imageprov.cli._common import _database, _fail, _open_store, err
from imageprov.cli.evidence import evidence_app, keys_app, ledger_app
from imageprov.cli.render import safe, safe_lines
from imageprov.config import database_url, load_config
from imageprov.errors import ImageprovError, SourceError
from imageprov.ingest import IngestSummary
from imageprov.ingest import ingest as ingest_objects
from imageprov.ledger.keys import load_private_key
from imageprov.model import LogDocument, Platform, RecordProblem, VerdictStatus
from imageprov.policy import load_policy
from imageprov.policy.schema import policy_warnings
from imageprov.report.formats import csv_row
from imageprov.sources.aws.trail_locations import LocalTrail, S3Trail
from imageprov.sources.fields import shown
from imageprov.store import Store, redact_url, scrub_url_secrets

# A traceback's local variables can contain record text and credentials, so none is shown.
app = typer.Typer(no_args_is_help=True, add_completion=False,
                  pretty_exceptions_show_locals=False,
                  help="Attribute every cloud image to the event that created it and "
                       "judge it against an approved-builder policy.")
policy_app = typer.Typer(no_args_is_help=True, help="Work with policy files.")
db_app = typer.Typer(no_args_is_help=True, help="Manage the database schema.")
quarantine_app = typer.Typer(no_args_is_help=True, help="Records that could not be read.")
app.add_typer(policy_app, name="policy")
app.add_typer(db_app, name="db")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(gate_commands.token_app, name="token")
app.add_typer(keys_app, name="keys")
app.add_typer(ledger_app, name="ledger")
app.add_typer(evidence_app, name="evidence")

# Piped tables are 200 columns wide, where rich would assume 80; COLUMNS overrides.
out = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200)

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database", help="SQLAlchemy database URL; defaults to "
                 "IMAGEPROV_DATABASE_URL, then the config file, then sqlite:///imageprov.db."),
]


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Configuration file whose `database` to use."),
]


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


class _TerminalFormatter(logging.Formatter):
    """Log lines with the control characters of their message replaced.

    Warnings quote file names and record fields, and an escape sequence among them
    would act on the reader's terminal. The lines after the first of a message,
    such as each problem of an invalid policy, are indented, so that a line break
    in a record field cannot forge a log line of its own.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802
        lines = super().formatMessage(record).split("\n")
        return "\n  ".join(render.plain(line) for line in lines)


@app.callback()
def main(
    log_level: Annotated[str, typer.Option(envvar="IMAGEPROV_LOG_LEVEL",
                                           help="Level of the imageprov logger.")] = "INFO",
) -> None:
    logger = logging.getLogger("imageprov")
    level = log_level.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise typer.BadParameter(
            f"{log_level!r} is not a level; use DEBUG, INFO, WARNING, ERROR or CRITICAL",
            param_hint="--log-level")
    logger.setLevel(level)
    if not logger.handlers:
        # Plain lines, one per event, so that the key=value summaries stay greppable.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_TerminalFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
        logger.addHandler(handler)
        logger.propagate = False


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=True,
                    disable=not err.is_terminal)


@app.command()
def scan(
    config: Annotated[Path, typer.Option("--config", help="Configuration file (YAML).")],
    database: DatabaseOption = None,
    show: Annotated[bool, typer.Option(help="Print the verdict table at the end.")] = True,
) -> None:
    """Run one cycle: inventory, read audit logs, judge every image, store verdicts."""
    try:
        settings = load_config(config)
        # The policy and the ledger key are read before any cloud call or database
        # write, so a bad one fails the scan before it starts.
        policy, text = load_policy(settings.policy)
        if settings.ledger_key is not None:
            load_private_key(settings.ledger_key)
    except ImageprovError as error:
        raise _fail(error) from error
    store = _open_store(database_url(database, settings))
    try:
        with _progress() as progress:
            task = progress.add_task("reading logs", total=None)
            summary = cycle.run_cycle(settings, store, policy, text,
                                      on_file=lambda _: progress.advance(task))
    except ImageprovError as error:
        raise _fail(error) from error
    logs = summary.logs
    err.print(f"images {summary.images}, log files {logs.files} read and {logs.skipped} "
              f"already read, records {logs.records}, image events {logs.events} "
              f"({logs.new_events} new), quarantined {logs.problems}, verdicts changed "
              f"{summary.verdicts_changed}", highlight=False)
    if show:
        _print_verdicts(store, OutputFormat.TABLE)
    store.close()
    for problem in summary.digest_problems[:20]:
        err.print(f"digest check failed: {safe(str(problem))}", highlight=False)
    if summary.sources_failed:
        err.print(f"[red]sources failed:[/] {safe(', '.join(summary.sources_failed))}",
                  highlight=False)
    if logs.files_failed:
        err.print(f"[red]{logs.files_failed} log file(s) could not be read at all[/]; "
                  "see `imageprov quarantine list`", highlight=False)
    # A failed digest check is evidence that the trail was changed, so the scan
    # fails as loudly as a source that could not be read, or a lost log file.
    if summary.sources_failed or summary.digest_problems or logs.files_failed:
        raise typer.Exit(code=1)


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", help="Configuration file (YAML).")],
    database: DatabaseOption = None,
) -> None:
    """Run the daemon: inventory, log reading and evaluation on their schedules."""
    from imageprov.daemon import Daemon

    try:
        settings = load_config(config)
        load_policy(settings.policy)
        if settings.ledger_key is not None:
            load_private_key(settings.ledger_key)
    except ImageprovError as error:
        raise _fail(error) from error
    store = _open_store(database_url(database, settings))
    try:
        Daemon(settings, store).run()
    except ImageprovError as error:
        raise _fail(error) from error
    finally:
        store.close()


@app.command()
def receive(
    config: Annotated[Path, typer.Option("--config", help="Configuration file (YAML).")],
    database: DatabaseOption = None,
) -> None:
    """Receive registry notifications and Docker Hub webhooks into the database."""
    import signal

    from imageprov.receiver import AsgiServer, build_receiver

    try:
        settings = load_config(config)
        if settings.receiver is None:
            raise ImageprovError(f"{config}: no receiver section")
        store = _open_store(database_url(database, settings))
        app_ = build_receiver(settings, store)
        server = AsgiServer(app_, settings.receiver.host, settings.receiver.port)
    except (ImageprovError, OSError) as error:
        raise _fail(error) from error
    signal.signal(signal.SIGTERM, lambda *_: server.server.shutdown())
    err.print(f"receiving on http://{safe(settings.receiver.host)}:{server.port}",
              highlight=False)
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        server.server.shutdown()
    finally:
        server.close()
        store.close()


@app.command()
def ingest(
    paths: Annotated[list[str], typer.Argument(help="Files, folders or s3://bucket/prefix.")],
    database: DatabaseOption = None,
    workers: Annotated[int, typer.Option(
        min=1, help="Files read at once: threads for CloudTrail log files of 64 KiB or "
                    "more, processes for the other files.")] = 2,
    log_format: Annotated[str | None, typer.Option(
        "--format", help="Log format of every file; recognised per file when omitted.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Read audit-log files or folders into the database without judging images."""
    if log_format is not None and log_format not in formats.BY_NAME:
        raise _fail(ImageprovError(
            f"unknown log format {log_format!r}; use one of {', '.join(sorted(formats.BY_NAME))}"))
    store = _open_store(_database(database, config))
    failed = 0
    try:
        with _progress() as progress:
            for path in paths:
                # A missing path is quarantined like an unreadable file, so the
                # others are still read and the exit code reports the loss.
                source = _trail(path, log_format, quarantine_bad_path=True,
                                known=store.known_locations)
                task = progress.add_task(f"reading {safe(path)}", total=None)
                try:
                    result = ingest_objects(store, source.objects(), workers,
                                            lambda _: progress.advance(task))
                except SourceError as error:
                    # A bucket that cannot be listed loses its files, not the
                    # other paths; files stored before the failure stay stored.
                    _quarantine_path(store, path, str(error))
                    failed += 1
                    continue
                _print_ingested(path, result)
                failed += result.files_failed
    except ImageprovError as error:
        raise _fail(error) from error
    finally:
        store.close()
    if failed:
        # Everything readable is stored; the exit code tells a script that a whole
        # file was lost (`imageprov quarantine list` names it).
        err.print(f"[red]{failed} file(s) could not be read at all[/]; see "
                  "`imageprov quarantine list`", highlight=False)
        raise typer.Exit(code=1)


def _quarantine_path(store: Store, path: str, detail: str) -> None:
    err.print(f"[red]error:[/] {safe(detail)}", highlight=False)
    document = LogDocument(location=path, source="cloudtrail", platform="aws")
    document.problems.append(RecordProblem(path, -1, "(file)", detail))
    store.record_problems(document)


def _print_ingested(path: str, result: IngestSummary) -> None:
    err.print(f"{safe(path)}: files {result.files} read and {result.skipped} already "
              f"read, records {result.records}, image events {result.events} "
              f"({result.new_events} new), quarantined {result.problems}, "
              f"{result.records_per_second:,.0f} records/s", highlight=False)
    for notice, count in sorted(result.notices.items()):
        # Notices quote record fields, such as an EventBridge event's detail-type.
        err.print(f"  {count} file(s): {safe(notice)}", highlight=False)


def _trail(path: str, log_format: str | None, quarantine_bad_path: bool = False,
           known: Callable[[list[str]], set[str]] | None = None) -> LocalTrail | S3Trail:
    if path.startswith("s3://"):
        import boto3

        bucket, _, prefix = path[5:].partition("/")
        # Objects read before at the same location are not downloaded again.
        return S3Trail(cycle.aws_client(boto3.Session(), "s3", None), bucket, prefix,
                       known=known, format=log_format)
    return LocalTrail(path, log_format, quarantine_bad_path)


def _print_verdicts(store: Store, output: OutputFormat, status: str | None = None,
                    platform: str | None = None, include_gone: bool = False) -> None:
    images = {image.ref: image for image in store.images(include_gone)}
    records = [
        render.verdict_record(verdict, images[ref])
        for ref, verdict in store.current_verdicts().items() if ref in images
    ]
    records = [r for r in records if (status is None or r["status"] == status)
               and (platform is None or r["platform"] == platform)]
    if output is OutputFormat.JSON:
        sys.stdout.write(render.as_json(records))
    elif output is OutputFormat.CSV:
        sys.stdout.write(render.as_csv(records))
    else:
        out.print(render.as_table(records))


@app.command()
def verdicts(
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = (
        OutputFormat.TABLE),
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    platform: Annotated[str | None, typer.Option(help="Only this platform.")] = None,
    include_gone: Annotated[bool, typer.Option(
        "--include-gone", help="Also images the last inventory no longer listed.")] = False,
    database: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Print the current verdict of every image that exists."""
    if status is not None and status not in {s.value for s in VerdictStatus}:
        raise _fail(ImageprovError(
            f"unknown status {status!r}; use one of "
            f"{', '.join(s.value for s in VerdictStatus)}"))
    if platform is not None and platform not in {p.value for p in Platform}:
        raise _fail(ImageprovError(
            f"unknown platform {platform!r}; use one of "
            f"{', '.join(p.value for p in Platform)}"))
    store = _open_store(_database(database, config), existing=True)
    _print_verdicts(store, output, status, platform, include_gone)
    store.close()


@app.command()
def explain(
    image: Annotated[str, typer.Argument(help="Image ARN, AMI id, reference or digest.")],
    database: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Show the event, actor, address, rule and history behind an image's verdict."""
    store = _open_store(_database(database, config), existing=True)
    try:
        found = store.find_images(image)
        if not found and image.lower().startswith("/subscriptions/"):
            # Azure resource ids are stored lower-cased and compared without case.
            found = store.find_images(image.strip().rstrip("/").lower())
        if not found:
            raise _fail(ImageprovError(f"no image {shown(image, 120)} in {store.display_url}"))
        for one in found:
            explain_view.show(out, store, one)
    finally:
        store.close()


def _expiry_text(expires: datetime) -> str:
    """Return when an exception expired, as the policy file gives it: a bare date
    expires at midnight UTC after it."""
    if (expires.hour, expires.minute, expires.second, expires.microsecond) == (0, 0, 0, 0):
        return f"at the end of {(expires - timedelta(days=1)).date().isoformat()} UTC"
    return f"at {expires.isoformat()}"



@policy_app.command("check")
def policy_check(
    path: Annotated[Path, typer.Argument(help="Policy file (YAML).")],
) -> None:
    """Validate a policy file; exit non-zero and list every problem if it is invalid."""
    try:
        policy, _ = load_policy(path)
    except ImageprovError as error:
        raise _fail(error) from error
    out.print(f"{safe(str(path))}: valid, {len(policy.builders)} builder(s), "
              f"{len(policy.exceptions)} exception(s), sha256 {policy.hash}",
              highlight=False, soft_wrap=True)
    now = datetime.now(UTC)
    # Each warning names the file, so that a check of several files stays readable.
    where = safe(str(path))
    for index, exception in enumerate(policy.exceptions):
        if exception.expires <= now:
            err.print(f"warning: {where}: exceptions[{index}]: the exception for "
                      f"{safe(exception.image)} expired {_expiry_text(exception.expires)} "
                      "and no longer applies", highlight=False)
    for warning in policy_warnings(policy):
        err.print(f"warning: {where}: {safe(warning)}", highlight=False)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    database: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Migrate the database schema to the newest (or the given) revision."""
    url = _database(database, config)
    try:
        store = Store.open(url, upgrade=False)
        store.upgrade(revision)
    except Exception as error:  # noqa: BLE001 - reported to the user as is
        detail = scrub_url_secrets(str(error), url)
        raise _fail(ImageprovError(f"migration of {redact_url(url)} failed: "
                                   f"{type(error).__name__}: {detail}")) from error
    out.print(f"{safe(store.display_url)}: at revision {safe(revision)}",
              highlight=False, soft_wrap=True)
    store.close()


@quarantine_app.command("list")
def quarantine_list(
    limit: Annotated[int, typer.Option(min=1, help="Rows to show.")] = 100,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.TABLE,
    database: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """List quarantined records with their file, record index, field and error."""
    store = _open_store(_database(database, config), existing=True)
    rows = store.quarantined(limit)
    store.close()
    records = [{"source": r.source, "location": r.location, "record": r.record_index,
                "field": r.field, "error": r.error,
                "quarantined_at": r.quarantined_at.isoformat()} for r in rows]
    if output is OutputFormat.JSON:
        import orjson

        sys.stdout.write(orjson.dumps(records, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if output is OutputFormat.CSV:
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=list(records[0]) if records else
                                ["source", "location", "record", "field", "error",
                                 "quarantined_at"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(csv_row(record) for record in records)
        return
    from rich.table import Table

    table = Table(title=f"quarantined records (first {limit})")
    columns = ("source", "location", "record", "field", "error")
    for name in columns:
        table.add_column(name, overflow="fold")
    for record in records:
        table.add_row(*(safe(str(record[name])) for name in columns))
    out.print(table)



class ReportFormat(StrEnum):
    HTML = "html"
    JSON = "json"
    CSV = "csv"
    OCSF = "ocsf"


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(ImageprovError(
            f"invalid --since {text!r}; give a date or time such as 2026-11-30 or "
            "2026-11-30T08:00:00Z")) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def report(
    output: Annotated[ReportFormat, typer.Option("--format", help="Report format.")] = (
        ReportFormat.HTML),
    out_path: Annotated[Path | None, typer.Option("--out", help="File to write; "
                                                  "standard output when left out.")] = None,
    platform: Annotated[str | None, typer.Option(help="Only this platform.")] = None,
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Only images whose verdict was decided at or after this date or time "
             "(UTC unless an offset is given); the chart starts there too.")] = None,
    include_gone: Annotated[bool, typer.Option(
        "--include-gone", help="Also images the last inventory no longer listed.")] = False,
    database: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Write a baseline report of every image: counts, a timeline and the images."""
    from imageprov.report import Filters, build_report
    from imageprov.report.formats import to_csv, to_json
    from imageprov.report.html import to_html
    from imageprov.report.ocsf import to_ocsf

    if status is not None and status not in {s.value for s in VerdictStatus}:
        raise _fail(ImageprovError(
            f"unknown status {status!r}; use one of "
            f"{', '.join(s.value for s in VerdictStatus)}"))
    filters = Filters(platform=platform, account=account, status=status,
                      since=_since(since), include_gone=include_gone)
    store = _open_store(_database(database, config), existing=True)
    try:
        result = build_report(store, filters)
    finally:
        store.close()
    writers = {ReportFormat.HTML: lambda: to_html(result).encode(),
               ReportFormat.JSON: lambda: to_json(result),
               ReportFormat.CSV: lambda: to_csv(result).encode(),
               ReportFormat.OCSF: lambda: to_ocsf(result)}
    data = writers[output]()
    if out_path is None:
        sys.stdout.buffer.write(data)
        return
    try:
        out_path.write_bytes(data)
    except OSError as error:
        raise _fail(ImageprovError(f"cannot write {out_path}: {error}")) from error
    err.print(f"{safe(str(out_path))}: {len(result.rows)} images, "
              + ", ".join(f"{k} {v}" for k, v in result.status_counts.items()),
              highlight=False)


@app.command("validate-logs")
def validate_logs(
    path: Annotated[str, typer.Argument(help="A trail folder in the AWSLogs/... layout, "
                                             "or s3://bucket/prefix.")],
    public_keys: Annotated[Path, typer.Option(
        "--public-keys", help="Saved output of `aws cloudtrail list-public-keys`.")],
    allow_unlisted: Annotated[bool, typer.Option(
        "--allow-unlisted", help="Accept log files that no digest lists yet, such as the "
        "last hour's, whose digest CloudTrail has not delivered.")] = False,
) -> None:
    """Check a trail's log files against its digests, with no database.

    Exits 1 when a check fails, and when a log file is listed in no valid digest
    unless `--allow-unlisted` is given: removing the digests must not pass.
    """
    from imageprov.sources.aws import trail_digests

    try:
        keys = trail_digests.load_public_keys(public_keys)
        trail = _trail(path, None)
        if isinstance(trail, S3Trail):
            digests = trail_digests.s3_digests(trail.client, trail.bucket, trail.folders())
        else:
            digests = trail_digests.local_digests(trail.path)
        result = trail_digests.validate_digests(digests, keys)
        hashes = list(trail_digests.content_hashes(trail.objects()))
    except ImageprovError as error:
        raise _fail(error) from error
    outcomes, missing = trail_digests.match_log_files(result, hashes)
    problems = result.problems + missing
    states = Counter(outcome.value for outcome, _ in outcomes.values())
    out.print(f"{safe(path)}: {result.digests} digests, {result.valid} valid; "
              f"log files {states['validated']} validated, {states['failed']} failed, "
              f"{states['unvalidated']} not listed in any valid digest", highlight=False,
              soft_wrap=True)
    for problem in problems:
        out.print(f"  {safe(str(problem))}", highlight=False, soft_wrap=True)
    unlisted = states["unvalidated"] and not allow_unlisted
    if unlisted:
        out.print(f"  {states['unvalidated']} log file(s) are listed in no valid digest, so "
                  "nothing shows they are the files CloudTrail wrote", highlight=False)
    if problems or unlisted:
        raise typer.Exit(code=1)
@app.command()
def serve(
    config: Annotated[Path, typer.Option("--config", help="Configuration file (YAML).")],
    database: DatabaseOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on; defaults to "
                                             "serve.host of the config.")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port to listen on; "
                                             "defaults to serve.port.")] = None,
) -> None:
    """Run the launch gate: the HTTP API and the Kubernetes admission webhook."""
    gate_commands.serve_gate(config, database, host, port, _open_store, _fail)


@app.command()
def check(
    image: Annotated[str, typer.Argument(
        help="AMI id or ARN, image id, or container reference by digest or tag; `-` "
             "reads a Terraform external query {\"image\": ...} from stdin.")],
    url: Annotated[str | None, typer.Option(envvar="IMAGEPROV_GATE_URL",
                                            help="Base URL of the gate.")] = None,
    token_file: Annotated[Path | None, typer.Option(
        help="File holding the bearer token; else IMAGEPROV_TOKEN is read.")] = None,
    ca_file: Annotated[Path | None, typer.Option(
        help="PEM file of the CA that signed the gate's certificate.")] = None,
    output: Annotated[gate_commands.CheckFormat, typer.Option(
        "--format", help="text, or json (an object of strings, for Terraform).")] = (
        gate_commands.CheckFormat.TEXT),
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the "
                                           "gate.")] = 10.0,
) -> None:
    """Ask the gate whether an image may be launched: exit 0 allows, 1 denies, 2 fails."""
    # The token is read from the environment only, never from the command line,
    # where other users of the machine could read it.
    token = os.environ.get("IMAGEPROV_TOKEN")
    code = gate_commands.check_image(image, url, token, token_file, ca_file, output,
                                     timeout, out, err)
    raise typer.Exit(code=code)


@gate_commands.token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="A name for the token, such as the "
                                        "client that uses it.")],
    database: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a bearer token and print it once; only its SHA-256 is stored."""
    if not name.strip() or len(name) > 128 or not name.isprintable():
        raise _fail(ImageprovError(
            "a token name must be 1 to 128 printable characters"))
    from imageprov.api import token_hash

    store = _open_store(_database(database, config))
    token = gate_commands.new_token()
    try:
        store.create_token(name, token_hash(token))
    except ValueError as error:
        raise _fail(ImageprovError(str(error))) from error
    finally:
        store.close()
    sys.stdout.write(token + "\n")
    err.print(f"token {safe(repr(name))} created; it is shown only now",
              highlight=False)


@gate_commands.token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="Name of the token to revoke.")],
    database: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """Revoke a token; a running gate rejects it within serve.refresh."""
    store = _open_store(_database(database, config), existing=True)
    try:
        revoked = store.revoke_token(name)
    finally:
        store.close()
    if not revoked:
        raise _fail(ImageprovError(f"no active token named {name!r}"))
    err.print(f"token {safe(repr(name))} revoked", highlight=False)


@gate_commands.token_app.command("list")
def token_list(
    database: DatabaseOption = None,
    config: ConfigOption = None,
) -> None:
    """List tokens by name with their creation and revocation times."""
    store = _open_store(_database(database, config), existing=True)
    try:
        tokens = store.tokens()
    finally:
        store.close()
    for item in tokens:
        revoked = item.revoked_at.isoformat() if item.revoked_at else "active"
        out.print(f"{safe(item.name)}\t{item.created_at.isoformat()}\t{revoked}",
                  highlight=False)


def run() -> None:
    """Run the command line. A database error that a command did not handle, such
    as a write to a read-only database, is reported in one line and exits 2."""
    try:
        app(prog_name="imageprov")
    except DBAPIError as error:
        # The statement and its parameters are left out, because they contain record text.
        detail = str(error.orig).strip() or type(error.orig).__name__
        err.print(f"[bold red]error:[/] the database failed: "
                  f"{safe_lines(f'{type(error.orig).__name__}: {detail}')}",
                  markup=True, highlight=False)
        sys.exit(2)
