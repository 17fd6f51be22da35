"""Time imageprov's ingest of Cloud Audit Logs sink objects against DuckDB on the same files.

The data set is generated when missing: gzip objects in the Cloud Storage sink
layout (`cloudaudit.googleapis.com/activity/YYYY/MM/DD/HH:00:00_HH:59:59_S0.json`),
one LogEntry per line, about 1.3 KB each. Entries mix Compute, IAM, Storage,
BigQuery and Kubernetes methods. About 0.5% are image methods
(`compute.images.insert` as first and last entries, `setIamPolicy`, `delete`), and
2% carry a failed `status`. The generator is seeded.

1. imageprov, in a child process: `imageprov.ingest.ingest` with `--workers` workers
   into a new SQLite file (read, hash, decompress, parse, count, spans, events,
   store).
2. DuckDB, in a child process with `SET threads` equal to `--workers`: read the same
   files with `read_json_objects`, count the entries, and count those whose
   `protoPayload.methodName` ends in one of imageprov's image methods.

Every file is read once before the first measurement, so both read from the page
cache. Seconds cover the ingest call or the query alone.

Usage: python benchmarks/bench_gcp_ingest.py [--entries N] [--files N] [--workers N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
START = datetime(2026, 1, 1, tzinfo=UTC)
OTHER_METHODS = [
    ("compute.googleapis.com", "v1.compute.instances.insert"),
    ("compute.googleapis.com", "beta.compute.instances.stop"),
    ("compute.googleapis.com", "v1.compute.firewalls.patch"),
    ("iam.googleapis.com", "google.iam.admin.v1.CreateServiceAccountKey"),
    ("storage.googleapis.com", "storage.buckets.update"),
    ("bigquery.googleapis.com", "google.cloud.bigquery.v2.JobService.InsertJob"),
    ("k8s.io", "io.k8s.core.v1.pods.create"),
]
IMAGE_METHODS = ["v1.compute.images.insert", "beta.compute.images.insert",
                 "v1.compute.images.setIamPolicy", "v1.compute.images.delete"]


def _entry(rng: random.Random, number: int, when: datetime) -> dict:
    project = f"proj-{rng.randrange(20):02d}"
    image = rng.random() < 0.005
    service, method = (("compute.googleapis.com", rng.choice(IMAGE_METHODS)) if image
                       else rng.choice(OTHER_METHODS))
    email = rng.choice([f"builder@{project}.iam.gserviceaccount.com",
                        f"user{rng.randrange(50)}@example.com"])
    status = {"code": 7, "message": "PERMISSION_DENIED"} if rng.random() < 0.02 else {}
    entry = {
        "insertId": f"{number:012x}", "logName":
            f"projects/{project}/logs/cloudaudit.googleapis.com%2Factivity",
        "operation": {"id": f"operation-{number}", "producer": service,
                      rng.choice(["first", "last"]): True},
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "serviceName": service, "methodName": method,
            "resourceName": f"projects/{project}/global/images/image-{number}",
            "authenticationInfo": {"principalEmail": email},
            "authorizationInfo": [{"permission": "compute.images.create", "granted": True,
                                   "resourceAttributes": {"service": "compute",
                                                          "type": "compute.images"}}],
            "requestMetadata": {
                "callerIp": rng.choice(["10.1.2.3", "gce-internal-ip", "34.120.5.6"]),
                "callerSuppliedUserAgent": "google-cloud-sdk gcloud/502.0.0 command/"
                                           "gcloud.compute.images.create,gzip(gfe)",
                "requestAttributes": {"time": when.isoformat()}},
            "request": {"@type": f"type.googleapis.com/{method}", "name": f"image-{number}",
                        "family": "web", "labels": {"team": "platform"}},
            "status": status,
        },
        "receiveTimestamp": (when + timedelta(seconds=1)).isoformat().replace("+00:00", "Z"),
        "resource": {"type": "gce_image",
                     "labels": {"project_id": project, "image_id": str(10**12 + number)}},
        "severity": "NOTICE", "timestamp": when.isoformat().replace("+00:00", "Z"),
    }
    return entry


def generate(folder: Path, entries: int, files: int) -> None:
    rng = random.Random(8)
    per_file = entries // files
    number = 0
    for hour in range(files):
        start = START + timedelta(hours=hour)
        day = folder / "cloudaudit.googleapis.com" / "activity" / start.strftime("%Y/%m/%d")
        day.mkdir(parents=True, exist_ok=True)
        lines = []
        for _ in range(per_file):
            when = start + timedelta(seconds=rng.randrange(3600))
            lines.append(json.dumps(_entry(rng, number, when), separators=(",", ":")))
            number += 1
        name = f"{start:%H}:00:00_{start:%H}:59:59_S0.json"
        (day / name).write_bytes(gzip.compress("\n".join(lines).encode() + b"\n", 6))


def _imageprov(folder: Path, workers: int) -> str:
    return f"""
import time
from imageprov.ingest import ingest
from imageprov.sources.files import LocalFolder
from imageprov.store import Store
store = Store.open("sqlite:///{folder.parent / 'bench-gcp.db'}")
started = time.perf_counter()
summary = ingest(store, LocalFolder("{folder}", format="gcp-audit").objects(), {workers})
print(time.perf_counter() - started, summary.records, summary.events)
"""


def _duckdb(folder: Path, workers: int) -> str:
    methods = "|".join(m.split(".", 1)[1].replace(".", r"\.") for m in IMAGE_METHODS)
    return f"""
import time, duckdb
con = duckdb.connect()
con.execute("SET threads = {workers}")
started = time.perf_counter()
records, images = con.execute(r'''
SELECT count(*), count(*) FILTER (WHERE regexp_matches(
    json ->> '$.protoPayload.methodName', '^(v\\d+|beta|alpha)\\.({methods})$'))
FROM read_json_objects('{folder}/**/*.json', format='newline_delimited',
                       compression='gzip')''').fetchone()
print(time.perf_counter() - started, records, images)
"""


def _run(code: str) -> tuple[float, int, int]:
    # The figures are the last line the child prints.
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip().splitlines()[-1].split()
    return float(output[0]), int(output[1]), int(output[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    root = Path(os.environ.get("IMAGEPROV_BENCH_DIR", tempfile.gettempdir()))
    folder = root / f"imageprov-gcp-bench-{args.entries}-{args.files}" / "sink"
    if not folder.is_dir():
        generate(folder, args.entries, args.files)
    files = sorted(folder.rglob("*.json"))
    size = sum(path.stat().st_size for path in files)
    for path in files:
        path.read_bytes()
    (folder.parent / "bench-gcp.db").unlink(missing_ok=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}; {len(files)} files, {size / 1e6:.1f} MB gzip")
    for name, code in (("imageprov ingest", _imageprov(folder, args.workers)),
                       ("duckdb read_json_objects", _duckdb(folder, args.workers))):
        seconds, records, images = _run(code)
        print(f"{name:26} {seconds:7.2f} s  {records / seconds:10,.0f} entries/s  "
              f"entries {records}  image entries {images}")


if __name__ == "__main__":
    main()
