"""The configuration file of a scan: database, policy, inventories and log locations."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from imageprov.errors import ConfigError
from imageprov.policy.schema import Duration
from imageprov.yaml_loader import UniqueKeyLoader

DEFAULT_DATABASE = "sqlite:///imageprov.db"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InventoryFile(_Strict):
    """Saved output of `aws ec2 describe-images` or `aws ecr describe-images`."""

    path: Path
    kind: Literal["ami", "ecr"]
    region: str = Field(min_length=1)
    account: str | None = None


class TrailLocation(_Strict):
    """CloudTrail files in a local folder, under a prefix of an S3 bucket, or
    announced by S3 notifications on an SQS queue."""

    path: Path | None = None
    s3_bucket: str | None = None
    sqs_queue_url: str | None = None
    lookup_events: bool = False
    prefix: str = ""
    region: str | None = None
    # For lookup_events: the event sources queried (one attribute per query is all
    # the API allows) and how far back the first query reaches.
    event_sources: list[str] = Field(
        default_factory=lambda: ["ec2.amazonaws.com", "ecr.amazonaws.com"])
    backfill: Duration = timedelta(days=7)
    # For s3_bucket: how far before the day of the last key read each listing
    # starts, in whole days, for files that arrive after a later key was read.
    reread: Duration = timedelta(days=1)
    # Saved `aws cloudtrail list-public-keys` output. When set, the digest files of
    # a folder or bucket trail are checked after each read.
    public_keys: Path | None = None

    @model_validator(mode="after")
    def _one_place(self) -> TrailLocation:
        given = [v for v in (self.path, self.s3_bucket, self.sqs_queue_url) if v is not None]
        if len(given) + int(self.lookup_events) != 1:
            raise ValueError(
                "give exactly one of path, s3_bucket, sqs_queue_url or lookup_events")
        if self.lookup_events and not self.region:
            raise ValueError("lookup_events needs the region it reads")
        if "reread" in self.model_fields_set and self.s3_bucket is None:
            raise ValueError("reread applies to s3_bucket locations only")
        if self.public_keys is not None and self.path is None and self.s3_bucket is None:
            raise ValueError("public_keys applies to path or s3_bucket locations, "
                             "whose digest files can be listed")
        return self

    @property
    def name(self) -> str:
        if self.path is not None:
            return str(self.path)
        if self.s3_bucket is not None:
            return f"s3://{self.s3_bucket}/{self.prefix}"
        if self.lookup_events:
            return f"lookup-events:{self.region}"
        return f"sqs:{(self.sqs_queue_url or '').rsplit('/', 1)[-1]}"


class AwsApi(_Strict):
    """Live inventory through boto3; endpoints and credentials follow boto3's own
    resolution (profiles, AWS_ENDPOINT_URL, environment variables)."""

    profile: str | None = None
    regions: list[str] = Field(min_length=1)
    accounts: list[str] = Field(default_factory=list)
    ami: bool = True
    ecr: bool = True


class AwsConfig(_Strict):
    api: AwsApi | None = None
    inventory_files: list[InventoryFile] = Field(default_factory=list)
    cloudtrail: list[TrailLocation] = Field(default_factory=list)


class AzureCredential(_Strict):
    """How the Azure clients authenticate; secrets come from environment variables.

    `static_token` reads a bearer token from `token_env`; `client_secret` and
    `certificate` sign in a service principal at `authority_host`.
    `managed_identity` requests its token from the instance metadata service, and
    is the only kind that contacts it.
    """

    kind: Literal["static_token", "client_secret", "certificate", "managed_identity"]
    token_env: str | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    secret_env: str | None = None
    certificate_path: Path | None = None
    authority_host: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> AzureCredential:
        needed = {"static_token": ["token_env"],
                  "client_secret": ["tenant_id", "client_id", "secret_env", "authority_host"],
                  "certificate": ["tenant_id", "client_id", "certificate_path",
                                  "authority_host"],
                  "managed_identity": []}[self.kind]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"credential kind {self.kind} needs {', '.join(missing)}")
        return self


class AzureSubscription(_Strict):
    """A subscription whose managed images and gallery image versions are listed."""

    id: str = Field(min_length=1)
    managed_images: bool = True
    gallery_images: bool = True


class AcrRegistry(_Strict):
    """A container registry listed through its data-plane API at
    `https://<login_server>`, or at `endpoint` when it is set."""

    login_server: str = Field(min_length=1)
    endpoint: str | None = None
    subscription: str | None = None
    audience: str = "https://containerregistry.azure.net"


class AzureLogLocation(_Strict):
    """Activity Log or ACR event files in a local folder, or Azure Monitor export
    blobs in a storage container. `subscription` is the account of records that
    name none."""

    path: Path | None = None
    blob_account_url: str | None = None
    connection_string_env: str | None = None
    container: str = "insights-activity-logs"
    prefix: str = "resourceId="
    format: Literal["azure-activity", "acr-events"] | None = None
    subscription: str | None = None
    reread: Duration = timedelta(hours=3)

    @model_validator(mode="after")
    def _one_place(self) -> AzureLogLocation:
        if (self.path is None) == (self.blob_account_url is None and
                                   self.connection_string_env is None):
            raise ValueError("give exactly one of path or blob_account_url "
                             "(or connection_string_env)")
        return self

    @property
    def name(self) -> str:
        if self.path is not None:
            return str(self.path)
        return f"azblob:{self.blob_account_url or self.connection_string_env}/{self.container}"


class AzureConfig(_Strict):
    """Azure inventory and logs. `arm_endpoint` has no default, so that no scan
    calls a cloud it was not pointed at; `ca_bundle` trusts a private CA."""

    arm_endpoint: str | None = None
    credential: AzureCredential | None = None
    ca_bundle: Path | None = None
    subscriptions: list[AzureSubscription] = Field(default_factory=list)
    registries: list[AcrRegistry] = Field(default_factory=list)
    activity_logs: list[AzureLogLocation] = Field(default_factory=list)
    acr_events: list[AzureLogLocation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _clients_configured(self) -> AzureConfig:
        if self.subscriptions and not self.arm_endpoint:
            raise ValueError("subscriptions need arm_endpoint, "
                             "e.g. https://management.azure.com")
        if (self.subscriptions or self.registries) and self.credential is None:
            raise ValueError("subscriptions and registries need a credential")
        return self


class GcpApi(_Strict):
    """Live inventory through the Google Cloud client libraries (REST transport).

    Credentials are always explicit, so no library falls back to Application Default
    Credentials or the metadata server: `anonymous` (stand-ins only), `token` (an
    OAuth 2.0 access token in the environment variable `token_env`) or
    `service_account_key` (a key file at `key_file`). Without an endpoint the
    libraries use their own defaults; `ca_bundle` is a PEM file of CAs that the
    endpoints' certificates are verified against.
    """

    projects: list[str] = Field(min_length=1)
    credentials: Literal["anonymous", "token", "service_account_key"]
    token_env: str | None = None
    key_file: Path | None = None
    compute_endpoint: str | None = None
    artifact_registry_endpoint: str | None = None
    ca_bundle: Path | None = None
    compute: bool = True
    # Read each Compute image's IAM policy, one call per image, to find public ones.
    iam_policies: bool = False
    # Families whose head is judged as a launch target, in every listed project.
    watched_families: list[str] = Field(default_factory=list)
    # Artifact Registry locations listed per project (us-central1, europe, ...).
    artifact_registry_locations: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _credential_source(self) -> GcpApi:
        if self.credentials == "token" and not self.token_env:
            raise ValueError("credentials: token needs token_env, the variable "
                             "that holds the access token")
        if self.credentials == "service_account_key" and self.key_file is None:
            raise ValueError("credentials: service_account_key needs key_file")
        return self


class GcpLogLocation(_Strict):
    """Exported Cloud Audit Logs in a local folder or file: a Cloud Storage sink's
    objects, Pub/Sub push bodies or `gcloud logging read --format=json` output."""

    path: Path


class GcpConfig(_Strict):
    api: GcpApi | None = None
    audit_logs: list[GcpLogLocation] = Field(default_factory=list)
class RegistrySource(_Strict):
    """An OCI distribution registry to inventory, with its signatures.

    Credentials are read from the environment variables named here, never from this
    file: `password_env` (with `username`) for basic auth and the token exchange of
    a Bearer challenge, or `token_env` for a static bearer token.
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    url: str = Field(pattern=r"^https?://[^/@\s]+/?$")
    username: str | None = None
    password_env: str | None = None
    token_env: str | None = None
    # The name images are filed under, as clients pull them; the URL's host:port
    # unless given.
    registry: str | None = None
    repositories: list[str] = Field(default_factory=list)
    tls_verify: bool = True
    ca_file: Path | None = None
    signatures: bool = True
    timeout: float = Field(default=30.0, gt=0, le=600)

    @model_validator(mode="after")
    def _one_credential(self) -> RegistrySource:
        if self.password_env and self.token_env:
            raise ValueError("give password_env or token_env, not both")
        if self.password_env and not self.username:
            raise ValueError("password_env needs username")
        return self

    @property
    def host(self) -> str:
        return self.registry or self.url.split("://", 1)[1].rstrip("/")


class Receiver(_Strict):
    """The HTTP receiver of registry notifications and Docker Hub webhooks.

    A registry POSTs to `/registry/<name>` with the shared secret in `header`
    (`Authorization: Bearer <secret>` by default); Docker Hub, which sends no
    header, POSTs to `/dockerhub/<secret>`. Secrets come from the environment.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8085, ge=0, le=65535)
    header: str = "Authorization"
    secret_env: str = "IMAGEPROV_RECEIVER_SECRET"
    dockerhub_secret_env: str | None = None
    max_body: int = Field(default=4 * 2**20, ge=1024)


class Trigger(_Strict):
    """When a daemon step runs: every `interval`, or on a five-field `cron` line (UTC)."""

    interval: Duration | None = None
    cron: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        if (self.interval is None) == (self.cron is None):
            raise ValueError("give exactly one of interval or cron")
        if self.interval is not None and self.interval.total_seconds() < 1:
            raise ValueError("interval must be at least one second")
        if self.cron is not None:
            if len(self.cron.split()) != 5:
                raise ValueError(f"cron {self.cron!r} must have five fields")
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(self.cron)
            except ValueError as error:
                raise ValueError(f"invalid cron {self.cron!r}: {error}") from None
        return self


def _every(minutes: int) -> Trigger:
    return Trigger(interval=timedelta(minutes=minutes))


class Schedule(_Strict):
    """The daemon's steps and their triggers."""

    inventory: Trigger = Field(default_factory=lambda: _every(15))
    logs: Trigger = Field(default_factory=lambda: _every(5))
    evaluate: Trigger = Field(default_factory=lambda: _every(5))


class Metrics(_Strict):
    """The address of the daemon's `/metrics` (Prometheus) and `/healthz` server."""

    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)


AdmissionMode = Literal["enforce", "warn", "audit"]


class Tls(_Strict):
    """The PEM certificate chain and private key the gate serves HTTPS with."""

    certificate: Path
    key: Path


class Admission(_Strict):
    """The admission response to a denied image: per namespace, else `mode`.

    `enforce` rejects the object, `warn` admits it with a warning for the client,
    and `audit` admits it and only records the denial in the audit annotations.
    """

    mode: AdmissionMode = "enforce"
    namespaces: dict[str, AdmissionMode] = Field(default_factory=dict)

    def mode_for(self, namespace: str | None) -> AdmissionMode:
        return self.namespaces.get(namespace or "", self.mode)


class Serve(_Strict):
    """The launch gate: its address, TLS, freshness and admission settings."""

    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    tls: Tls | None = None
    # A verdict last confirmed longer ago than this is evaluated again before it
    # decides a launch.
    max_verdict_age: Duration = timedelta(hours=1)
    # What an image with no stored record, or one still pending, gets.
    unknown_images: Literal["fail-closed", "fail-open"] = "fail-closed"
    # How often the gate looks for a changed policy file, new verdicts and
    # revoked tokens.
    refresh: Duration = timedelta(seconds=1)
    cache_size: int = Field(default=200_000, ge=1)
    access_log: bool = False
    admission: Admission = Field(default_factory=Admission)

    @model_validator(mode="after")
    def _positive_times(self) -> Serve:
        if self.refresh.total_seconds() <= 0:
            raise ValueError("refresh must be longer than zero")
        if self.max_verdict_age.total_seconds() <= 0:
            raise ValueError("max_verdict_age must be longer than zero")
        return self


class Config(_Strict):
    database: str | None = None
    policy: Path
    # Strict, so that `workers: true` is an error rather than one worker.
    workers: int = Field(default=2, ge=1, le=64, strict=True)
    # The maximum number of log files stored per transaction, which also ends at
    # 200,000 records or 10,000 image events. Larger is faster, and smaller loses
    # less work when the process is killed.
    batch_files: int = Field(default=1000, ge=1, le=10_000)
    aws: AwsConfig = Field(default_factory=AwsConfig)
    azure: AzureConfig = Field(default_factory=AzureConfig)
    gcp: GcpConfig = Field(default_factory=GcpConfig)
    registries: list[RegistrySource] = Field(default_factory=list)
    receiver: Receiver | None = None
    schedule: Schedule = Field(default_factory=Schedule)
    metrics: Metrics | None = None
    serve: Serve = Field(default_factory=Serve)
    # The Ed25519 private key (PEM, from `imageprov keys create`) that signs the
    # ledger head at the end of each cycle; without it the head is left unsigned.
    ledger_key: Path | None = None

    source_path: Path | None = None


def _resolve(base: Path, path: Path | None) -> Path | None:
    if path is None or path.is_absolute():
        return path
    return base / path


def load_config(path: str | Path) -> Config:
    """Read a configuration file; relative paths in it are taken from its folder.

    Raises:
        ConfigError: the file cannot be read or does not match the schema.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except OSError as error:
        raise ConfigError(str(path), f"cannot read the file: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(str(path), f"invalid YAML: {error}") from None
    except ValueError as error:
        raise ConfigError(str(path), f"invalid value: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "expected a mapping of settings")
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or '(top level)'}: {item['msg']}"
            for item in error.errors()
        )
        raise ConfigError(str(path), problems) from None
    base = path.parent
    aws = config.aws.model_copy(update={
        "inventory_files": [
            item.model_copy(update={"path": _resolve(base, item.path)})
            for item in config.aws.inventory_files
        ],
        "cloudtrail": [
            item.model_copy(update={"path": _resolve(base, item.path),
                                    "public_keys": _resolve(base, item.public_keys)})
            for item in config.aws.cloudtrail
        ],
    })
    credential = config.azure.credential
    if credential is not None:
        credential = credential.model_copy(update={
            "certificate_path": _resolve(base, credential.certificate_path)})
    azure = config.azure.model_copy(update={
        "credential": credential,
        "ca_bundle": _resolve(base, config.azure.ca_bundle),
        "activity_logs": [item.model_copy(update={"path": _resolve(base, item.path)})
                          for item in config.azure.activity_logs],
        "acr_events": [item.model_copy(update={"path": _resolve(base, item.path)})
                       for item in config.azure.acr_events],
    })
    registries = [item.model_copy(update={"ca_file": _resolve(base, item.ca_file)})
                  for item in config.registries]
    names = [item.name for item in registries]
    if len(names) != len(set(names)):
        raise ConfigError(str(path), "registries: a registry name is used twice")
    serve = config.serve
    if serve.tls is not None:
        serve = serve.model_copy(update={"tls": Tls(
            certificate=_resolve(base, serve.tls.certificate) or serve.tls.certificate,
            key=_resolve(base, serve.tls.key) or serve.tls.key,
        )})
    return config.model_copy(update={
        "policy": _resolve(base, config.policy), "aws": aws, "azure": azure,
        "gcp": _resolve_gcp(base, config.gcp), "registries": registries,
        "serve": serve, "source_path": path,
        "ledger_key": _resolve(base, config.ledger_key),
    })


def _resolve_gcp(base: Path, gcp: GcpConfig) -> GcpConfig:
    api = gcp.api
    if api is not None:
        api = api.model_copy(update={"key_file": _resolve(base, api.key_file),
                                     "ca_bundle": _resolve(base, api.ca_bundle)})
    return gcp.model_copy(update={
        "api": api,
        "audit_logs": [item.model_copy(update={"path": _resolve(base, item.path)})
                       for item in gcp.audit_logs],
    })


def database_url(option: str | None, config: Config | None = None) -> str:
    """Choose the database: the option, then IMAGEPROV_DATABASE_URL, then the config."""
    return (option or os.environ.get("IMAGEPROV_DATABASE_URL")
            or (config.database if config else None) or DEFAULT_DATABASE)
