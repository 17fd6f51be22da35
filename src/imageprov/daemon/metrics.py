"""Prometheus metrics and the health endpoint of the daemon."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


class DaemonMetrics:
    """The daemon's metrics on a registry of their own, so tests can read them apart."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.records_read = Counter(
            "imageprov_records_read", "Audit-log records read.", ["source"],
            registry=self.registry)
        self.records_quarantined = Counter(
            "imageprov_records_quarantined", "Records that could not be read.", ["source"],
            registry=self.registry)
        self.images = Gauge(
            "imageprov_images", "Images by verdict status.", ["status"],
            registry=self.registry)
        self.step_seconds = Histogram(
            "imageprov_step_seconds", "Duration of each daemon step.", ["step"],
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600), registry=self.registry)
        self.step_failures = Counter(
            "imageprov_step_failures", "Daemon steps that failed.", ["step"],
            registry=self.registry)
        self.checkpoint_lag = Gauge(
            "imageprov_checkpoint_lag_seconds",
            "Seconds between now and the newest event time read, per account and region.",
            ["account", "region"], registry=self.registry)
        self.last_success: dict[str, float] = {}
        self.last_failure: dict[str, str] = {}
        self.lock = threading.Lock()

    def succeeded(self, step: str) -> None:
        with self.lock:
            self.last_success[step] = time.time()
            self.last_failure.pop(step, None)

    def failed(self, step: str, error: str) -> None:
        self.step_failures.labels(step).inc()
        with self.lock:
            self.last_failure[step] = error

    def health(self) -> tuple[int, dict[str, object]]:
        """Return the HTTP status and body of `/healthz`: 503 while a step is failing."""
        with self.lock:
            failing = dict(self.last_failure)
            succeeded = {step: round(when, 3) for step, when in self.last_success.items()}
        status = "failing" if failing else "ok"
        return (503 if failing else 200), {"status": status, "last_success": succeeded,
                                            "failing": failing}


class MetricsServer:
    """A loopback-by-default HTTP server for `/metrics` and `/healthz`."""

    def __init__(self, metrics: DaemonMetrics, host: str, port: int) -> None:
        handler = _handler(metrics)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="imageprov-metrics")

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(metrics: DaemonMetrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            if self.path == "/metrics":
                body = generate_latest(metrics.registry)
                self._send(200, CONTENT_TYPE_LATEST, body)
            elif self.path == "/healthz":
                status, document = metrics.health()
                self._send(status, "application/json", json.dumps(document).encode())
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            # Scrapes every few seconds would flood the log.
            return

    return Handler
