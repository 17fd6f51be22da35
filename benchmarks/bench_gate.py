"""Load benchmark of the launch gate beside a bare ASGI app answering from a dict.

1. It stores `--images` machine and container images with one verdict each in a
   SQLite file under benchmarks/data (made once and reused), under the hash of
   policies/example.yaml, and marks them evaluated now so every verdict is fresh.
2. It starts `imageprov serve` on loopback over plain HTTP with a new token, and
   waits until the gate has read the verdicts into its cache.
3. It starts `benchmarks/gate_floor.py`: the same verdicts in a Python dict behind a
   bare ASGI callable, on the same uvicorn options.
4. It runs `wrk` (a second process) with `--connections` connections and two
   threads against each: a warm-up, then `--rounds` measured runs that alternate
   between the two servers. Each request is `GET /v1/verdicts/{ref}` for a ref
   drawn at random from all stored images, with the bearer token.
5. It prints requests per second, p50 and p99 latency and non-2xx counts of every
   run, with the load average before it (other processes on the machine take CPU
   from both sides), then the medians and the gate's share of the floor's
   throughput. The exit code is 1 when the gate answered any request with an error.
6. It runs wrk once more for `--miss-seconds` against a gate whose cache keeps one
   answer, so nearly every request reads its image and verdict from SQLite.

Usage: python benchmarks/bench_gate.py [--images N] [--seconds S] [--rounds R]
       [--connections C]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import yaml

from imageprov.api import token_hash
from imageprov.model import Flag, Image, ImageKind, Platform, Verdict, VerdictStatus
from imageprov.policy import load_policy
from imageprov.store import Store

ROOT = Path(__file__).parents[1]
DATA = Path(__file__).parent / "data"
POLICY = ROOT / "policies" / "example.yaml"
ACCOUNTS = ("111122223333", "444455556666", "777788889999")
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _image(index: int) -> Image:
    account = ACCOUNTS[index % len(ACCOUNTS)]
    region = REGIONS[index // len(ACCOUNTS) % len(REGIONS)]
    if index % 5 == 4:
        registry = f"{account}.dkr.ecr.{region}.amazonaws.com"
        digest = f"sha256:{index:064x}"
        return Image(ref=f"{registry}/service-{index % 97}@{digest}", platform=Platform.AWS,
                     kind=ImageKind.CONTAINER, account=account, region=region,
                     native_id=digest, digest=digest, registry=registry,
                     repository=f"service-{index % 97}", inventory_source="bench")
    native_id = f"ami-{index:017x}"
    return Image(ref=f"arn:aws:ec2:{region}:{account}:image/{native_id}",
                 platform=Platform.AWS, kind=ImageKind.AMI, account=account,
                 region=region, native_id=native_id, names=(f"golden-{index}",),
                 inventory_source="bench")


def _verdict(image: Image, index: int, policy_hash: str, now: datetime) -> Verdict:
    if index % 10 == 0:
        return Verdict(image=image.ref, status=VerdictStatus.FLAGGED,
                       flags=(Flag.UNEXPECTED_ACTOR,), rule="builders",
                       reason="ec2.amazonaws.com:CreateImage by "
                              f"arn:aws:iam::{image.account}:user/mallory: not an "
                              "approved builder",
                       policy_hash=policy_hash, decided_at=now)
    return Verdict(image=image.ref, status=VerdictStatus.APPROVED, rule="golden-ami-pipeline",
                   reason="ec2.amazonaws.com:CreateImage by "
                          f"arn:aws:sts::{image.account}:assumed-role/ImageBuild/packer "
                          "matches builder 'golden-ami-pipeline'",
                   event_id=f"e{index:08d}", policy_hash=policy_hash, decided_at=now)


def build_database(count: int, policy_hash: str,
                   policy_text: str) -> tuple[str, list[str], str]:
    """Return the database URL, every ref and a new token, writing the database when
    it is missing."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"gate-{count}.db"
    url = f"sqlite:///{path}"
    images = [_image(index) for index in range(count)]
    refs = [image.ref for image in images]
    now = datetime.now(UTC)
    store = Store.open(url)
    try:
        store.save_policy(policy_hash, str(POLICY), policy_text)
        if len(store.current_verdicts()) != count:
            started = time.perf_counter()
            store.save_images(images)
            store.save_verdicts(_verdict(image, index, policy_hash, now)
                                for index, image in enumerate(images))
            print(f"stored {count:,} images and verdicts in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
        # Every stored verdict counts as confirmed now, as after a full evaluation.
        store.mark_evaluated(policy_hash, now)
        token = "ipg_bench_" + os.urandom(16).hex()
        store.create_token(f"bench-{time.time_ns()}", token_hash(token))
    finally:
        store.close()
    return url, refs, token


def _wait_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server at {url} not ready after {seconds} s")


def _lua_script(folder: Path, refs: list[str], token: str) -> Path:
    lines = ",\n".join(f'  "/v1/verdicts/{ref}"' for ref in refs)
    script = folder / "verdicts.lua"
    script.write_text(
        f"local paths = {{\n{lines}\n}}\n"
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        "math.randomseed(os.time())\n"
        "request = function()\n"
        '  return wrk.format("GET", paths[math.random(#paths)])\n'
        "end\n")
    return script


def _wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, str]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
               "-s", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    figures = {"output": output}
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    figures["rps"] = rate.group(1) if rate else "?"
    for label in ("50%", "99%"):
        found = re.search(rf"^\s+{label}\s+(\S+)", output, re.MULTILINE)
        figures[label] = found.group(1) if found else "?"
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    figures["non2xx"] = errors.group(1) if errors else "0"
    return figures


class _Server:
    """A server process started for the benchmark, with the time it took to be ready."""

    def __init__(self, name: str, command: list[str], port: int, ready: str) -> None:
        self.name = name
        self.base = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=sys.stderr)
        _wait_ready(self.base + ready, self.process)
        self.ready_seconds = time.perf_counter() - started
        self.rounds: list[dict[str, str]] = []

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _gate_server(name: str, folder: Path, url: str, cache_size: int) -> _Server:
    port = _free_port()
    config = folder / f"gate-{cache_size}.yaml"
    config.write_text(yaml.safe_dump({
        "database": url, "policy": str(POLICY),
        "serve": {"host": "127.0.0.1", "port": port, "max_verdict_age": "30d",
                  "cache_size": cache_size},
    }))
    command = [sys.executable, "-m", "imageprov", "--log-level", "WARNING", "serve",
               "--config", str(config)]
    return _Server(name, command, port, "/healthz")


def _measure(servers: list[_Server], script: Path, args: argparse.Namespace) -> None:
    """Warm every server up, then measure them in turn, round after round, so that
    load from other processes falls on each side alike."""
    for server in servers:
        _wrk(server.base, script, args.connections, args.warmup)
    for round_number in range(1, args.rounds + 1):
        for server in servers:
            load = os.getloadavg()
            figures = _wrk(server.base, script, args.connections, args.seconds)
            figures["load"] = f"{load[0]:.2f}"
            server.rounds.append(figures)
            print(f"--- {server.name}, round {round_number}\n{figures['output']}",
                  flush=True)


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    if unit == "us":
        return value / 1000
    if unit == "s":
        return value * 1000
    return value


def _measure_misses(folder: Path, url: str, script: Path,
                    args: argparse.Namespace) -> None:
    """Measure a gate whose cache keeps one answer, so that nearly every request
    reads its verdict from the store."""
    server = _gate_server("imageprov serve, cache of 1", folder, url, 1)
    try:
        figures = _wrk(server.base, script, args.connections, args.miss_seconds)
    finally:
        server.stop()
    print(f"--- {server.name}\n{figures['output']}", flush=True)
    print(f"store reads: {float(figures['rps']):,.0f} req/s, p50 {figures['50%']}, "
          f"p99 {figures['99%']}, non-2xx {figures['non2xx']}")


def _median(rounds: list[dict[str, str]]) -> dict[str, float]:
    return {
        "rps": statistics.median(float(figures["rps"]) for figures in rounds),
        "p50": statistics.median(_milliseconds(figures["50%"]) for figures in rounds),
        "p99": statistics.median(_milliseconds(figures["99%"]) for figures in rounds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--miss-seconds", type=int, default=10,
                        help="length of the run without a cache; 0 skips it")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    policy, text = load_policy(POLICY)
    url, refs, token = build_database(args.images, policy.hash, text)
    folder = Path(tempfile.mkdtemp(prefix="bench-gate-"))
    script = _lua_script(folder, refs, token)

    floor_port = _free_port()
    floor_command = [sys.executable, str(Path(__file__).parent / "gate_floor.py"), url,
                     str(floor_port)]
    servers = [
        _gate_server("imageprov serve", folder, url, args.images),
        _Server("bare ASGI dict app", floor_command, floor_port, "/"),
    ]
    try:
        _measure(servers, script, args)
    finally:
        for server in servers:
            server.stop()

    print(f"\n{args.images:,} stored images, {args.connections} connections, "
          f"{args.rounds} rounds of {args.seconds} s after {args.warmup} s of warm-up, "
          f"{os.cpu_count()} CPUs")
    print(f"{'server':<22}{'round':>6}{'req/s':>10}{'p50':>10}{'p99':>10}{'non-2xx':>9}"
          f"{'load':>7}")
    for server in servers:
        for number, figures in enumerate(server.rounds, 1):
            print(f"{server.name:<22}{number:>6}{float(figures['rps']):>10,.0f}"
                  f"{figures['50%']:>10}{figures['99%']:>10}{figures['non2xx']:>9}"
                  f"{figures['load']:>7}")
    for server in servers:
        print(f"{server.name}: ready {server.ready_seconds:.1f} s after start")
    gate, floor = (_median(server.rounds) for server in servers)
    share = gate["rps"] / floor["rps"]
    print(f"median of rounds: gate {gate['rps']:,.0f} req/s, p50 {gate['p50']:.2f} ms, "
          f"p99 {gate['p99']:.2f} ms; floor {floor['rps']:,.0f} req/s, p50 "
          f"{floor['p50']:.2f} ms, p99 {floor['p99']:.2f} ms")
    print(f"gate/floor throughput {share:.0%} (target at least 50%); gate p99 "
          f"{gate['p99']:.2f} ms (target under 5 ms)")
    if args.miss_seconds:
        _measure_misses(folder, url, script, args)
    shutil.rmtree(folder, ignore_errors=True)
    # A stored verdict of every image stays fresh across the run, so any non-2xx
    # answer is an error of the gate.
    if any(figures["non2xx"] != "0" for figures in servers[0].rounds):
        raise SystemExit("the gate returned non-2xx responses")


if __name__ == "__main__":
    main()
