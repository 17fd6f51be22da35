"""The database tables: one declarative base on one metadata."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from imageprov.model import MAX_SPAN_ACCOUNT, MAX_SPAN_REGION

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned with its UTC offset.

    SQLite keeps no offset, so every value is converted to UTC on the way in and
    marked as UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ImageRow(Base):
    """An image the inventory has seen, with the last values it reported."""

    __tablename__ = "images"
    __table_args__ = (
        Index("ix_images_repository", "registry_host", "repository"),
        Index("ix_images_digest", "digest"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(512), unique=True)
    platform: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(128))
    region: Mapped[str] = mapped_column(String(64))
    native_id: Mapped[str] = mapped_column(String(256), index=True)
    digest: Mapped[str | None] = mapped_column(String(80))
    registry_host: Mapped[str | None] = mapped_column(String(256))
    repository: Mapped[str | None] = mapped_column(String(256))
    names: Mapped[list[str]] = mapped_column(JSON)
    tags: Mapped[dict[str, str]] = mapped_column(JSON)
    created: Mapped[datetime | None] = mapped_column(UtcDateTime)
    state: Mapped[str | None] = mapped_column(String(32))
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    source_image: Mapped[str | None] = mapped_column(String(256))
    source_region: Mapped[str | None] = mapped_column(String(64))
    inventory_source: Mapped[str] = mapped_column(String(256))
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)


class EventRow(Base):
    """One audit-log event that concerns an image, kept with its raw record."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_target", "platform", "target"),
        Index("ix_events_repository_tag", "registry_host", "repository", "tag"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    source: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(128))
    time: Mapped[datetime] = mapped_column(UtcDateTime)
    action: Mapped[str] = mapped_column(String(160))
    effect: Mapped[str] = mapped_column(String(16))
    platform: Mapped[str] = mapped_column(String(16))
    account: Mapped[str] = mapped_column(String(128))
    region: Mapped[str] = mapped_column(String(64))
    principal: Mapped[dict[str, Any]] = mapped_column(JSON)
    principal_id: Mapped[str] = mapped_column(String(512))
    source_ip: Mapped[str | None] = mapped_column(String(256))
    user_agent: Mapped[str | None] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(String(256))
    registry_host: Mapped[str | None] = mapped_column(String(256))
    repository: Mapped[str | None] = mapped_column(String(256))
    tag: Mapped[str | None] = mapped_column(String(256))
    source_image: Mapped[str | None] = mapped_column(String(256))
    source_region: Mapped[str | None] = mapped_column(String(64))
    shared_with: Mapped[list[str]] = mapped_column(JSON)
    unshared_from: Mapped[list[str]] = mapped_column(JSON)
    error_code: Mapped[str | None] = mapped_column(String(256))
    origin_location: Mapped[str] = mapped_column(Text)
    origin_index: Mapped[int] = mapped_column(Integer)
    origin_shape: Mapped[str] = mapped_column(String(32))
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)


class LogFileRow(Base):
    """A log file or object that was read, so that a second read is recognised."""

    __tablename__ = "log_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    location: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    shape: Mapped[str] = mapped_column(String(160))
    records: Mapped[int] = mapped_column(Integer)
    image_events: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    notices: Mapped[list[str]] = mapped_column(JSON)
    read_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The hash CloudTrail digests list (of the uncompressed bytes), and the outcome
    # of the digest checks of this file: None until a digest check has run.
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    validation: Mapped[str | None] = mapped_column(String(16))
    validation_detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("sha256", name="uq_log_files_sha256"),
        # Hash on PostgreSQL: a B-tree entry is limited to about 2,700 bytes, and a
        # local path may be longer.
        Index("ix_log_files_location", "location", postgresql_using="hash"),
    )


class CoverageRow(Base):
    """The span of event times one log file covered for one account and region."""

    __tablename__ = "coverage"
    __table_args__ = (Index("ix_coverage_scope", "platform", "account", "region"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    log_file_id: Mapped[int] = mapped_column(ForeignKey("log_files.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))
    account: Mapped[str] = mapped_column(String(MAX_SPAN_ACCOUNT))
    region: Mapped[str] = mapped_column(String(MAX_SPAN_REGION))
    first: Mapped[datetime] = mapped_column(UtcDateTime)
    last: Mapped[datetime] = mapped_column(UtcDateTime)


class QuarantineRow(Base):
    """A record that could not be read, with where it was and what was wrong."""

    __tablename__ = "quarantine"
    __table_args__ = (
        UniqueConstraint("location", "record_index", "field", name="uq_quarantine_record"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    location: Mapped[str] = mapped_column(Text)
    record_index: Mapped[int] = mapped_column(Integer)
    field: Mapped[str] = mapped_column(String(256))
    error: Mapped[str] = mapped_column(Text)
    quarantined_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PolicyRow(Base):
    """A policy text as it was when verdicts were made under it."""

    __tablename__ = "policies"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    loaded_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The start of the newest evaluation of every stored image under this policy.
    evaluated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class VerdictRow(Base):
    """One verdict in an image's history; the newest row per image is current."""

    __tablename__ = "verdicts"
    __table_args__ = (Index("ix_verdicts_image_decided", "image", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16))
    flags: Mapped[list[str]] = mapped_column(JSON)
    rule: Mapped[str | None] = mapped_column(String(256))
    event_id: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(512))
    source_ip: Mapped[str | None] = mapped_column(String(256))
    policy_hash: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CheckpointRow(Base):
    """How far an incremental log source has been read, stored with what it read."""

    __tablename__ = "checkpoints"

    name: Mapped[str] = mapped_column(String(512), primary_key=True)
    position: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class LedgerEntryRow(Base):
    """One entry of the verdict ledger, a hash chain in the order `seq`.

    `content` is the canonical JSON that `content_hash` covers; `kind`, `image` and
    `verdict_id` repeat fields of it for lookups, and verification checks that they
    agree with it. `entry_hash` covers `seq`, `previous_hash` and `content_hash`.
    """

    __tablename__ = "ledger"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    image: Mapped[str] = mapped_column(String(512), index=True)
    verdict_id: Mapped[int | None] = mapped_column(Integer, index=True)
    content: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    previous_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class LedgerHeadRow(Base):
    """A signed statement that the ledger's entry `seq` has hash `entry_hash`.

    `signed_at` is kept as the exact text that was signed.
    """

    __tablename__ = "ledger_heads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    entry_hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(128))
    signed_at: Mapped[str] = mapped_column(String(40))


class ApiTokenRow(Base):
    """A bearer token of the gate's API, kept as the SHA-256 of its text."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
