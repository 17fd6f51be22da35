"""Audit-log events that create, move, share or delete images."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class EventEffect(StrEnum):
    """The change an event made to the image it names."""

    CREATE = "create"
    COPY = "copy"
    IMPORT = "import"
    PUSH = "push"
    SHARE = "share"
    UNSHARE = "unshare"
    MODIFY = "modify"
    DELETE = "delete"
    # A signature or attestation found beside an image; it creates nothing and its
    # `evidence` holds the signed material the policy verifies.
    SIGN = "sign"
    ATTEST = "attest"

    @property
    def creates(self) -> bool:
        return self in (EventEffect.CREATE, EventEffect.COPY, EventEffect.IMPORT,
                        EventEffect.PUSH)


class LogValidation(StrEnum):
    """Whether the log file an event was read from was checked against its digest.

    `validated`: a digest with a valid signature lists the file with the hash of
    the bytes that were read. `failed`: a check failed. `unvalidated`: no digest
    covers the file yet, or the source has no digests.
    """

    VALIDATED = "validated"
    FAILED = "failed"
    UNVALIDATED = "unvalidated"


class PrincipalKind(StrEnum):
    ROOT = "root"
    USER = "user"
    ROLE_SESSION = "role-session"
    FEDERATED = "federated"
    SERVICE = "service"
    SERVICE_ACCOUNT = "service-account"
    ACCOUNT = "account"
    SERVICE_PRINCIPAL = "service-principal"
    MANAGED_IDENTITY = "managed-identity"
    UNKNOWN = "unknown"


class Principal(BaseModel):
    """The identity that made a call.

    `chain` lists the identities behind a session from the outermost in: for an AWS
    assumed role, the role that issued the session, then the source identity.
    `aliases` holds the other identifiers the same identity is known by (an object id
    beside a user principal name, a unique id beside an email); a policy's principal
    patterns match `id` or any alias.
    """

    model_config = ConfigDict(frozen=True)

    kind: PrincipalKind
    id: str
    account: str | None = None
    name: str | None = None
    issuer: str | None = None
    chain: tuple[str, ...] = ()
    invoked_by: str | None = None
    native_type: str | None = None
    aliases: tuple[str, ...] = ()


class RecordOrigin(BaseModel):
    """The place a record was read from: a file or object key and its position."""

    model_config = ConfigDict(frozen=True)

    location: str
    index: int
    shape: str


# The error code of the start entry of a long-running call whose completion is
# logged as a separate entry: it never attributes, but it keeps the request.
INCOMPLETE_OPERATION = "incomplete-operation"

# The maximum length in characters the store keeps of each text field of an event,
# by field name, with `principal.id` for the principal's. PostgreSQL rejects a longer
# value, and with it the whole batch, so an event with one is quarantined first.
MAX_EVENT_TEXT = {
    "key": 300, "source": 32, "event_id": 128, "action": 160, "platform": 16,
    "account": 128, "region": 64, "principal.id": 512, "source_ip": 256,
    "target": 256, "registry": 256, "repository": 256, "tag": 256,
    "source_image": 256, "source_region": 64, "error_code": 256,
}


class CreationEvent(BaseModel):
    """One successful or failed call that concerns an image.

    `target` is the native id of the image the event acts on (an AMI id or a digest),
    and `repository`/`tag` place a container image. A failed call keeps its
    `error_code` and never attributes an image. A share that replaces every earlier
    grant (an IAM policy set whole) lists `*` in `unshared_from`. `log_validation`
    and `validation_detail` are set by the store from the digest checks of the
    event's file; a source leaves them at their defaults.
    """

    model_config = ConfigDict(frozen=True)

    source: str
    key: str
    event_id: str
    time: datetime
    action: str
    effect: EventEffect
    platform: str
    account: str
    region: str
    principal: Principal
    source_ip: str | None = None
    user_agent: str | None = None
    target: str | None = None
    registry: str | None = None
    repository: str | None = None
    tag: str | None = None
    source_image: str | None = None
    source_region: str | None = None
    shared_with: tuple[str, ...] = ()
    unshared_from: tuple[str, ...] = ()
    error_code: str | None = None
    origin: RecordOrigin
    # For sign and attest events: the JSON of the signed material, unverified.
    evidence: bytes | None = None
    log_validation: LogValidation = LogValidation.UNVALIDATED
    validation_detail: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error_code is None
