"""Persistence for images, events, log coverage, quarantine and verdicts."""

from imageprov.store.repository import (
    ApiToken,
    Store,
    TagMove,
    redact_url,
    scrub_url_secrets,
)

__all__ = ["ApiToken", "Store", "TagMove", "redact_url", "scrub_url_secrets"]
