"""The daemon as a real process: scheduled steps, metrics, health and SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from tests.conftest import free_port

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "aws"


def _config(tmp_path: Path, port: int) -> Path:
    config = {
        "policy": str(ROOT / "policies" / "example.yaml"),
        "workers": 1,
        "schedule": {"inventory": {"interval": "1s"}, "logs": {"interval": "1s"},
                     "evaluate": {"interval": "1s"}},
        "metrics": {"host": "127.0.0.1", "port": port},
        "aws": {
            "inventory_files": [
                {"path": str(EXAMPLE / "inventory" / "ec2-describe-images.json"),
                 "kind": "ami", "region": "us-east-1"},
                {"path": str(EXAMPLE / "inventory" / "ecr-describe-images-payments-api.json"),
                 "kind": "ecr", "region": "us-east-1"},
            ],
            "cloudtrail": [{"path": str(EXAMPLE / "cloudtrail")}],
        },
    }
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        # The daemon has not opened its port yet.
        return 0, b""


def _wait_for(predicate, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_daemon_serves_metrics_and_stops_on_sigterm(tmp_path, database_url):
    port = free_port()
    database = database_url
    process = subprocess.Popen(
        [sys.executable, "-m", "imageprov", "run", "--config", str(_config(tmp_path, port)),
         "--database", database],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        def evaluated():
            status, body = _get(f"http://127.0.0.1:{port}/metrics")
            return status == 200 and b'imageprov_images{status="flagged"} 3.0' in body

        _wait_for(evaluated)
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        health = json.loads(body)
        assert status == 200
        assert health["status"] == "ok"
        assert set(health["last_success"]) == {"inventory", "logs", "evaluate"}
        _, metrics = _get(f"http://127.0.0.1:{port}/metrics")
        assert b'imageprov_records_read_total{source="cloudtrail"} 138.0' in metrics
        assert b'imageprov_checkpoint_lag_seconds{account="111122223333"' in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "stopping after the step in progress" in stderr
    assert "daemon stopped" in stderr
    assert "source=" in stderr


def test_daemon_reports_broken_policy_unhealthy(tmp_path):
    port = free_port()
    config_path = _config(tmp_path, port)
    policy = tmp_path / "policy.yaml"
    policy.write_text((ROOT / "policies" / "example.yaml").read_text())
    config = yaml.safe_load(config_path.read_text())
    config["policy"] = str(policy)
    config_path.write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "imageprov", "run", "--config", str(config_path),
         "--database", f"sqlite:///{tmp_path / 'broken.db'}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _get(f"http://127.0.0.1:{port}/healthz")[0] == 200)
        policy.write_text("builders: []\n")
        _wait_for(lambda: _get(f"http://127.0.0.1:{port}/healthz")[0] == 503)
        _, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert "evaluate" in json.loads(body)["failing"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    assert process.returncode == 0



def test_stop_during_start_up_ends_run(tmp_path):
    import threading

    from imageprov.config import load_config
    from imageprov.daemon import Daemon
    from imageprov.store import Store

    config = load_config(_config(tmp_path, free_port()))
    store = Store.open(f"sqlite:///{tmp_path / 'early.db'}")
    daemon = Daemon(config, store)
    # SIGTERM that arrives before the scheduler runs, as during start-up.
    daemon.stop()
    finished = threading.Event()
    runner = threading.Thread(
        target=lambda: (daemon.run(install_signals=False), finished.set()), daemon=True)
    runner.start()
    assert finished.wait(30), "run() kept going after stop()"
    assert not daemon.scheduler.running
    store.close()
