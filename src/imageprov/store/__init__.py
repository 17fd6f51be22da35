"""Persistence for images, events, log coverage, quarantine and verdicts."""

from imageprov.store.repository import Store, TagMove, redact_url, scrub_url_secrets

__all__ = ["Store", "TagMove", "redact_url", "scrub_url_secrets"]
