"""Prometheus metrics of the training service (operations: jobs by state, API requests).

Not to be confused with `training.metrics`, the ML metrics (F1, accuracy) of the jobs themselves.

Everything here registers on a registry the caller owns (`CollectorRegistry()` per app), never
on prometheus_client's global default, so several apps in one process (tests) do not collide.
The bot (bot/metrics.py) reuses `JobsCollector`; nothing here imports bot/.

Metrics:

    labmate_training_jobs{state}          gauge: jobs in each state (queued, running, succeeded,
                                          failed, cancelled), counted in the job database at scrape
    labmate_training_workers              gauge: workers whose heartbeat is recent
    labmate_training_store_up             gauge: 1 when the job database answered the scrape, else 0
    labmate_training_api_requests_total{method, route, status}
                                          counter: requests to `labmate train serve`'s API; `route`
                                          is the route's template (/jobs/{id}), "other" when none
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from training.store import STATES

log = logging.getLogger("labmate.training.metrics")

JOBS = "labmate_training_jobs"
WORKERS = "labmate_training_workers"
STORE_UP = "labmate_training_store_up"
API_REQUESTS = "labmate_training_api_requests"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
WORKER_WITHIN = 15.0  # seconds: a worker heartbeats every poll (1 s by default); as training.worker.live_workers


def read_only(database: Path, timeout: float = 1.0) -> sqlite3.Connection:
    """A read-only connection of its own to the job database (never creates the file), so a scrape
    neither waits for nor shares the `JobStore`'s lock and connection; WAL lets it read while the
    worker writes."""
    uri = Path(database).expanduser().resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return conn


def job_counts(database: Path, worker_within: float = WORKER_WITHIN) -> tuple[dict[str, int], int]:
    """({state: jobs} for every state, live workers) from the job database. A database that does
    not exist yet has no jobs; sqlite3.Error when it cannot be read."""
    counts = dict.fromkeys(STATES, 0)
    if not Path(database).expanduser().exists():
        return counts, 0
    conn = read_only(database)
    try:
        for state, count in conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            counts[state] = int(count)
        workers = conn.execute("SELECT COUNT(*) FROM workers WHERE seen_at>?",
                               (time.time() - worker_within,)).fetchone()[0]
    finally:
        conn.close()
    return counts, int(workers)


def store_readable(database: Path) -> str | None:
    """None when the job database answers a query, else a short reason (for /healthz)."""
    if not Path(database).expanduser().exists():
        return "job database missing"
    try:
        conn = read_only(database, timeout=0.5)
        try:
            conn.execute("SELECT 1 FROM jobs LIMIT 1").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"job database unreadable ({exc})"
    return None


class JobsCollector:
    """Jobs by state and live workers, counted in the job database at each scrape (one GROUP BY
    on an indexed column, through a read-only connection of its own)."""

    def __init__(self, database: Path, worker_within: float = WORKER_WITHIN):
        self.database = Path(database)
        self.worker_within = worker_within

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (GaugeMetricFamily(JOBS, "Training jobs in each state (read from the job database at scrape time).",
                                  labels=["state"]),
                GaugeMetricFamily(WORKERS, "Training workers with a recent heartbeat in the job database."),
                GaugeMetricFamily(STORE_UP, "1 when the job database could be read at this scrape, else 0."))

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Without describe() a registry would call collect() (a query) just to register this.
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs, workers, up = self._families()
        try:
            counts, live = job_counts(self.database, self.worker_within)
        except sqlite3.Error as exc:
            log.warning("metrics: cannot read the job database %s: %s", self.database, exc)
            up.add_metric([], 0)
            yield up
            return
        for state in STATES:
            jobs.add_metric([state], counts.get(state, 0))
        workers.add_metric([], live)
        up.add_metric([], 1)
        yield from (jobs, workers, up)


def add_process_collectors(registry: CollectorRegistry) -> None:
    """process_* (CPU, memory, open files), python_info and python_gc_* on `registry`."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


class ApiMetrics:
    """The training API's registry: request counter, jobs by state, process metrics."""

    def __init__(self, database: Path | None = None, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(API_REQUESTS, "Requests to the training API, by method, route template and status.",
                                ["method", "route", "status"], registry=self.registry)
        if database is not None:
            self.registry.register(JobsCollector(database))
        add_process_collectors(self.registry)

    def request(self, method: str, route: str, status: int) -> None:
        """Count one answered request (O(1); `route` is a template, so labels stay few)."""
        self.requests.labels(method if method in HTTP_METHODS else "other", route, str(status)).inc()
