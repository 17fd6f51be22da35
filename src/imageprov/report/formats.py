"""Reports as JSON and CSV, and the readers that load them back."""

from __future__ import annotations

import csv
import re
import io
from typing import Any

import orjson

from imageprov.report import FIELDS, Report

FORMAT = "imageprov-report/1"


def to_json(report: Report) -> bytes:
    """Return the report as one JSON document: filters, counts, timeline and rows."""
    document = {
        "format": FORMAT,
        "generated_at": report.generated_at.isoformat(),
        "filters": report.filters.as_dict(),
        "counts": {"status": report.status_counts, "flags": report.flag_counts},
        "timeline": [{"day": day, "counts": counts} for day, counts in report.timeline],
        "images": report.rows,
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def read_json(data: bytes) -> dict[str, Any]:
    """Load a JSON report.

    Raises:
        ValueError: the data is not JSON or not a report of this format.
    """
    document = orjson.loads(data)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"not an imageprov report (format {FORMAT})")
    return document


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@")


def csv_cell(value: Any) -> Any:
    """Return a value fit for a CSV cell that people open in terminals and spreadsheets.

    Actors, addresses and names are written by whoever made the call: control
    characters are replaced, and text that a spreadsheet would run as a formula
    (`=HYPERLINK(...)`) gets a leading apostrophe, which `read_csv` removes.
    """
    if not isinstance(value, str):
        return value
    text = _CONTROL.sub("\N{REPLACEMENT CHARACTER}", value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _from_cell(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA_START) else text


def csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """Return a row of CSV cells, flags joined by spaces."""
    cells = {name: csv_cell(value) for name, value in row.items()}
    if isinstance(row.get("flags"), list | tuple):
        cells["flags"] = " ".join(row["flags"])
    return cells


def to_csv(report: Report) -> str:
    """Return one CSV row per image; flags are separated by spaces."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        writer.writerow(csv_row(row))
    return buffer.getvalue()


def read_csv(text: str) -> list[dict[str, Any]]:
    """Load CSV report rows, with flags as lists and empty cells as None.

    Raises:
        ValueError: the header is not the report's.
    """
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != FIELDS:
        raise ValueError(f"unexpected CSV header {reader.fieldnames}, expected {FIELDS}")
    rows = []
    for row in reader:
        loaded: dict[str, Any] = {name: (_from_cell(value) if value != "" else None)
                                  for name, value in row.items()}
        loaded["flags"] = row["flags"].split() if row["flags"] else []
        rows.append(loaded)
    return rows
