"""Time imageprov's ingest of Activity Log export blobs against DuckDB on the same files.

The data set is generated when missing: hourly `PT1H.json` blobs in the storage
export layout (`resourceId=/SUBSCRIPTIONS/<id>/y=/m=/d=/h=/m=00/PT1H.json`), one
export-shape record per line, about 1 KB each, with upper-cased resource ids and
operation names as exports write them. About 0.5% of the records are image
operations (a Started and a Succeeded record each) and the rest are other
Administrative writes, actions and deletes.

1. imageprov reads the folder into a new SQLite database through `imageprov.ingest`
   with `--workers` worker processes: read, hash, parse, count every record, keep
   the event-time spans, join each image operation's records into one event and
   store it.
2. DuckDB reads the same files with `read_json_objects` and counts the records and
   the records whose lower-cased `operationName` is in imageprov's operation table,
   with `SET threads` equal to `--workers`.

Every file is read once before the first measurement, so both sides read from the
page cache. Seconds cover the ingest call or the query alone.

Usage: python benchmarks/bench_azure_ingest.py [--records N] [--files N] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import tempfile
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
SUBSCRIPTION = "7a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
_OTHER = ("MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/WRITE",
          "MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION",
          "MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE", "MICROSOFT.COMPUTE/DISKS/DELETE",
          "MICROSOFT.WEB/SITES/RESTART/ACTION", "MICROSOFT.KEYVAULT/VAULTS/WRITE")


def _record(rng: random.Random, moment: float, operation: str, resource: str,
            status: str, correlation: str) -> dict:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + ".1234567Z"
    return {
        "time": stamp, "resourceId": resource.upper(), "operationName": operation,
        "category": "Administrative", "resultType": status,
        "resultSignature": "Started." if status == "Start" else "Succeeded.OK",
        "durationMs": 0 if status == "Start" else rng.randint(10, 9000),
        "callerIpAddress": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.7",
        "correlationId": correlation, "level": "Information", "location": "global",
        "identity": {"authorization": {"scope": resource, "action": operation.lower(),
                                       "evidence": {"role": "Contributor",
                                                    "principalType": "ServicePrincipal",
                                                    "principalId": "%032x" % rng.getrandbits(128)}},
                     "claims": {"appid": "%08x-0000-4000-8000-%012x" % (
                         rng.getrandbits(32), rng.getrandbits(48)), "idtyp": "app",
                         "http://schemas.microsoft.com/identity/claims/objectidentifier":
                         "%08x-1111-4111-8111-%012x" % (rng.getrandbits(32),
                                                        rng.getrandbits(48))}},
        "properties": {"eventCategory": "Administrative", "entity": resource,
                       "message": operation.lower(), "statusCode": "OK"},
    }


def generate(folder: Path, records: int, files: int) -> None:
    """Write the data set: `files` hourly blobs holding `records` records in all."""
    rng = random.Random(4)
    start = 1_793_000_000.0
    per_file = records // files
    sub = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-{{}}/providers"
    for number in range(files):
        hour = start + number * 3600
        lines = []
        while len(lines) < per_file:
            moment = hour + rng.random() * 3599
            correlation = "%08x-2222-4222-8222-%012x" % (rng.getrandbits(32),
                                                          rng.getrandbits(48))
            if rng.random() < 0.0025:
                resource = (sub.format(rng.randint(1, 9)) + "/Microsoft.Compute/images/"
                            f"img-{number}-{len(lines)}")
                for status in ("Start", "Success"):
                    lines.append(_record(rng, moment, "MICROSOFT.COMPUTE/IMAGES/WRITE",
                                         resource, status, correlation))
                continue
            operation = rng.choice(_OTHER)
            resource = sub.format(rng.randint(1, 9)) + f"/{operation.rsplit('/', 2)[0]}/r{rng.randint(1, 500)}"
            lines.append(_record(rng, moment, operation, resource, "Success", correlation))
        stamp = time.gmtime(hour)
        path = (folder / f"resourceId=/SUBSCRIPTIONS/{SUBSCRIPTION.upper()}"
                / time.strftime("y=%Y/m=%m/d=%d/h=%H", stamp) / "m=00" / "PT1H.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n"
                                for line in lines[:per_file]))


def run_imageprov(folder: Path, workers: int) -> dict:
    from imageprov import ingest as ingest_module
    from imageprov.sources.files import LocalFolder
    from imageprov.store import Store

    with tempfile.TemporaryDirectory(prefix="imageprov-bench-") as scratch:
        store = Store.open(f"sqlite:///{scratch}/bench.db")
        objects = LocalFolder(folder, format="azure-activity").objects()
        started = time.perf_counter()
        summary = ingest_module.ingest(store, objects, workers=workers)
        seconds = time.perf_counter() - started
        ingest_module.close_workers()
        store.close()
    return {"seconds": seconds, "records": summary.records, "events": summary.events,
            "files": summary.files}


def run_duckdb(folder: Path, threads: int) -> dict:
    import duckdb

    from imageprov.sources.azure.operations import BY_OPERATION

    names = ", ".join(f"'{name}'" for name in sorted(BY_OPERATION))
    connection = duckdb.connect()
    connection.execute(f"SET threads = {threads}")
    sql = ("SELECT count(*), count(*) FILTER (WHERE lower(json->>'operationName') "
           f"IN ({names})) FROM read_json_objects('{folder}/**/PT1H.json', "
           "format='newline_delimited')")
    started = time.perf_counter()
    records, image_records = connection.execute(sql).fetchone()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "records": records, "image_records": image_records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()

    folder = BENCHMARKS / "data" / f"azure-activity-{options.records}-{options.files}"
    if not folder.exists():
        generate(folder, options.records, options.files)
    size = 0
    for path in folder.rglob("PT1H.json"):
        size += len(path.read_bytes())
    print(f"machine: {platform.machine()}, {platform.python_version()}; "
          f"data: {options.records:,} records in {options.files} blobs, "
          f"{size / 2**20:.0f} MiB")
    ours = run_imageprov(folder, options.workers)
    print(f"imageprov ingest, {options.workers} workers: {ours['seconds']:.2f} s, "
          f"{ours['records'] / ours['seconds']:,.0f} records/s, "
          f"{ours['events']} image events")
    peer = run_duckdb(folder, options.workers)
    print(f"duckdb read_json_objects, {options.workers} threads: {peer['seconds']:.2f} s, "
          f"{peer['records'] / peer['seconds']:,.0f} records/s, "
          f"{peer['image_records']} image-operation records")
    print(f"ratio imageprov/duckdb seconds: {ours['seconds'] / peer['seconds']:.2f}")


if __name__ == "__main__":
    main()
