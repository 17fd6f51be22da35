"""The scheduled daemon: inventory, log reading and evaluation as separate steps.

Each step runs on its own trigger. Steps never overlap: they share one store, and a
step that is still running when its next turn comes is not started twice. The policy
file is read again before every evaluation, so a changed policy or an exception
that expires takes effect on the next evaluation without a restart. SIGTERM and
SIGINT stop the scheduler after the step in progress.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from imageprov import cycle
from imageprov.config import Config, Trigger
from imageprov.daemon.metrics import DaemonMetrics, MetricsServer
from imageprov.errors import ImageprovError
from imageprov.ingest import start_workers
from imageprov.policy import load_policy
from imageprov.store import Store

logger = logging.getLogger(__name__)

STEPS = ("inventory", "logs", "evaluate")


def _trigger(trigger: Trigger) -> IntervalTrigger | CronTrigger:
    if trigger.interval is not None:
        return IntervalTrigger(seconds=trigger.interval.total_seconds(), timezone=UTC)
    return CronTrigger.from_crontab(trigger.cron or "", timezone=UTC)


def _describe(trigger: Trigger) -> str:
    if trigger.interval is not None:
        return f"every {trigger.interval.total_seconds():g}s"
    return f"cron {trigger.cron!r}"


class Daemon:
    """Runs the steps of a cycle on their triggers until stopped."""

    def __init__(self, config: Config, store: Store,
                 metrics: DaemonMetrics | None = None) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics or DaemonMetrics()
        self.stopping = threading.Event()
        # Set when `run` returns, whether or not the scheduler ever started.
        self._finished = threading.Event()
        self._step_lock = threading.Lock()
        self.scheduler = BlockingScheduler(
            timezone=UTC, executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        self.server: MetricsServer | None = None
        self.receiver: Any = None

    def step(self, name: str) -> None:
        """Run one step now, logging its failure instead of raising it."""
        if self.stopping.is_set():
            return
        started = time.perf_counter()
        with self._step_lock:
            logger.info("step=%s started", name)
            try:
                getattr(self, f"_{name}")()
            except ImageprovError as error:
                logger.error("step=%s failed: %s", name, error)
                self.metrics.failed(name, str(error))
                return
            except Exception as error:
                # The daemon keeps running; the next turn of the step tries again.
                logger.exception("step=%s failed unexpectedly", name)
                self.metrics.failed(name, f"{type(error).__name__}: {error}")
                return
            finally:
                self.metrics.step_seconds.labels(name).observe(time.perf_counter() - started)
        self.metrics.succeeded(name)

    def _inventory(self) -> None:
        summary = cycle.CycleSummary()
        cycle.run_inventory(self.config, self.store, summary, stop=self.stopping)
        if summary.sources_failed:
            raise ImageprovError(f"inventory sources failed: {', '.join(summary.sources_failed)}")

    def _logs(self) -> None:
        summary = cycle.CycleSummary()
        cycle.run_logs(self.config, self.store, summary,
                       on_file=lambda _: None, stop=self.stopping)
        for kind, counts in summary.logs_by_kind.items():
            self.metrics.records_read.labels(kind).inc(counts.records)
            self.metrics.records_quarantined.labels(kind).inc(counts.problems)
        now = datetime.now(UTC)
        for (account, region), spans in self.store.coverage().items():
            lag = (now - spans[-1][1]).total_seconds()
            self.metrics.checkpoint_lag.labels(account, region).set(lag)
        if summary.sources_failed:
            raise ImageprovError(f"log sources failed: {', '.join(summary.sources_failed)}")

    def _evaluate(self) -> None:
        # A policy that became invalid is reported and the last verdicts stay.
        policy, text = load_policy(self.config.policy)
        with self.store.claims() as claim:
            if not claim("evaluate"):
                logger.info("step=evaluate skipped: another replica is evaluating")
                return
            evaluation, changed = cycle.evaluate(self.store, policy, text)
            # Only the replica that evaluated signs, so heads are not signed twice.
            cycle.sign_ledger(self.config, self.store)
        counts = cycle.status_counts(evaluation.verdicts)
        for status in ("approved", "flagged", "unattributed", "excepted", "pending"):
            self.metrics.images.labels(status).set(counts.get(status, 0))
        logger.info("step=evaluate images=%d verdicts_changed=%d policy=%s %s",
                    len(evaluation.verdicts), changed, policy.hash[:12],
                    " ".join(f"{k}={v}" for k, v in counts.items()))

    def start_metrics(self) -> int | None:
        if self.config.metrics is None:
            return None
        try:
            self.server = MetricsServer(self.metrics, self.config.metrics.host,
                                        self.config.metrics.port)
        except OSError as error:
            raise ImageprovError(
                f"cannot serve metrics on {self.config.metrics.host}:"
                f"{self.config.metrics.port}: {error}") from error
        self.server.start()
        logger.info("metrics and health on http://%s:%d", self.config.metrics.host,
                    self.server.port)
        return self.server.port

    def start_receiver(self) -> int | None:
        """Serve registry notifications when the configuration has a receiver."""
        if self.config.receiver is None:
            return None
        from imageprov.receiver import AsgiServer, build_receiver

        settings = self.config.receiver
        try:
            self.receiver = AsgiServer(build_receiver(self.config, self.store),
                                       settings.host, settings.port)
        except OSError as error:
            raise ImageprovError(f"cannot receive notifications on {settings.host}:"
                                 f"{settings.port}: {error}") from error
        self.receiver.start()
        logger.info("receiving notifications on http://%s:%d", settings.host,
                    self.receiver.port)
        return int(self.receiver.port)

    def stop(self, *_: object) -> None:
        """Stop after the step in progress; safe to call from a signal handler."""
        if self.stopping.is_set():
            return
        logger.info("stopping after the step in progress")
        self.stopping.set()
        threading.Thread(target=self._shut_down, daemon=True).start()

    def _shut_down(self) -> None:
        # A signal during start-up can come before the scheduler runs, when shutdown
        # raises. `run` checks `stopping` before it starts the scheduler, so this
        # waits until either the scheduler runs or `run` has returned.
        while not self._finished.is_set():
            try:
                self.scheduler.shutdown(wait=True)
                return
            except SchedulerNotRunningError:
                self._finished.wait(0.05)

    def run(self, install_signals: bool = True,
            on_ready: Callable[[], None] | None = None) -> None:
        """Run every step once at start, then on its trigger, until stopped."""
        if install_signals:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        self.start_metrics()
        start_workers(self.config.workers)
        self.start_receiver()
        now = datetime.now(UTC)
        for order, name in enumerate(STEPS):
            # The first runs go in step order: inventory, then logs, then evaluation.
            self.scheduler.add_job(self.step, _trigger(getattr(self.config.schedule, name)),
                                   args=[name], id=name, name=name,
                                   next_run_time=now + timedelta(milliseconds=order))
        if on_ready:
            on_ready()
        logger.info("daemon started: %s", ", ".join(
            f"{name} {_describe(getattr(self.config.schedule, name))}" for name in STEPS))
        try:
            if not self.stopping.is_set():
                self.scheduler.start()
        finally:
            self._finished.set()
            if self.server:
                self.server.stop()
            if self.receiver:
                self.receiver.stop()
            logger.info("daemon stopped")
