"""A store whose event writes fail part way through a run, as a full disk would."""

from __future__ import annotations

from typing import Any

import pytest

from imageprov.store import Store


def fail_event_write(monkeypatch: pytest.MonkeyPatch, store: Store, number: int = 2) -> None:
    """Make the `number`th batch of event rows that `store` writes raise
    `RuntimeError("disk full")`; the other batches are written."""
    original = store._write_event_values
    calls = {"count": 0}

    def write(session: Any, values: Any) -> int:
        calls["count"] += 1
        if calls["count"] == number:
            raise RuntimeError("disk full")
        return original(session, values)

    monkeypatch.setattr(store, "_write_event_values", write)
