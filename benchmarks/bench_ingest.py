"""Time imageprov's ingest of gzip CloudTrail files against DuckDB on the same files.

Each measurement runs in its own child process, so memory figures do not mix:

1. imageprov reads the folder into a new SQLite database through `imageprov.ingest`
   with `--workers` workers: threads where the native CloudTrail reader is built,
   parser processes otherwise. This is the whole job: read, hash, decompress,
   parse, count every record, keep the event-time spans, extract image events and
   store them.
2. DuckDB reads the same files and counts the records and the records whose
   (eventSource, eventName) pair is in imageprov's event table, in three forms:
   - `read_json_objects`, unnest `$.Records[*]`, `->>` on each record: the fastest
     form found that is correct for any record;
   - `read_json_objects` with one wildcard path list per field: faster, but correct
     only when every record has both fields, as every generated record does;
   - `read_json(columns={'Records': 'JSON[]'})`, unnest, `->>`: the form DuckDB's
     documentation leads with, and by far the slowest here. `--skip-read-json`
     leaves it out.

3. The floor: on one core, over the first 200 files, the time to inflate each
   file, to parse the inflated JSON with simdjson, and imageprov's whole read of a
   file, per record. Every reader must at least inflate and parse, so `--workers`
   cores cannot pass the rate those two steps allow; the script prints that bound
   and its ratio to each DuckDB form.
4. The native reader alone: every file inflated, parsed and counted by imageprov's
   native CloudTrail reader in `--workers` threads, with no image event read in
   Python and nothing stored. An ingest in threads does this and more, so this
   rate bounds it. The script prints the rate and its ratio to each DuckDB form.

DuckDB runs with `SET threads` equal to `--workers`. Every file is read once before
the first measurement, so all sides read from the page cache. Seconds cover the
ingest call or the query alone, not the start of Python or of DuckDB, nor the start
of imageprov's parser processes, which the daemon starts once and keeps.

Peak memory is sampled from /proc every 100 ms over the child and all its
descendants. "PSS" is the sum of their proportional set sizes, which splits pages
shared between a parent and its forked workers, so it is the memory the tree adds.
"RSS" is `ru_maxrss` of the largest single process, which the kernel tracks
exactly. Sampling can miss a peak shorter than the interval.

Usage: python benchmarks/bench_ingest.py [--records N] [--files-of N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

import generate  # noqa: E402

TARGET_RATIO = 5.0
TARGET_PEAK_MB = 300.0
# Files timed step by step for the floor of the rate.
FLOOR_FILES = 200
SAMPLE_SECONDS = 0.1


# DuckDB queries ------------------------------------------------------------------------

def _pairs_sql() -> str:
    from imageprov.sources.aws.event_table import BY_KEY

    return ", ".join(f"('{source}', '{name}')" for source, name in sorted(BY_KEY))


def duckdb_query(form: str, pattern: str) -> str:
    """Return the SQL that counts records and image-event records in `pattern`."""
    if form == "path-lists":
        # Each wildcard path yields a list with one item per record that has the
        # key, so the two lists line up only when every record has both keys, as
        # every generated record does.
        return (
            "SELECT count(*) AS records,\n"
            "       count(*) FILTER (WHERE (event_source, event_name)\n"
            f"                        IN ({_pairs_sql()})) AS image_records\n"
            "FROM (SELECT unnest(json_extract_string(json, '$.Records[*].eventSource'))"
            " AS event_source,\n"
            "             unnest(json_extract_string(json, '$.Records[*].eventName'))"
            " AS event_name\n"
            f"      FROM read_json_objects('{pattern}'))"
        )
    if form == "objects":
        source = (f"SELECT unnest(json_extract(json, '$.Records[*]')) AS r "
                  f"FROM read_json_objects('{pattern}')")
    else:
        source = (f"SELECT unnest(Records) AS r "
                  f"FROM read_json('{pattern}', columns={{'Records': 'JSON[]'}})")
    return (
        "SELECT count(*) AS records,\n"
        "       count(*) FILTER (WHERE (r->>'eventSource', r->>'eventName')\n"
        f"                        IN ({_pairs_sql()})) AS image_records\n"
        f"FROM ({source})"
    )


# Each form's name and how it reads the files.
DUCKDB_FORMS = {
    "objects": "read_json_objects, unnest, ->>",
    "path-lists": "read_json_objects, path lists",
    "read-json": "read_json, JSON[], unnest, ->>",
}


# The measured sides, each run in a child process ---------------------------------------

def _run_imageprov(folder: Path, workers: int) -> dict[str, Any]:
    from imageprov import ingest as ingest_module
    from imageprov.sources.aws.trail_locations import LocalTrail
    from imageprov.store import Store

    with tempfile.TemporaryDirectory(prefix="imageprov-bench-") as scratch:
        store = Store.open(f"sqlite:///{scratch}/bench.db")
        objects = LocalTrail(folder / "AWSLogs").objects()
        # Small log files, and every file where the native reader is not built, go
        # to parser processes. The daemon starts them once and keeps them, so their
        # start is left out of the time, as DuckDB's start is, and their memory is
        # counted whether they read a file or not.
        ingest_module.start_workers(workers)
        started = time.perf_counter()
        summary = ingest_module.ingest(store, objects, workers=workers)
        seconds = time.perf_counter() - started
        ingest_module.close_workers()
        with store.engine.connect() as connection:
            image_records = connection.exec_driver_sql(
                "SELECT count(*) FROM (SELECT DISTINCT origin_location, origin_index "
                "FROM events)"
            ).scalar_one()
            stored_records = connection.exec_driver_sql(
                "SELECT coalesce(sum(records), 0) FROM log_files"
            ).scalar_one()
        store.close()
    return {
        "seconds": seconds, "records": summary.records, "image_records": image_records,
        "stored_records": stored_records, "events": summary.events,
        "files": summary.files, "problems": summary.problems,
        **_own_max_rss(),
    }


def _run_duckdb(folder: Path, threads: int, form: str) -> dict[str, Any]:
    import duckdb

    connection = duckdb.connect()
    connection.execute(f"SET threads = {threads}")
    sql = duckdb_query(form, f"{folder}/AWSLogs/**/*.json.gz")
    started = time.perf_counter()
    records, image_records = connection.execute(sql).fetchone()
    seconds = time.perf_counter() - started
    connection.close()
    return {"seconds": seconds, "records": records, "image_records": image_records,
            "sql": sql, "version": duckdb.__version__, **_own_max_rss()}


def _run_floor(folder: Path, sample: int) -> dict[str, Any]:
    """Time the steps every reader must take, on one core, over `sample` files.

    Inflating and parsing are the least that any reader of these files does, so
    their sum bounds the rate that `workers` cores can reach, whatever else it does.
    """
    import simdjson

    from imageprov import formats
    from imageprov.sources.compression import decompress

    paths = sorted((folder / "AWSLogs").rglob("*.json.gz"))[:sample]
    packed = [path.read_bytes() for path in paths]
    texts = [decompress(data) for data in packed]
    records = sum(len(simdjson.Parser().parse(text)["Records"]) for text in texts)
    parser = simdjson.Parser()

    def parse(text: bytes) -> None:
        parser.parse(text)

    def read(data: bytes) -> None:
        formats.read(data, "floor.json.gz")

    steps = {"inflate": (decompress, packed), "parse": (parse, texts),
             "read": (read, packed)}
    micros: dict[str, float] = {}
    for name, (step, inputs) in steps.items():
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for item in inputs:
                step(item)
            best = min(best, time.perf_counter() - started)
        micros[name] = best / records * 1e6
    return {"files": len(paths), "records": records, "micros": micros}


# Files per call of the native reader alone.
NATIVE_GROUP = 8


def _run_native(folder: Path, workers: int) -> dict[str, Any]:
    """Time the native reader alone on every file, in `workers` threads.

    Each file is inflated, parsed and walked, and its records are counted, as in an
    ingest, but the image events are not read in Python and nothing is stored. The
    rate bounds what an ingest in threads can reach with this reader.
    """
    from concurrent.futures import ThreadPoolExecutor

    from imageprov.sources import compression
    from imageprov.sources.aws import trail_documents

    native = trail_documents._trailscan
    if native is None:
        return {}
    keys = trail_documents._EVENT_KEYS
    limit = compression.MAX_DOCUMENT_BYTES
    packed = [path.read_bytes() for path in sorted((folder / "AWSLogs").rglob("*.json.gz"))]
    # Files go to the threads in groups, as an ingest sends them.
    groups = [packed[start:start + NATIVE_GROUP]
              for start in range(0, len(packed), NATIVE_GROUP)]
    if hasattr(native, "scan_gzip"):
        def read(group: list[bytes]) -> int:
            scans = native.scan_gzip([(data, None) for data in group], keys, limit)
            return sum(scan[0] for scan in scans)
    else:
        def read(group: list[bytes]) -> int:
            return sum(native.scan(compression.decompress(data), None, keys)[0]
                       for data in group)
    with ThreadPoolExecutor(max_workers=workers) as threads:
        started = time.perf_counter()
        records = sum(threads.map(read, groups))
        seconds = time.perf_counter() - started
    return {"records": records, "seconds": seconds, "files": len(packed)}


def _own_max_rss() -> dict[str, float]:
    # ru_maxrss is in KiB on Linux.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"max_rss_mb": max(own, children)}


# Memory sampling ------------------------------------------------------------------------

def _descendants(pid: int) -> list[int]:
    found = [pid]
    index = 0
    while index < len(found):
        task_root = Path(f"/proc/{found[index]}/task")
        index += 1
        try:
            tasks = list(task_root.iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            found.extend(int(child) for child in children)
    return found


def _tree_pss(pid: int) -> float:
    """Return the summed proportional set size of a process tree, in MB."""
    total = 0
    for member in _descendants(pid):
        try:
            lines = Path(f"/proc/{member}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total / 1024


@dataclass
class Measurement:
    """The result a child process printed, with the sampled peak memory of its tree."""

    result: dict[str, Any]
    peak_pss_mb: float


def measure(arguments: list[str]) -> Measurement:
    """Run this script as a child with `arguments` and sample its memory."""
    command = [sys.executable, str(Path(__file__).resolve()), *arguments]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_pss(child.pid))
            done.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = child.communicate()
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"benchmark step {arguments[:2]} failed with exit code "
                         f"{child.returncode}")
    return Measurement(json.loads(output), peak[0])


# Data and machine ------------------------------------------------------------------------

def ensure_data(root: Path, records: int, per_file: int) -> tuple[Path, dict[str, Any]]:
    """Return the folder for this size, generating it when missing or different."""
    folder = root / f"r{records}-f{per_file}"
    manifest_path = folder / generate.MANIFEST_FILE
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("records") == records and manifest.get("per_file") == per_file:
            return folder, manifest
    print(f"generating {records:,} records in files of {per_file:,} under {folder} ...",
          flush=True)
    return folder, generate.generate(folder, records, per_file)


def warm_cache(folder: Path) -> int:
    """Read every log file once so that each measurement reads from memory."""
    total = 0
    for path in (folder / "AWSLogs").rglob("*.json.gz"):
        total += len(path.read_bytes())
    return total


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} CPUs ({model}), {memory:.1f} GiB RAM, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


# Report ---------------------------------------------------------------------------------

def _row(name: str, measurement: Measurement) -> str:
    result = measurement.result
    rate = result["records"] / result["seconds"]
    return (f"  {name:<38} {result['seconds']:>8.2f} {rate:>10,.0f} {result['records']:>10,} "
            f"{result['image_records']:>7,} {measurement.peak_pss_mb:>6.0f} "
            f"{result['max_rss_mb']:>6.0f}")


def report(folder: Path, manifest: dict[str, Any], gzip_bytes: int, workers: int,
           imageprov: Measurement, duck: dict[str, Measurement]) -> bool:
    """Print the figures and return whether every side counted the same records."""
    mine = imageprov.result
    print(f"data     {folder}: {manifest['files']:,} files of {manifest['per_file']:,} "
          f"records, {gzip_bytes / 1e6:,.0f} MB gzip, "
          f"{manifest['uncompressed_bytes'] / 1e6:,.0f} MB JSON")
    print(f"machine  {machine()}")
    if duck:
        version = next(iter(duck.values())).result["version"]
        print(f"duckdb   {version}, threads = {workers}")
    print()
    print(f"  {'':<38} {'seconds':>8} {'records/s':>10} {'records':>10} {'images':>7} "
          f"{'PSS':>6} {'RSS':>6}")
    print(_row(f"imageprov ingest, {workers} workers", imageprov))
    for form, measurement in duck.items():
        print(_row(f"duckdb {DUCKDB_FORMS[form]}", measurement))
    print("  images: records whose (eventSource, eventName) is an image event.")
    print("  PSS: peak summed over the process tree, MB. RSS: largest process, MB.")
    print(f"  imageprov also stored {mine['stored_records']:,} records in log_files, "
          f"{mine['events']:,} events, {mine['problems']:,} problems.")
    print()

    same = mine["stored_records"] == mine["records"] == manifest["records"]
    for measurement in duck.values():
        same = same and measurement.result["records"] == mine["records"]
        same = same and measurement.result["image_records"] == mine["image_records"]
    print("counts   " + ("every side agrees" if same else "MISMATCH between sides"))
    rate = mine["records"] / mine["seconds"]
    for form, measurement in duck.items():
        ratio = rate / (measurement.result["records"] / measurement.result["seconds"])
        verdict = "met" if ratio >= TARGET_RATIO else "not met"
        print(f"ratio    imageprov / duckdb {DUCKDB_FORMS[form]}: {ratio:.2f}x "
              f"(target {TARGET_RATIO:.0f}x {verdict})")
    verdict = "met" if imageprov.peak_pss_mb < TARGET_PEAK_MB else "not met"
    print(f"memory   imageprov peak {imageprov.peak_pss_mb:.0f} MB PSS "
          f"(target under {TARGET_PEAK_MB:.0f} MB {verdict})")
    print()
    for form, measurement in duck.items():
        print(f"-- duckdb {DUCKDB_FORMS[form]}\n{measurement.result['sql']};\n")
    return same


def report_floor(floor: dict[str, Any], workers: int, duck: dict[str, Measurement]) -> None:
    """Print the one-core cost of each reading step and the rate it bounds."""
    micros = floor["micros"]
    print(f"floor    one core, {floor['files']:,} files: inflate {micros['inflate']:.2f} us, "
          f"parse {micros['parse']:.2f} us, imageprov's whole read "
          f"{micros['read']:.2f} us per record")
    bound = workers / (micros["inflate"] + micros["parse"]) * 1e6
    print(f"floor    inflating and parsing alone on {workers} cores: at most "
          f"{bound:,.0f} records/s")
    for form, measurement in duck.items():
        rate = measurement.result["records"] / measurement.result["seconds"]
        print(f"floor    that bound / duckdb {DUCKDB_FORMS[form]}: {bound / rate:.2f}x")
    print()


def report_native(native: dict[str, Any], workers: int,
                  duck: dict[str, Measurement]) -> None:
    """Print the rate of the native reader alone and its ratio to DuckDB's."""
    if not native:
        print("native   the native CloudTrail reader is not built")
        return
    rate = native["records"] / native["seconds"]
    print(f"native   reader alone, {workers} threads, {native['files']:,} files: "
          f"{native['seconds']:.2f} s, {rate:,.0f} records/s (inflate, parse, count; "
          "no image event read, nothing stored)")
    for form, measurement in duck.items():
        duck_rate = measurement.result["records"] / measurement.result["seconds"]
        print(f"native   that rate / duckdb {DUCKDB_FORMS[form]}: {rate / duck_rate:.2f}x")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000,
                        help="records in the data set (default: %(default)s)")
    parser.add_argument("--files-of", type=int, default=1000, dest="per_file",
                        help="records per log file (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2,
                        help="imageprov workers (threads or processes) and DuckDB threads "
                             "(default: 2)")
    parser.add_argument("--data", type=Path, default=generate.DEFAULT_FOLDER,
                        help="folder that contains the generated data sets (default: %(default)s)")
    parser.add_argument("--skip-read-json", action="store_true",
                        help="leave out the DuckDB read_json form, the slowest step")
    parser.add_argument("--side", choices=("imageprov", "duckdb", "floor", "native"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--form", choices=list(DUCKDB_FORMS), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.side == "imageprov":
        print(json.dumps(_run_imageprov(args.folder, args.workers)))
        return 0
    if args.side == "duckdb":
        print(json.dumps(_run_duckdb(args.folder, args.workers, args.form)))
        return 0
    if args.side == "floor":
        print(json.dumps(_run_floor(args.folder, FLOOR_FILES)))
        return 0
    if args.side == "native":
        print(json.dumps(_run_native(args.folder, args.workers)))
        return 0

    if args.records < 1 or args.per_file < 1 or args.workers < 1:
        parser.error("--records, --files-of and --workers must be at least 1")
    folder, manifest = ensure_data(args.data, args.records, args.per_file)
    gzip_bytes = warm_cache(folder)
    common = ["--folder", str(folder), "--workers", str(args.workers)]
    imageprov = measure(["--side", "imageprov", *common])
    forms = [form for form in DUCKDB_FORMS if form != "read-json" or not args.skip_read_json]
    duck = {form: measure(["--side", "duckdb", "--form", form, *common]) for form in forms}
    floor = measure(["--side", "floor", *common]).result
    native = measure(["--side", "native", *common]).result
    same = report(folder, manifest, gzip_bytes, args.workers, imageprov, duck)
    report_floor(floor, args.workers, duck)
    report_native(native, args.workers, duck)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
