"""The persistent job queue: jobs, their states, progress and metrics as a time series (SQLite).

Every process that touches jobs (the worker, a job's child process, the CLI, the HTTP API, the
bot) opens the same database; WAL mode lets them read while one writes. A job is claimed by
exactly one worker with a conditional UPDATE, so two workers never run the same job.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from core.errors import NotFoundError, UserError

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, task TEXT NOT NULL,
    spec TEXT NOT NULL, spec_text TEXT NOT NULL, state TEXT NOT NULL,
    created_at REAL NOT NULL, started_at REAL, finished_at REAL, updated_at REAL NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT, pid INTEGER, error TEXT, progress TEXT NOT NULL DEFAULT '{}',
    result TEXT NOT NULL DEFAULT '{}', origin TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);
CREATE TABLE IF NOT EXISTS metrics (
    job_id INTEGER NOT NULL, step INTEGER NOT NULL, epoch REAL NOT NULL, kind TEXT NOT NULL,
    name TEXT NOT NULL, value REAL NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS metrics_job ON metrics(job_id, step);
CREATE TABLE IF NOT EXISTS workers (name TEXT PRIMARY KEY, pid INTEGER NOT NULL, seen_at REAL NOT NULL);
"""
# Columns added after the first release: a database made before them gets them when opened.
ADDED_COLUMNS = {"handle": "TEXT"}


@dataclass
class Job:
    """One training job as stored. `spec` is the validated spec as JSON-able data; `progress`
    the latest step/epoch/loss/speed/ETA/device; `result` the final metrics; `origin` who
    started it and where (opaque to the training service: the bot keeps its channel there)."""

    id: int
    name: str
    task: str
    state: str
    spec: dict
    spec_text: str
    created_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    cancel_requested: bool = False
    attempts: int = 0
    worker: str | None = None
    pid: int | None = None
    handle: str | None = None  # where the backend runs it: "local:PID" or "slurm:JOBID" (kept after it ends)
    error: str | None = None
    progress: dict = field(default_factory=dict)
    result: dict = field(default_factory=dict)
    origin: dict = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Job":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class MetricPoint:
    step: int
    epoch: float
    kind: str  # "train", "eval" or "test"
    name: str
    value: float
    at: float


class JobStore:
    """Thread-safe access to the job database (one connection per store, serialized by a lock)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row  # jobs are read by column name (old databases lack new columns)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(SCHEMA)
        self._migrate()
        self._lock = threading.Lock()

    def _migrate(self) -> None:
        have = {row[1] for row in self._conn.execute("PRAGMA table_info(jobs)")}
        for column, kind in ADDED_COLUMNS.items():
            if column not in have:
                try:
                    self._conn.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
                except sqlite3.OperationalError as exc:  # another process added it meanwhile
                    if "duplicate column" not in str(exc):
                        raise

    # -- jobs ----------------------------------------------------------------------------------

    def submit(self, *, name: str, task: str, spec: dict, spec_text: str, origin: dict | None = None) -> Job:
        now = time.time()
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO jobs(name, task, spec, spec_text, state, created_at, updated_at, origin) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, task, json.dumps(spec), spec_text, QUEUED, now, now, json.dumps(origin or {})))
        return self.get(int(cur.lastrowid))

    def get(self, job_id: int) -> Job:
        with self._lock:
            row = self._conn.execute("SELECT * FROM jobs WHERE id=?", (int(job_id),)).fetchone()
        if row is None:
            raise NotFoundError(f"There is no training job {job_id}; `labmate train status` lists them.")
        return self._job(row)

    def list(self, states: Iterable[str] | None = None, limit: int = 20) -> list[Job]:
        """Newest first."""
        states = list(states or STATES)
        marks = ",".join("?" * len(states))
        with self._lock:
            rows = self._conn.execute(f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id DESC LIMIT ?",
                                      (*states, limit)).fetchall()
        return [self._job(r) for r in rows]

    def claim(self, worker: str, job_id: int | None = None, exclude: Iterable[int] = ()) -> Job | None:
        """Move the oldest queued job (or `job_id`) to running for `worker`; None if there is none.
        Jobs in `exclude` are left alone (the worker still follows their previous run)."""
        now = time.time()
        skip = [int(i) for i in exclude]
        marks = ",".join("?" * len(skip))
        with self._lock:
            row = self._conn.execute(
                f"SELECT id FROM jobs WHERE state=? AND (? IS NULL OR id=?) AND id NOT IN ({marks}) "
                "ORDER BY id LIMIT 1",
                (QUEUED, job_id, job_id, *skip)).fetchone()
            if row is None:
                return None
            cur = self._conn.execute(
                "UPDATE jobs SET state=?, worker=?, started_at=COALESCE(started_at, ?), updated_at=?, "
                "attempts=attempts+1, error=NULL, handle=NULL WHERE id=? AND state=?",
                (RUNNING, worker, now, now, row[0], QUEUED))
            if cur.rowcount != 1:  # another worker was faster
                return None
        return self.get(row[0])

    def set_handle(self, job_id: int, handle: str | None, pid: int | None = None) -> None:
        """Where the backend runs the job (see `Job.handle`), and its local process id if any."""
        self._update(job_id, handle=handle, pid=pid)

    def adopt(self, job_id: int, old_worker: str | None, worker: str) -> bool:
        """Take over a running job from a worker that is gone; False if another worker was faster."""
        with self._lock:
            cur = self._conn.execute("UPDATE jobs SET worker=?, updated_at=? WHERE id=? AND state=? AND worker IS ?",
                                     (worker, time.time(), int(job_id), RUNNING, old_worker))
        return cur.rowcount == 1

    def finish(self, job_id: int, state: str, *, error: str | None = None, result: dict | None = None) -> Job:
        """Record a job's end (or, with state queued, its return to the queue to be resumed)."""
        if state not in FINISHED + (QUEUED,):
            raise ValueError(state)
        fields: dict[str, Any] = {"state": state, "error": error, "pid": None}
        if state in FINISHED:
            fields["finished_at"] = time.time()
        if result is not None:
            fields["result"] = json.dumps(result)
        self._update(job_id, **fields)
        return self.get(job_id)

    def request_cancel(self, job_id: int) -> Job:
        """Cancel a job: a queued one at once; a running one is asked to stop (the worker does it)."""
        job = self.get(job_id)
        if job.finished:
            raise UserError(f"Job {job_id} has already {job.state}; there is nothing to cancel.")
        now = time.time()
        with self._lock:
            self._conn.execute("UPDATE jobs SET state=?, finished_at=?, updated_at=? WHERE id=? AND state=?",
                               (CANCELLED, now, now, job_id, QUEUED))
            self._conn.execute("UPDATE jobs SET cancel_requested=1, updated_at=? WHERE id=?", (now, job_id))
        return self.get(job_id)

    def resume(self, job_id: int) -> Job:
        """Put a failed or cancelled job back in the queue; it continues from its last checkpoint."""
        job = self.get(job_id)
        if job.state not in (FAILED, CANCELLED):
            raise UserError(f"Job {job_id} is {job.state}; only failed or cancelled jobs can be resumed.")
        self._update(job_id, state=QUEUED, cancel_requested=0, finished_at=None, error=None)
        return self.get(job_id)

    def set_progress(self, job_id: int, progress: dict) -> None:
        self._update(job_id, progress=json.dumps(progress))

    def set_origin(self, job_id: int, origin: dict) -> None:
        self._update(job_id, origin=json.dumps(origin))

    def _update(self, job_id: int, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        sets = ", ".join(f"{k}=?" for k in fields)
        with self._lock:
            self._conn.execute(f"UPDATE jobs SET {sets} WHERE id=?", (*fields.values(), int(job_id)))

    # -- metrics -------------------------------------------------------------------------------

    def add_metrics(self, job_id: int, step: int, epoch: float, kind: str, values: dict[str, float]) -> None:
        now = time.time()
        rows = [(job_id, step, epoch, kind, name, float(v), now) for name, v in values.items()
                if isinstance(v, (int, float))]
        with self._lock:
            self._conn.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def metrics(self, job_id: int, since_step: int = -1) -> list[MetricPoint]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT step, epoch, kind, name, value, at FROM metrics WHERE job_id=? AND step>? "
                "ORDER BY step, rowid", (job_id, since_step)).fetchall()
        return [MetricPoint(*r) for r in rows]

    def forget_metrics_after(self, job_id: int, step: int) -> None:
        """A resumed job repeats the steps after its checkpoint: drop their old points."""
        with self._lock:
            self._conn.execute("DELETE FROM metrics WHERE job_id=? AND step>?", (job_id, step))

    # -- workers -------------------------------------------------------------------------------

    def worker_alive(self, name: str) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO workers VALUES (?, ?, ?)", (name, os.getpid(), time.time()))

    def worker_gone(self, name: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM workers WHERE name=?", (name,))

    def live_workers(self, within: float) -> list[str]:
        with self._lock:
            rows = self._conn.execute("SELECT name FROM workers WHERE seen_at>?", (time.time() - within,)).fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        self._conn.close()

    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        return Job(id=row["id"], name=row["name"], task=row["task"], state=row["state"], spec=json.loads(row["spec"]),
                   spec_text=row["spec_text"], created_at=row["created_at"], updated_at=row["updated_at"],
                   started_at=row["started_at"], finished_at=row["finished_at"],
                   cancel_requested=bool(row["cancel_requested"]), attempts=row["attempts"], worker=row["worker"],
                   pid=row["pid"], handle=row["handle"], error=row["error"], progress=json.loads(row["progress"]),
                   result=json.loads(row["result"]), origin=json.loads(row["origin"]))


def worker_name() -> str:
    """host:pid:nonce, unique even for two workers in one process."""
    import uuid

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
