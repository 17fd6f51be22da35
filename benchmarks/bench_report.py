"""Time baseline reports and ledger verification over a store of many images.

1. Unless the database exists already, fill a new SQLite database through the
   store, as cycles would: `--images` images (four in five AMIs, the rest container
   images) and a first round of verdicts on day one (70% approved, 10% flagged,
   15% unattributed, 3% excepted, 2% pending), then a second round on day two that
   changes the verdict of one image in twenty. Every verdict row gets its ledger
   entry, and the head is signed after each round. The seconds of each round are
   printed, ledger included.
2. In a child process per measurement: `imageprov.report.build_report` and the
   writer of each format (html, json, csv, ocsf), writing to a file; then
   `imageprov.ledger.verify_ledger` over the whole ledger.
3. The peer, in a child process: Python's `sqlite3` module with one SQL query for
   the newest verdict of each image, written as CSV with the counts by status. It
   is the floor for the csv report: no ORM, no filters, no timeline.
4. It prints seconds and peak RSS (`VmHWM` of the child) for each, and whether
   every format and the peer found the same counts; the exit code is 1 when they
   differ or the ledger does not verify.

Seconds cover the work in the child, not starting Python or importing imageprov.

Usage: python benchmarks/bench_report.py [--images N] [--database PATH]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAY1 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SHARES = [("approved", 70), ("flagged", 10), ("unattributed", 15), ("excepted", 3),
          ("pending", 2)]
FLAGS = {"flagged": ("unexpected-actor", "external-network")}


def _status(number: int) -> str:
    position = number % 100
    for status, share in SHARES:
        if position < share:
            return status
        position -= share
    return "approved"


def fill(database: Path, count: int) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from imageprov.ledger import sign_ledger_head
    from imageprov.model import Flag, Image, ImageKind, Platform, Verdict, VerdictStatus
    from imageprov.store import Store

    store = Store.open(f"sqlite:///{database}")
    images = []
    for number in range(count):
        if number % 5 == 4:
            digest = f"sha256:{number:064x}"
            registry = "111122223333.dkr.ecr.us-east-1.amazonaws.com"
            images.append(Image(
                ref=f"{registry}/repo-{number % 50}@{digest}", platform=Platform.AWS,
                kind=ImageKind.CONTAINER, account="111122223333", region="us-east-1",
                native_id=digest, digest=digest, registry=registry,
                repository=f"repo-{number % 50}"))
        else:
            native = f"ami-{number:017x}"
            images.append(Image(
                ref=f"arn:aws:ec2:us-east-1:111122223333:image/{native}",
                platform=Platform.AWS, kind=ImageKind.AMI, account="111122223333",
                region="us-east-1", native_id=native))
    store.save_images(images)
    key = Ed25519PrivateKey.generate()

    def verdict(image: Image, status: str, when: datetime) -> Verdict:
        flags = tuple(Flag(flag) for flag in FLAGS.get(status, ()))
        return Verdict(image=image.ref, status=VerdictStatus(status), flags=flags,
                       rule="bench", reason=f"{status} in the benchmark",
                       policy_hash="c" * 64,
                       actor="arn:aws:iam::111122223333:user/bench" if flags else None,
                       source_ip="198.51.100.7" if flags else None, decided_at=when)

    for label, when, chosen in (
        ("round 1", DAY1, [(image, _status(n)) for n, image in enumerate(images)]),
        ("round 2", DAY1 + timedelta(days=1),
         [(image, "flagged") for n, image in enumerate(images)
          if n % 20 == 0 and _status(n) != "flagged"]),
    ):
        started = time.perf_counter()
        added = store.save_verdicts([verdict(image, status, when) for image, status in chosen])
        sign_ledger_head(store, key, when)
        print(f"{label}: {added} verdict rows and ledger entries in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
    store.close()


def child(kind: str, database: Path, out: Path) -> None:
    started = time.perf_counter()
    counts: dict[str, int]
    if kind == "peer":
        counts = _peer(database, out)
    elif kind == "ledger":
        from imageprov.ledger import verify_ledger
        from imageprov.ledger.keys import parse_public_key
        from imageprov.store import Store

        store = Store.open(f"sqlite:///{database}", upgrade=False)
        head = store.latest_head()
        report = verify_ledger(store, parse_public_key(head.public_key, "head"))
        store.close()
        counts = {"entries": report.entries, "problems": len(report.problems)}
    else:
        from imageprov.report import build_report
        from imageprov.report.formats import to_csv, to_json
        from imageprov.report.html import to_html
        from imageprov.report.ocsf import to_ocsf
        from imageprov.store import Store

        store = Store.open(f"sqlite:///{database}", upgrade=False)
        report = build_report(store)
        store.close()
        writers = {"html": lambda: to_html(report).encode(), "json": lambda: to_json(report),
                   "csv": lambda: to_csv(report).encode(), "ocsf": lambda: to_ocsf(report)}
        out.write_bytes(writers[kind]())
        counts = report.status_counts
    seconds = time.perf_counter() - started
    peak = _peak_mb()
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "counts": counts,
                      "bytes": out.stat().st_size if out.exists() else 0}))


def _peak_mb() -> float:
    # VmHWM starts again at exec, where ru_maxrss keeps the parent's peak.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _peer(database: Path, out: Path) -> dict[str, int]:
    connection = sqlite3.connect(database)
    rows = connection.execute(
        "SELECT v.image, v.status, v.flags, v.actor, v.source_ip, v.reason, v.decided_at "
        "FROM verdicts v JOIN (SELECT image, max(id) AS id FROM verdicts GROUP BY image) n "
        "ON v.id = n.id ORDER BY v.image")
    counts: Counter[str] = Counter()
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "status", "flags", "actor", "source_ip", "reason",
                         "decided_at"])
        for row in rows:
            counts[row[1]] += 1
            writer.writerow(row)
    connection.close()
    return dict(counts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--database", type=Path)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "DATABASE", "OUT"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return 0
    database = args.database or ROOT / "benchmarks" / "data" / f"report-{args.images}.db"
    database.parent.mkdir(parents=True, exist_ok=True)
    if not database.exists():
        fill(database, args.images)
    print(f"{platform.node()}: Python {platform.python_version()}, database {database} "
          f"({database.stat().st_size / 2**20:.0f} MB)")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("html", "json", "csv", "ocsf", "ledger", "peer"):
            out = Path(folder) / f"out.{kind}"
            done = subprocess.run([sys.executable, __file__, "--child", kind, str(database),
                                   str(out)], capture_output=True, text=True, check=True)
            results[kind] = json.loads(done.stdout.strip().splitlines()[-1])
            figures = results[kind]
            print(f"{kind:7} {figures['seconds']:7.2f} s  peak RSS {figures['peak_mb']:6.0f} MB"
                  f"  output {figures['bytes'] / 2**20:6.1f} MB  {figures['counts']}",
                  flush=True)
    reference = {k: v for k, v in results["peer"]["counts"].items() if v}
    same = all({k: v for k, v in results[kind]["counts"].items() if v} == reference
               for kind in ("html", "json", "csv", "ocsf"))
    verified = results["ledger"]["counts"]["problems"] == 0
    print(f"same counts in every format and the peer: {same}; ledger verified: {verified}")
    return 0 if same and verified else 1


if __name__ == "__main__":
    sys.exit(main())
