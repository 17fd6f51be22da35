"""Verdicts as a rich table, JSON lines or CSV."""

from __future__ import annotations

import csv
import re
import io
from collections.abc import Iterable
from typing import Any

import orjson
from rich.markup import escape
from rich.table import Table

from imageprov.model import Image, Verdict
from imageprov.report.formats import csv_row

# Control characters, and the format characters that reorder or break lines of text
# (bidirectional overrides and isolates, line and paragraph separators).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def plain(text: str) -> str:
    """Return `text` with every control character replaced, for a terminal.

    User agents, names, ARNs and file names come from whoever made the call or wrote
    the file, and an escape sequence among them would act on the reader's terminal.
    """
    return _CONTROL.sub("\N{REPLACEMENT CHARACTER}", text)


def safe(text: str) -> str:
    """Return input text fit for a rich console: no markup, no control characters."""
    return escape(plain(text))


def clipped(text: str, limit: int = 512) -> str:
    """Return `text`, or its first `limit` characters and its length where longer.

    A user agent has no length limit in a record, and a table cell of megabytes
    takes seconds to lay out.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def safe_lines(text: str) -> str:
    """Return `safe(text)` with the line breaks of a multi-line message kept, and
    its tabs, which drivers indent their hints with, as spaces."""
    return "\n".join(safe(line.expandtabs(4)) for line in text.split("\n"))


STATUS_STYLE = {
    "approved": "green",
    "flagged": "bold red",
    "unattributed": "yellow",
    "excepted": "cyan",
    "pending": "blue",
}
FIELDS = ["image", "platform", "kind", "account", "region", "status", "flags", "actor",
          "source_ip", "event_id", "rule", "reason", "policy_hash", "decided_at"]


def verdict_record(verdict: Verdict, image: Image | None) -> dict[str, Any]:
    return {
        "image": verdict.image,
        "platform": image.platform.value if image else None,
        "kind": image.kind.value if image else None,
        "account": image.account if image else None,
        "region": image.region if image else None,
        "status": verdict.status.value,
        "flags": [flag.value for flag in verdict.flags],
        "actor": verdict.actor,
        "source_ip": verdict.source_ip,
        "event_id": verdict.event_id,
        "rule": verdict.rule,
        "reason": verdict.reason,
        "policy_hash": verdict.policy_hash,
        "decided_at": verdict.decided_at.isoformat(),
    }


def as_json(records: Iterable[dict[str, Any]]) -> str:
    """Return a JSON array with one object per image."""
    return orjson.dumps(list(records), option=orjson.OPT_INDENT_2).decode() + "\n"


def as_csv(records: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(csv_row(record))
    return buffer.getvalue()


def as_table(records: Iterable[dict[str, Any]]) -> Table:
    table = Table(title="imageprov verdicts", show_lines=False, expand=False)
    for name in ("image", "status", "flags", "actor", "source ip", "rule"):
        table.add_column(name, overflow="fold")
    for record in records:
        style = STATUS_STYLE.get(record["status"], "")
        table.add_row(safe(record["image"]), f"[{style}]{record['status']}[/]",
                      ", ".join(record["flags"]), safe(record["actor"] or "-"),
                      safe(record["source_ip"] or "-"), safe(record["rule"] or "-"))
    return table
