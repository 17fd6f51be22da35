"""Baseline reports: built from a store, read back, and rendered by Chromium."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from imageprov.model import Flag, Image, ImageKind, Platform, Verdict, VerdictStatus
from imageprov.report import FLAGS, STATUSES, Filters, build_report, count
from imageprov.report.formats import read_csv, read_json, to_csv, to_json
from imageprov.report.html import to_html
from imageprov.report.ocsf import to_ocsf
from imageprov.store import Store
from tests.conftest import run_cli

DAY1 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
OTHER_ACCOUNT = "444455556666"
HOSTILE_ACTOR = 'arn:aws:iam::111122223333:user/<script>alert("x")</script>'


def _image(number: int, account: str = "111122223333",
           kind: ImageKind = ImageKind.AMI) -> Image:
    native = f"ami-0{number:016x}"
    return Image(ref=f"arn:aws:ec2:us-east-1:{account}:image/{native}", platform=Platform.AWS,
                 kind=kind, account=account, region="us-east-1", native_id=native)


def _verdict(image: Image, status: VerdictStatus, when: datetime,
             flags: tuple[Flag, ...] = (), actor: str | None = None,
             source_ip: str | None = None) -> Verdict:
    return Verdict(image=image.ref, status=status, flags=flags, rule="rule",
                   event_id="e-1" if actor else None, reason=f"{status.value}, for the test",
                   policy_hash="b" * 64, actor=actor, source_ip=source_ip, decided_at=when)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """Seven images: five approved on day one, then two flagged and one unattributed."""
    opened = Store.open(f"sqlite:///{tmp_path / 'report.db'}")
    images = [_image(i) for i in range(6)] + [_image(9, OTHER_ACCOUNT)]
    opened.save_images(images)
    opened.save_verdicts([_verdict(image, VerdictStatus.APPROVED, DAY1)
                          for image in images[:5]])
    opened.save_verdicts([
        _verdict(images[1], VerdictStatus.FLAGGED, DAY2, (Flag.ROOT, Flag.EXTERNAL_NETWORK),
                 "arn:aws:iam::111122223333:root", "203.0.113.7"),
        _verdict(images[2], VerdictStatus.FLAGGED, DAY2, (Flag.UNEXPECTED_ACTOR,),
                 HOSTILE_ACTOR, "AWS Internal"),
        _verdict(images[5], VerdictStatus.UNATTRIBUTED, DAY2),
        _verdict(images[6], VerdictStatus.EXCEPTED, DAY2),
    ])
    yield opened
    opened.close()


EXPECTED = {"flagged": 2, "unattributed": 1, "pending": 0, "excepted": 1, "approved": 3}


def test_report_counts_and_order(store):
    report = build_report(store)
    assert report.status_counts == EXPECTED
    assert report.flag_counts["root"] == 1
    assert report.flag_counts["unexpected-actor"] == 1
    assert report.flag_counts["external-network"] == 1
    assert [row["status"] for row in report.rows][:3] == ["flagged", "flagged",
                                                          "unattributed"]
    assert report.timeline == [
        ("2026-11-30", {"flagged": 0, "unattributed": 0, "pending": 0, "excepted": 0,
                        "approved": 5}),
        ("2026-12-01", {"flagged": 2, "unattributed": 1, "pending": 0, "excepted": 1,
                        "approved": 3}),
    ]


@pytest.mark.parametrize(("filters", "expected"), [
    (Filters(status="flagged"), {"flagged": 2}),
    (Filters(account=OTHER_ACCOUNT), {"excepted": 1}),
    (Filters(platform="azure"), {}),
    (Filters(since=DAY2), {"flagged": 2, "unattributed": 1, "excepted": 1}),
])
def test_report_filters(store, filters, expected):
    report = build_report(store, filters)
    assert {k: v for k, v in report.status_counts.items() if v} == expected


def test_report_leaves_out_gone_images(store):
    listed = [_image(i) for i in range(3)]
    store.save_images([image.model_copy(update={"inventory_source": "file:ec2.json"})
                       for image in listed], DAY1)
    store.save_images([listed[0].model_copy(update={"inventory_source": "file:ec2.json"})],
                      DAY2)
    present = {row["image"] for row in build_report(store).rows}
    assert _image(0).ref in present
    assert _image(1).ref not in present
    assert _image(2).ref not in present
    everything = {row["image"] for row in build_report(store, Filters(include_gone=True)).rows}
    assert {_image(1).ref, _image(2).ref} <= everything


def test_json_round_trip(store):
    report = build_report(store)
    loaded = read_json(to_json(report))
    assert loaded["counts"]["status"] == EXPECTED
    assert loaded["counts"]["flags"] == report.flag_counts
    assert count(loaded["images"]) == (report.status_counts, report.flag_counts)
    assert loaded["images"] == report.rows
    assert len(loaded["timeline"]) == 2


def test_csv_round_trip(store):
    report = build_report(store)
    rows = read_csv(to_csv(report))
    assert count(rows) == (report.status_counts, report.flag_counts)
    assert [row["image"] for row in rows] == [row["image"] for row in report.rows]
    hostile = next(row for row in rows if row["actor"] == HOSTILE_ACTOR)
    assert hostile["flags"] == ["unexpected-actor"]


def test_csv_reader_rejects_other_header():
    with pytest.raises(ValueError, match="unexpected CSV header"):
        read_csv("a,b\n1,2\n")


# The Detection Finding attributes this output claims, with their JSON types, and
# the enumerations it uses (OCSF 1.1.0).
REQUIRED = {"class_uid": int, "category_uid": int, "activity_id": int, "type_uid": int,
            "time": int, "severity_id": int, "metadata": dict, "finding_info": dict}
CLAIMED = {"class_name": str, "category_name": str, "activity_name": str,
           "type_name": str, "severity": str, "status_id": int, "status": str,
           "message": str, "resources": list, "cloud": dict, "unmapped": dict}
SEVERITIES = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High",
              5: "Critical", 6: "Fatal", 99: "Other"}
FINDING_STATUSES = {0: "Unknown", 1: "New", 2: "In Progress", 3: "Suppressed",
                    4: "Resolved", 99: "Other"}


def test_ocsf_detection_findings_valid(store):
    import orjson

    report = build_report(store)
    findings = orjson.loads(to_ocsf(report))
    assert len(findings) == EXPECTED["flagged"] + EXPECTED["unattributed"]
    for item in findings:
        for name, kind in {**REQUIRED, **CLAIMED}.items():
            assert isinstance(item[name], kind), name
        assert item["class_uid"] == 2004
        assert item["class_name"] == "Detection Finding"
        assert item["category_uid"] == 2
        assert item["category_name"] == "Findings"
        assert item["activity_id"] == 1
        assert item["type_uid"] == item["class_uid"] * 100 + item["activity_id"]
        assert SEVERITIES[item["severity_id"]] == item["severity"]
        assert FINDING_STATUSES[item["status_id"]] == item["status"]
        assert item["metadata"]["version"] == "1.1.0"
        assert isinstance(item["metadata"]["product"]["name"], str)
        assert isinstance(item["metadata"]["product"]["vendor_name"], str)
        info = item["finding_info"]
        assert isinstance(info["uid"], str) and len(info["uid"]) == 64
        assert isinstance(info["title"], str)
        assert isinstance(info["created_time"], int)
        assert all(isinstance(t, str) for t in info["types"])
        assert item["cloud"]["provider"] == "AWS"
        assert item["cloud"]["account"]["type_id"] == 10
        assert item["resources"][0]["uid"] in {row["image"] for row in report.rows}
    by_image = {item["resources"][0]["uid"]: item for item in findings}
    root = by_image[_image(1).ref]
    assert root["severity_id"] == 4
    assert root["src_endpoint"] == {"ip": "203.0.113.7"}
    assert root["actor"] == {"user": {"uid": "arn:aws:iam::111122223333:root"}}
    # "AWS Internal" is not an address, so no endpoint is claimed.
    assert "src_endpoint" not in by_image[_image(2).ref]
    assert by_image[_image(5).ref]["severity_id"] == 3
    assert len({item["finding_info"]["uid"] for item in findings}) == len(findings)


class _Dom(HTMLParser):
    """Collects the elements of a rendered page that the test checks."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, str] = {}
        self.bars: list[dict[str, str]] = []
        self.charts = 0
        self.scripts = 0
        self.outside: list[str] = []
        self.rows: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "script":
            self.scripts += 1
        for name in ("src", "href"):
            if name in found:
                self.outside.append(found[name])
        if tag == "svg" and found.get("id") == "verdict-chart":
            self.charts += 1
        if tag == "rect" and found.get("class") == "bar":
            self.bars.append(found)
        if tag == "tr" and found.get("class") == "image":
            self.rows.append(found["data-status"])
        if found.get("id", "").startswith(("count-", "flag-")):
            self._open = found["id"]

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.counts[self._open] = data
            self._open = None


def _chromium() -> str:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not installed: apt-get install chromium")
    return executable


def test_html_renders_in_chromium(store, tmp_path: Path):
    page = tmp_path / "report.html"
    page.write_text(to_html(build_report(store)))
    result = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = _Dom()
    dom.feed(result.stdout)
    for status in STATUSES:
        assert dom.counts[f"count-{status}"] == str(EXPECTED[status]), status
    assert dom.counts["count-total"] == "7"
    assert {flag for flag in FLAGS if dom.counts[f"flag-{flag}"] != "0"} == {
        "root", "external-network", "unexpected-actor"}
    assert dom.charts == 1
    day2 = {bar["data-status"]: int(bar["data-count"]) for bar in dom.bars
            if bar["data-day"] == "2026-12-01"}
    assert day2 == {"flagged": 2, "unattributed": 1, "excepted": 1, "approved": 3}
    assert dom.rows[:3] == ["flagged", "flagged", "unattributed"]
    # The hostile actor name is text, not markup, and nothing is fetched.
    assert dom.scripts == 0
    assert '&lt;script&gt;alert("x")&lt;/script&gt;' in result.stdout
    assert dom.outside == []


def test_report_cli_writes_each_format(store, tmp_path: Path):
    for name in ("html", "json", "csv", "ocsf"):
        target = tmp_path / f"report.{name}"
        result = run_cli("report", "--format", name, "--out", str(target),
                         "--database", store.url)
        assert result.returncode == 0, result.stderr
        assert "flagged 2" in result.stderr
    assert read_json((tmp_path / "report.json").read_bytes())["counts"]["status"] == EXPECTED
    bad = run_cli("report", "--since", "yesterday", "--database", store.url)
    assert bad.returncode == 2
    assert "invalid --since 'yesterday'" in bad.stderr
