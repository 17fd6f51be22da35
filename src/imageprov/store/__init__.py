"""Persistence for images, events, log coverage, quarantine and verdicts."""

from imageprov.store.repository import Store, TagMove

__all__ = ["Store", "TagMove"]
