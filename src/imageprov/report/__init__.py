"""Baseline reports: every image's verdict, counts by status and flag, a timeline.

`build_report` reads the store once and returns a `Report`; the modules beside it
write a report as JSON, CSV, OCSF Detection Findings or a static HTML page.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from imageprov.model import Flag, VerdictStatus
from imageprov.store import Store

# Images that need someone's attention come first, in this order.
STATUS_ORDER = [VerdictStatus.FLAGGED, VerdictStatus.UNATTRIBUTED, VerdictStatus.PENDING,
                VerdictStatus.EXCEPTED, VerdictStatus.APPROVED]
STATUSES = [status.value for status in STATUS_ORDER]
FLAGS = [flag.value for flag in Flag]
FIELDS = ["image", "platform", "kind", "account", "region", "status", "flags", "actor",
          "source_ip", "event_id", "rule", "reason", "policy_hash", "decided_at"]
# The HTML chart shows at most this many days, the newest ones.
TIMELINE_DAYS = 180


@dataclass(frozen=True)
class Filters:
    """The images a report covers; a field left as None matches any image."""

    platform: str | None = None
    account: str | None = None
    status: str | None = None
    since: datetime | None = None
    # Images the last listing of their inventory no longer reported are left out
    # unless this is set, as in `imageprov verdicts`.
    include_gone: bool = False

    def as_dict(self) -> dict[str, str | None]:
        return {"platform": self.platform, "account": self.account, "status": self.status,
                "since": self.since.isoformat() if self.since else None,
                "include_gone": "yes" if self.include_gone else None}


@dataclass
class Report:
    """The rows, counts and timeline of one report.

    `timeline` lists, per UTC day, how many of the covered images had each status
    at the end of that day.
    """

    generated_at: datetime
    filters: Filters
    rows: list[dict[str, Any]] = field(default_factory=list)
    status_counts: dict[str, int] = field(default_factory=dict)
    flag_counts: dict[str, int] = field(default_factory=dict)
    timeline: list[tuple[str, dict[str, int]]] = field(default_factory=list)


def record(verdict: dict[str, Any], place: tuple[str, str, str, str]) -> dict[str, Any]:
    """Return the report row of one verdict, given as stored column values."""
    platform, kind, account, region = place
    return {
        "image": verdict["image"],
        "platform": platform,
        "kind": kind,
        "account": account,
        "region": region,
        "status": verdict["status"],
        "flags": list(verdict["flags"] or ()),
        "actor": verdict["actor"],
        "source_ip": verdict["source_ip"],
        "event_id": verdict["event_id"],
        "rule": verdict["rule"],
        "reason": verdict["reason"],
        "policy_hash": verdict["policy_hash"],
        "decided_at": verdict["decided_at"].isoformat(),
    }


def _kept(row: dict[str, Any], decided_at: datetime, filters: Filters) -> bool:
    if filters.platform is not None and row["platform"] != filters.platform:
        return False
    if filters.account is not None and row["account"] != filters.account:
        return False
    if filters.status is not None and row["status"] != filters.status:
        return False
    return filters.since is None or decided_at >= filters.since


def count(rows: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """Return the counts by status and by flag of report rows, every key present."""
    statuses = Counter(row["status"] for row in rows)
    flags = Counter(flag for row in rows for flag in row["flags"])
    return ({status: statuses.get(status, 0) for status in STATUSES},
            {flag: flags.get(flag, 0) for flag in FLAGS})


def build_report(store: Store, filters: Filters | None = None,
                 now: datetime | None = None) -> Report:
    """Read the current verdicts and their history into a report."""
    filters = filters or Filters()
    report = Report(generated_at=now or datetime.now(UTC), filters=filters)
    places = store.image_places(filters.include_gone)
    rank = {status.value: index for index, status in enumerate(STATUS_ORDER)}
    rows = []
    for verdict in store.current_verdict_values():
        place = places.get(verdict["image"])
        if place is None:
            continue
        row = record(verdict, place)
        if _kept(row, verdict["decided_at"], filters):
            rows.append(row)
    rows.sort(key=lambda row: (rank[row["status"]], row["image"]))
    report.rows = rows
    report.status_counts, report.flag_counts = count(rows)
    report.timeline = _timeline(store, {row["image"] for row in rows}, filters)
    return report


def _timeline(store: Store, covered: set[str],
              filters: Filters) -> list[tuple[str, dict[str, int]]]:
    """Replay the verdict history of the covered images, one snapshot per day."""
    current: dict[str, str] = {}
    totals: Counter[str] = Counter()
    days: list[tuple[str, dict[str, int]]] = []
    day: date | None = None

    def snapshot() -> None:
        if day is None:
            return
        counts = {status: totals.get(status, 0) for status in STATUSES}
        if days and days[-1][0] == day.isoformat():
            days[-1] = (day.isoformat(), counts)
        else:
            days.append((day.isoformat(), counts))

    # Verdict rows come in id order, which is the order they were decided in.
    for image, status, decided_at in store.status_history():
        if image not in covered:
            continue
        moment = decided_at.astimezone(UTC).date()
        if day is not None and moment != day:
            snapshot()
        day = moment
        previous = current.get(image)
        if previous is not None:
            totals[previous] -= 1
        current[image] = status
        totals[status] += 1
    snapshot()
    if filters.since is not None:
        start = filters.since.astimezone(UTC).date().isoformat()
        days = [item for item in days if item[0] >= start]
    return days[-TIMELINE_DAYS:]
