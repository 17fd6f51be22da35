"""Load benchmark of the launch gate beside a bare ASGI app answering from a dict.

1. It stores `--images` machine and container images with one verdict each in a
   SQLite file under benchmarks/data (made once and reused), under the hash of
   policies/example.yaml, and marks them evaluated now so every verdict is fresh.
2. It starts `imageprov serve` on loopback over plain HTTP with a new token, and
   waits until the gate has read the verdicts into its cache.
3. It runs `wrk` (a second process) with `--connections` connections and two
   threads: a warm-up, then a measured run. Each request is
   `GET /v1/verdicts/{ref}` for a ref drawn at random from all stored images, with
   the bearer token.
4. It does the same against `benchmarks/gate_floor.py`, the same verdicts in a
   Python dict behind a bare ASGI callable on the same uvicorn options.
5. It prints requests per second, p50 and p99 latency and non-2xx counts for both,
   the gate's share of the floor's throughput, and the load average before each
   run, since other processes on the machine take CPU from both sides.

Usage: python benchmarks/bench_gate.py [--images N] [--seconds S] [--connections C]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
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


def _run(name: str, command: list[str], port: int, ready: str, script: Path,
         args: argparse.Namespace) -> dict[str, str]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=sys.stderr)
    try:
        _wait_ready(f"http://127.0.0.1:{port}{ready}", process)
        base = f"http://127.0.0.1:{port}"
        _wrk(base, script, args.connections, args.warmup)
        load = os.getloadavg()
        figures = _wrk(base, script, args.connections, args.seconds)
        figures["load"] = f"{load[0]:.2f}"
        print(f"--- {name}\n{figures['output']}", flush=True)
        return figures
    finally:
        process.terminate()
        process.wait(timeout=30)


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    policy, text = load_policy(POLICY)
    url, refs, token = build_database(args.images, policy.hash, text)
    folder = Path(tempfile.mkdtemp(prefix="bench-gate-"))
    script = _lua_script(folder, refs, token)

    gate_port = _free_port()
    config = folder / "gate.yaml"
    config.write_text(yaml.safe_dump({
        "database": url, "policy": str(POLICY),
        "serve": {"host": "127.0.0.1", "port": gate_port, "max_verdict_age": "30d",
                  "cache_size": max(args.images, 1)},
    }))
    gate = _run("imageprov serve", [sys.executable, "-m", "imageprov", "--log-level",
                                    "WARNING", "serve", "--config", str(config)],
                gate_port, "/healthz", script, args)
    floor_port = _free_port()
    floor = _run("bare ASGI dict app", [sys.executable, str(Path(__file__).parent /
                                                             "gate_floor.py"),
                                        url, str(floor_port)],
                 floor_port, "/", script, args)
    shutil.rmtree(folder, ignore_errors=True)

    print(f"\n{args.images:,} stored images, {args.connections} connections, "
          f"{args.seconds} s per run after {args.warmup} s of warm-up, {os.cpu_count()} CPUs")
    print(f"{'server':<22}{'req/s':>10}{'p50':>10}{'p99':>10}{'non-2xx':>9}{'load':>7}")
    for name, figures in (("imageprov serve", gate), ("bare ASGI dict app", floor)):
        print(f"{name:<22}{float(figures['rps']):>10,.0f}{figures['50%']:>10}"
              f"{figures['99%']:>10}{figures['non2xx']:>9}{figures['load']:>7}")
    share = float(gate["rps"]) / float(floor["rps"])
    p99 = _milliseconds(gate["99%"])
    print(f"gate/floor throughput {share:.0%} (target at least 50%); gate p99 "
          f"{p99:.2f} ms (target under 5 ms)")
    # A stored verdict of every image stays fresh across the run, so any non-2xx
    # answer is an error of the gate.
    if gate["non2xx"] != "0":
        raise SystemExit("the gate answered with errors")


if __name__ == "__main__":
    main()
