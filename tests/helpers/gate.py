"""Start `imageprov serve` over a scanned copy of the bundled example, and call it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import free_port, run_cli
from tests.helpers.cloudtrail_standin import self_signed

ROOT = Path(__file__).parents[2]


@dataclass
class GateServer:
    url: str
    token: str
    context: ssl.SSLContext | None
    process: subprocess.Popen[str]
    log: Path
    config: Path
    policy: Path
    database: str
    certificate: Path | None

    def call(self, method: str, path: str, body: Any = None,
             token: str | None = "default") -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        token = self.token if token == "default" else token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.context) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def verdict(self, image: str, token: str | None = "default") -> tuple[int, dict]:
        return self.call("GET", "/v1/verdicts/" + urllib.parse.quote(image, safe=""),
                         token=token)


def wait_for(predicate, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def _prepare(folder: Path, serve: dict[str, Any], tls: bool,
             database: str | None) -> tuple[Path, Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "examples" / "aws", folder / "example")
    policy = folder / "policy.yaml"
    shutil.copy(ROOT / "policies" / "example.yaml", policy)
    database = database or f"sqlite:///{folder / 'gate.db'}"
    config = yaml.safe_load((folder / "example" / "imageprov.yaml").read_text())
    config.update(policy=str(policy), database=database)
    serve = {"host": "127.0.0.1", "port": free_port(), "refresh": 0.2, **serve}
    if tls:
        certificate, key = self_signed(folder)
        serve["tls"] = {"certificate": str(certificate), "key": str(key)}
    config["serve"] = serve
    path = folder / "example" / "imageprov.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_cli("scan", "--config", str(path), "--no-show")
    assert result.returncode == 0, result.stderr
    return path, policy, database


def start_gate(folder: Path, serve: dict[str, Any] | None = None,
               tls: bool = True, database: str | None = None) -> GateServer:
    """Scan the example into `database` (a new SQLite file by default), create a
    token, and start `imageprov serve` on a free port; return once it is healthy."""
    config, policy, database = _prepare(folder, serve or {}, tls, database)
    created = run_cli("token", "create", "tests", "--config", str(config))
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    settings = yaml.safe_load(config.read_text())["serve"]
    log = folder / "serve.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "imageprov", "serve", "--config", str(config)],
        stdout=log.open("w"), stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    certificate = Path(settings["tls"]["certificate"]) if tls else None
    context = ssl.create_default_context(cafile=str(certificate)) if tls else None
    scheme = "https" if tls else "http"
    server = GateServer(f"{scheme}://127.0.0.1:{settings['port']}", token, context,
                        process, log, config, policy, database, certificate)

    def healthy() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return server.call("GET", "/healthz", token=None)[0] == 200
        except OSError:
            return False

    wait_for(healthy)
    return server


def stop_gate(server: GateServer) -> str:
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=30)
    return server.log.read_text()
