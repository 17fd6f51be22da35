"""Time a steady-state imageprov cycle in moto, beside Cloud Custodian on the same AMIs.

1. Start `moto_server` on a free loopback port, with moto's default AMIs switched
   off, and point boto3 at it through `AWS_ENDPOINT_URL` with dummy credentials.
2. Register `--amis` AMIs (RegisterImage) named `bench-ami-<number>`. Push
   `--digests` ECR images with distinct manifests (PutImage), spread over
   `--repositories` repositories. Both loads run in `--threads` threads.
3. Write CloudTrail log files into a local folder. Half of the AMIs get a
   CreateImage record from the pipeline role, a tenth one from an IAM user that no
   builder names, and the rest none. Half of the digests get a PutImage record from
   the CI role, a twentieth one from that IAM user, and the rest none. Records of
   calls that name no image are mixed in.
4. Run one imageprov cycle (`imageprov.cycle.run_cycle`) into a new SQLite
   database, then a second cycle with nothing changed. The second cycle must write
   no verdict row, and the exit code is 1 when it writes any.
5. Create a virtual environment for Cloud Custodian (`c7n`) when it is missing, and
   time two runs of `custodian run` with an `aws.ami` policy against the same moto
   server. The policy keeps the AMIs whose name ends in 0 or 5 (a fifth of them)
   and that are less than a day old (all of them). The exit code is 1 when the
   count of matched AMIs is not that fifth.

Both cycles judge images with a clock two hours ahead. Every image is then past the
policy's delivery window, so an image without a creation event is unattributed
rather than pending.

Seconds for imageprov cover the `run_cycle` call, not opening the database or
migrating it. Seconds for Custodian cover the whole `custodian run` process, and
the policy's own duration from its `metadata.json` is printed beside them. "moto
CPU" is the user and system CPU time of the `moto_server` process during each
measurement.

Usage: python benchmarks/bench_cycle.py [--amis N] [--digests N]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import boto3
import yaml

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent
sys.path.insert(0, str(ROOT))

from imageprov.config import load_config  # noqa: E402
from imageprov.cycle import CycleSummary, run_cycle  # noqa: E402
from imageprov.policy import load_policy  # noqa: E402
from imageprov.store import Store  # noqa: E402
from tests.helpers import trail  # noqa: E402

# moto's default account, which owns every image created through its API.
ACCOUNT = "123456789012"
REGION = "us-east-1"
CLOCK_AHEAD = timedelta(hours=2)
RECORDS_PER_FILE = 1000
NOISE_PER_FILE = 250
C7N_POLICY_NAME = "ami-name-and-age"
# Every AMI whose index is a multiple of this ends its name in 0 or 5.
C7N_MATCH_EVERY = 5

POLICY = {
    "version": 1,
    "delivery_window": "1h",
    "builders": [
        {"name": "golden-ami-pipeline",
         "roles": [f"arn:aws:iam::{ACCOUNT}:role/build/ImageBuild"],
         "networks": ["10.20.0.0/16"]},
        {"name": "ci-image-push",
         "roles": [f"arn:aws:iam::{ACCOUNT}:role/ci/GitHubActionsECRPush"],
         "actions": ["push"]},
    ],
}

C7N_POLICY = {
    "policies": [{
        "name": C7N_POLICY_NAME,
        "resource": "aws.ami",
        "filters": [
            {"type": "value", "key": "Name", "op": "glob", "value": "bench-ami-*[05]"},
            {"type": "image-age", "op": "lt", "days": 1},
        ],
    }],
}

T = TypeVar("T")


# moto server --------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def moto_server(log_path: Path) -> Iterator[tuple[str, int]]:
    """Run `moto_server` on loopback for the block and yield its URL and process id."""
    executable = shutil.which("moto_server")
    if executable is None:
        raise SystemExit("moto_server is not installed: pip install 'moto[server]'")
    port = _free_port()
    env = dict(os.environ, MOTO_EC2_LOAD_DEFAULT_AMIS="false")
    with log_path.open("wb") as log:
        process = subprocess.Popen([executable, "-H", "127.0.0.1", "-p", str(port)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_http(f"{url}/moto-api/")
            yield url, process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def aws_environment(url: str) -> dict[str, str]:
    """Return the variables that send AWS clients to `url` with dummy credentials."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def process_cpu_seconds(pid: int) -> float:
    """Return the user and system CPU time a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Loading moto -------------------------------------------------------------------------

def _in_threads(service: str, work: Callable[[Any, int], T], count: int,
                threads: int) -> list[T]:
    """Call `work(client, index)` for each index, with one boto3 client per thread."""
    local = threading.local()

    def call(index: int) -> T:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = boto3.session.Session().client(
                service, region_name=REGION)
        return work(client, index)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(call, range(count), chunksize=64))


def _register(client: Any, index: int) -> str:
    response = client.register_image(Name=f"bench-ami-{index:05d}",
                                     RootDeviceName="/dev/xvda")
    return response["ImageId"]


def load_amis(count: int, threads: int) -> list[str]:
    """Register `count` AMIs and return their ids.

    The AMIs carry no tags, because moto 5.2 finds the tags of each image it
    describes by scanning every tag in the region. Tagging all of them would make
    DescribeImages quadratic in the number of AMIs.
    """
    return _in_threads("ec2", _register, count, threads)


@dataclass(frozen=True)
class Pushed:
    repository: str
    tag: str
    digest: str


def _manifest(index: int) -> str:
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": 7023, "digest": f"sha256:{index:064x}"},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 32654, "digest": f"sha256:{index + 2**128:064x}"}],
    })


def load_digests(count: int, repositories: int, threads: int) -> list[Pushed]:
    """Push `count` images with distinct manifests, in turn to each repository."""
    names = [f"bench-repo-{number:03d}" for number in range(repositories)]
    ecr = boto3.client("ecr", region_name=REGION)
    for name in names:
        ecr.create_repository(repositoryName=name)

    def push(client: Any, index: int) -> Pushed:
        repository = names[index % repositories]
        tag = f"build-{index:05d}"
        response = client.put_image(repositoryName=repository,
                                    imageManifest=_manifest(index), imageTag=tag)
        return Pushed(repository, tag, response["image"]["imageId"]["imageDigest"])

    pushed = _in_threads("ecr", push, count, threads)
    distinct = len({item.digest for item in pushed})
    if distinct != count:
        raise SystemExit(f"moto returned {distinct:,} distinct digests for {count:,} "
                         f"pushes; expected one digest per manifest")
    return pushed


# CloudTrail files ---------------------------------------------------------------------

def _image_records(amis: list[str], digests: list[Pushed],
                   when: datetime) -> list[dict]:
    pipeline = trail.role_identity("ImageBuild", "packer-7", account=ACCOUNT,
                                   path="/build/")
    ci = trail.role_identity("GitHubActionsECRPush", "gha-11", account=ACCOUNT,
                             path="/ci/")
    contractor = trail.user_identity("contractor-tmp", account=ACCOUNT)
    records: list[dict] = []
    for index, image_id in enumerate(amis):
        moment = when + timedelta(milliseconds=10 * len(records))
        if index % 10 < 5:
            records.append(trail.create_image(pipeline, moment, image_id,
                                              ip="10.20.4.17", account=ACCOUNT))
        elif index % 10 == 5:
            records.append(trail.create_image(contractor, moment, image_id,
                                              ip="10.20.4.18", account=ACCOUNT))
    for index, item in enumerate(digests):
        moment = when + timedelta(milliseconds=10 * len(records))
        identity, address = None, ""
        if index % 2 == 0:
            identity, address = ci, "10.30.1.9"
        elif index % 20 == 1:
            identity, address = contractor, "10.30.1.50"
        if identity is not None:
            records.append(trail.put_image(identity, moment, item.repository, item.tag,
                                           item.digest, registry=ACCOUNT,
                                           account=ACCOUNT, ip=address))
    return records


def write_trail(folder: Path, amis: list[str], digests: list[Pushed],
                when: datetime) -> tuple[int, int]:
    """Write gzip log files in the S3 delivery layout.

    Returns the number of files and the number of records that name an image.
    """
    records = _image_records(amis, digests, when)
    files = 0
    for start in range(0, len(records), RECORDS_PER_FILE):
        part = records[start : start + RECORDS_PER_FILE]
        first = datetime.fromisoformat(part[0]["eventTime"].replace("Z", "+00:00"))
        delivered = first + timedelta(minutes=5)
        key = trail.log_key(delivered, account=ACCOUNT, region=REGION,
                            suffix=f"bench{files:011d}")
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(trail.log_file([*trail.noise(first, NOISE_PER_FILE,
                                                      account=ACCOUNT), *part]))
        files += 1
    return files, len(records)


# imageprov ----------------------------------------------------------------------------

@dataclass
class CycleRun:
    seconds: float
    moto_cpu_seconds: float
    summary: CycleSummary
    log_lines: list[str] = field(default_factory=list)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def write_config(folder: Path) -> Path:
    (folder / "policy.yaml").write_text(yaml.safe_dump(POLICY))
    config = {
        "policy": "policy.yaml",
        "workers": 2,
        "aws": {
            "api": {"regions": [REGION], "ami": True, "ecr": True},
            "cloudtrail": [{"path": "trail"}],
        },
    }
    path = folder / "imageprov.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_imageprov(config_path: Path, database_url: str, moto_pid: int,
                  profile: Path | None = None) -> CycleRun:
    """Run one cycle and time it, with the per-source log lines of imageprov."""
    config = load_config(config_path)
    policy, text = load_policy(config.policy)
    store = Store.open(database_url)
    handler = _Lines()
    package_logger = logging.getLogger("imageprov")
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO)
    profiler = cProfile.Profile() if profile else None
    try:
        now = datetime.now(UTC) + CLOCK_AHEAD
        cpu = process_cpu_seconds(moto_pid)
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        summary = run_cycle(config, store, policy, text, now=now)
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - started
        moto_cpu = process_cpu_seconds(moto_pid) - cpu
    finally:
        package_logger.removeHandler(handler)
        store.close()
    if profiler is not None and profile is not None:
        profiler.dump_stats(str(profile))
    return CycleRun(seconds, moto_cpu, summary, handler.lines)


# Cloud Custodian ----------------------------------------------------------------------

@dataclass
class CustodianRun:
    seconds: float
    policy_seconds: float
    matched: int
    moto_cpu_seconds: float


def ensure_custodian(venv: Path) -> tuple[Path, float | None]:
    """Create a virtual environment with c7n unless it exists, and return `custodian`.

    The second value is the seconds that creating and installing took, or None
    when the environment existed already.
    """
    custodian = venv / "bin" / "custodian"
    if custodian.exists():
        return custodian, None
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "c7n"], check=True)
    return custodian, time.perf_counter() - started


def custodian_versions(venv: Path) -> str:
    script = ("from importlib.metadata import version as v; "
              "print(', '.join(f'{n} {v(n)}' for n in ('c7n', 'boto3', 'botocore')))")
    result = subprocess.run([str(venv / "bin" / "python"), "-c", script],
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def run_custodian(custodian: Path, url: str, folder: Path,
                  moto_pid: int) -> CustodianRun:
    """Time `custodian run` of the AMI policy against the moto server at `url`."""
    policy_path = folder / "c7n-policy.yml"
    policy_path.write_text(yaml.safe_dump(C7N_POLICY, sort_keys=False))
    output = folder / "c7n-output"
    shutil.rmtree(output, ignore_errors=True)
    home = folder / "c7n-home"
    home.mkdir(exist_ok=True)
    # Only these variables reach Custodian, so no real profile or credentials can.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "LANG": "C.UTF-8", **aws_environment(url)}
    # --cache-period 0 turns off Custodian's resource cache, so each run lists anew.
    command = [str(custodian), "run", "--region", REGION, "--cache-period", "0",
               "-s", str(output), str(policy_path)]
    cpu = process_cpu_seconds(moto_pid)
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    moto_cpu = process_cpu_seconds(moto_pid) - cpu
    if result.returncode != 0:
        raise SystemExit(f"custodian run failed with exit code {result.returncode}:\n"
                         f"{result.stderr[-2000:]}")
    run_folder = output / C7N_POLICY_NAME
    resources = json.loads((run_folder / "resources.json").read_text())
    execution = json.loads((run_folder / "metadata.json").read_text())["execution"]
    return CustodianRun(seconds, float(execution["duration"]), len(resources), moto_cpu)


# Report -------------------------------------------------------------------------------

def machine() -> list[str]:
    model = "unknown CPU"
    memory = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
            break
    packages = ", ".join(f"{name} {metadata.version(name)}" for name in
                         ("imageprov", "moto", "boto3", "botocore", "SQLAlchemy"))
    return [
        f"nproc {len(os.sched_getaffinity(0))}, CPU {model!r}, memory {memory}",
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        packages,
    ]


def print_cycle(label: str, run: CycleRun) -> None:
    summary = run.summary
    logs = summary.logs
    print(f"{label}: {run.seconds:.2f} s, verdict rows written "
          f"{summary.verdicts_changed:,}, images {summary.images:,}, log files read "
          f"{logs.files:,}, skipped as known {logs.skipped:,}, new events "
          f"{logs.new_events:,}; moto server CPU {run.moto_cpu_seconds:.2f} s")
    print(f"  verdicts by status: {summary.by_status}")
    if summary.sources_failed:
        print(f"  FAILED sources: {summary.sources_failed}")
    for line in run.log_lines:
        if line.startswith("source="):
            print(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amis", type=int, default=10_000,
                        help="AMIs to register (default: %(default)s)")
    parser.add_argument("--digests", type=int, default=50_000,
                        help="ECR images to push (default: %(default)s)")
    parser.add_argument("--repositories", type=int, default=50,
                        help="ECR repositories the images go in (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=4,
                        help="client threads that load moto (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=BENCHMARKS / "data",
                        help="folder for the run's files and the c7n virtual "
                             "environment (default: %(default)s)")
    parser.add_argument("--skip-c7n", action="store_true",
                        help="leave out the Cloud Custodian run")
    parser.add_argument("--profile", type=Path,
                        help="write a cProfile of the steady-state cycle to this file")
    args = parser.parse_args(argv)
    if min(args.amis, args.digests, args.repositories, args.threads) < 1:
        parser.error("--amis, --digests, --repositories and --threads must be "
                     "at least 1")

    folder = (args.data / f"cycle-a{args.amis}-d{args.digests}").resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ.pop("AWS_PROFILE", None)
    for line in machine():
        print(f"machine  {line}")

    with moto_server(folder / "moto.log") as (url, moto_pid):
        os.environ.update(aws_environment(url))
        print(f"moto     {url}, log in {folder / 'moto.log'}")
        return _run(args, folder, url, moto_pid)


def _run(args: argparse.Namespace, folder: Path, url: str, moto_pid: int) -> int:
    when = datetime.now(UTC)
    started = time.perf_counter()
    amis = load_amis(args.amis, args.threads)
    print(f"load     {len(amis):,} AMIs in {time.perf_counter() - started:.1f} s "
          f"({args.threads} threads)")
    started = time.perf_counter()
    digests = load_digests(args.digests, args.repositories, args.threads)
    print(f"load     {len(digests):,} ECR images in {args.repositories} repositories "
          f"in {time.perf_counter() - started:.1f} s ({args.threads} threads)")
    files, image_records = write_trail(folder / "trail", amis, digests, when)
    print(f"trail    {files} files, {image_records:,} image records and "
          f"{files * NOISE_PER_FILE:,} other records in {folder / 'trail'}")

    config_path = write_config(folder)
    database_url = f"sqlite:///{folder / 'imageprov.db'}"
    first = run_imageprov(config_path, database_url, moto_pid)
    print_cycle("first cycle, new database", first)
    steady = run_imageprov(config_path, database_url, moto_pid, args.profile)
    print_cycle("steady-state cycle, nothing changed", steady)
    custodian = [] if args.skip_c7n else _custodian_runs(args, folder, url, moto_pid)
    print()
    print_summary(args, first, steady, custodian)

    failed = False
    if steady.summary.verdicts_changed != 0 or steady.summary.sources_failed:
        print("FAIL     the steady-state cycle wrote verdict rows or lost a source")
        failed = True
    if any(run.matched != _c7n_expected(args.amis) for run in custodian):
        print("FAIL     Custodian matched a different number of AMIs than expected")
        failed = True
    return 1 if failed else 0


def _c7n_expected(amis: int) -> int:
    return len(range(0, amis, C7N_MATCH_EVERY))


def _custodian_runs(args: argparse.Namespace, folder: Path, url: str,
                    moto_pid: int) -> list[CustodianRun]:
    """Install Custodian when it is missing, then run its policy twice."""
    venv = (args.data / "venv-c7n").resolve()
    custodian, install_seconds = ensure_custodian(venv)
    installed = (f"installed in {install_seconds:.0f} s" if install_seconds is not None
                 else "already installed")
    print(f"c7n      {custodian_versions(venv)} in {venv}, {installed}")
    return [run_custodian(custodian, url, folder, moto_pid) for _ in range(2)]


def print_summary(args: argparse.Namespace, first: CycleRun, steady: CycleRun,
                  custodian: list[CustodianRun]) -> None:
    images = f"{args.amis:,} AMIs and {args.digests:,} ECR images"
    ami_seconds = _source_seconds(steady, "ec2:")
    rows = [
        ("imageprov first cycle, new database", f"{first.seconds:.2f}",
         f"{first.moto_cpu_seconds:.2f}",
         f"{first.summary.verdicts_changed:,} verdict rows written, {images}"),
        ("imageprov steady-state cycle", f"{steady.seconds:.2f}",
         f"{steady.moto_cpu_seconds:.2f}",
         f"{steady.summary.verdicts_changed:,} verdict rows written, {images}"),
        ("  of which AMI inventory", ami_seconds, "", f"{args.amis:,} AMIs listed"),
    ]
    for number, run in enumerate(custodian, start=1):
        rows.append((f"custodian run {number}, process", f"{run.seconds:.2f}",
                     f"{run.moto_cpu_seconds:.2f}",
                     f"{run.matched:,} of {args.amis:,} AMIs matched "
                     f"(expected {_c7n_expected(args.amis):,})"))
        rows.append(("  of which the policy (metadata.json)",
                     f"{run.policy_seconds:.2f}", "", ""))
    print(f"summary  {'':<38} {'seconds':>8} {'moto CPU s':>10}  result")
    for label, seconds, moto_cpu, result in rows:
        print(f"         {label:<38} {seconds:>8} {moto_cpu:>10}  {result}".rstrip())


def _source_seconds(run: CycleRun, prefix: str) -> str:
    """Return the seconds in the inventory log line of the source named `prefix...`."""
    for line in run.log_lines:
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if fields.get("source", "").startswith(prefix) and "seconds" in fields:
            return fields["seconds"]
    return "-"


if __name__ == "__main__":
    sys.exit(main())
