"""The worker: takes queued jobs and runs each through a backend (`training.backends`): a child
process on this machine (`local`) or a Slurm batch job (`slurm`), both `python -m training.child`.

A child's crash or out-of-memory kill never takes the worker (or the bot it runs in) down: the
job is marked failed with the reason, and `resume` continues it from its last checkpoint. Jobs
left running by a worker that died (a restart, a power cut) are put back in the queue when a
worker starts, and resume from their checkpoints; a Slurm job still running is followed instead.
Cancelling asks the child to stop (it saves a checkpoint first); one that does not stop within
the grace period is killed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from training.backends import EXIT_INTERRUPTED, Exit, Handle, LaunchError, TrainerBackend, make_backend
from training.backends.local import describe_exit, on_this_host, pid_alive
from training.settings import TrainingSettings
from training.store import CANCELLED, FAILED, QUEUED, RUNNING, Job, JobStore, worker_name

log = logging.getLogger("labmate.training")


@dataclass
class _Running:
    job_id: int
    handle: Handle
    cancel_seen: float | None = None
    killed: bool = False


class Worker:
    """Runs up to `[training] parallel_jobs` jobs at a time. `on_change(job)` is called whenever a
    job starts or ends (the bot uses it to report at once)."""

    def __init__(self, settings: TrainingSettings, store: JobStore | None = None,
                 on_change: Callable[[Job], None] | None = None, backend: TrainerBackend | None = None):
        self.settings = settings
        self.store = store or JobStore(settings.database)
        self.backend = backend or make_backend(settings, self.store.path)
        self.on_change = on_change
        self.name = worker_name()
        self.running: dict[int, _Running] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._recovered = 0.0

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """Whether this worker's poll loop is running (for health checks)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "Worker":
        """Run the loop in a background thread."""
        self.store.worker_alive(self.name)
        self.recover()
        self._thread = threading.Thread(target=self.loop, name="labmate-train-worker", daemon=True)
        self._thread.start()
        return self

    def loop(self) -> None:
        """Poll until `stop()`: look for cancels and ended jobs, then start queued jobs."""
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # the loop must outlive any one bad poll (a locked database, a bad row)
                log.exception("training worker poll failed")
            self._stop.wait(self.settings.poll_seconds)

    def step(self) -> None:
        """One poll: heartbeat, reap ended jobs, enforce cancels, start jobs while there is room."""
        self.store.worker_alive(self.name)
        if time.monotonic() - self._recovered > 30:
            self.recover()
        for running in list(self.running.values()):
            self._watch(running)
        while len(self.running) < self.settings.parallel_jobs and not self._stop.is_set():
            # a job whose last run the backend still reports on is not started again meanwhile
            job = self.store.claim(self.name, exclude=self.running)
            if job is None:
                break
            self._launch(job)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop taking jobs. Local children checkpoint and go back to the queue (they resume on the
        next start); Slurm jobs keep running, and the next worker follows them."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        if self.backend.outlives_worker:
            for running in list(self.running.values()):
                log.info("job %d keeps running as %s", running.job_id, self.backend.describe(running.handle))
            self.running.clear()
        for running in list(self.running.values()):
            self.backend.interrupt(running.handle)
        deadline = time.monotonic() + timeout
        for running in list(self.running.values()):
            ended = self._wait(running.handle, deadline)
            if ended is None:
                self.backend.kill(running.handle)
                ended = self._wait(running.handle, None)
            self._ended(running, ended)
        self.store.worker_gone(self.name)

    def recover(self) -> list[int]:
        """Jobs whose worker is gone: follow those the backend can (a Slurm job still known),
        leave alone those still running elsewhere, put the others back in the queue (they resume
        from their checkpoints)."""
        self._recovered = time.monotonic()
        alive = live_workers(self.store, self.settings) | {self.name}
        requeued = []
        for job in self.store.list([RUNNING], limit=1000):
            if job.id in self.running or job.worker in alive:
                continue
            handle = self.backend.attach(job)
            if handle is not None:
                if self.store.adopt(job.id, job.worker, self.name):
                    log.info("job %d: following %s, started by %s", job.id, self.backend.describe(handle), job.worker)
                    self.running[job.id] = _Running(job.id, handle)
                continue
            if self.backend.alive(job):
                continue
            if job.cancel_requested:
                self.store.finish(job.id, CANCELLED)
            else:
                log.warning("job %d was left running by %s; it goes back to the queue", job.id, job.worker)
                self.store.finish(job.id, QUEUED, error=None)
                requeued.append(job.id)
            self._changed(job.id)
        return requeued

    def run_now(self, job_id: int) -> Job:
        """Run one queued job and wait for it (`train submit --wait` with no worker running).
        Ctrl-C stops a local one with a checkpoint and returns it to the queue; a Slurm job keeps
        running (a worker follows it later)."""
        self.store.worker_alive(self.name)
        job = self.store.claim(self.name, job_id)
        if job is None:
            return self.store.get(job_id)
        running = self._launch(job)
        try:
            while running and job_id in self.running:
                self.store.worker_alive(self.name)
                self._watch(running)
                if job_id in self.running:
                    time.sleep(self.settings.poll_seconds)
        except KeyboardInterrupt:
            if self.backend.outlives_worker:
                self.running.pop(job_id, None)
            else:
                self.backend.interrupt(running.handle)
                self._ended(running, self._wait(running.handle, None))
        self.store.worker_gone(self.name)
        return self.store.get(job_id)

    # -- one job ---------------------------------------------------------------------------------

    def _launch(self, job: Job) -> _Running | None:
        run_dir = self.settings.runs_dir / f"job-{job.id}"
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            handle = self.backend.launch(job, run_dir)
        except LaunchError as exc:
            log.warning("job %d could not start: %s", job.id, exc)
            self.store.finish(job.id, FAILED, error=str(exc))
            self._changed(job.id)
            return None
        pid = int(handle.ref) if handle.process is not None else None
        self.store.set_handle(job.id, str(handle), pid=pid)
        running = self.running[job.id] = _Running(job.id, handle)
        log.info("job %d (%s) started as %s", job.id, job.name, self.backend.describe(handle))
        self._changed(job.id)
        return running

    def _watch(self, running: _Running) -> None:
        ended = self.backend.poll(running.handle)
        if ended is not None:
            self._ended(running, ended)
            return
        if not self.store.get(running.job_id).cancel_requested:
            return
        now = time.monotonic()
        if running.cancel_seen is None:
            running.cancel_seen = now
            self.backend.cancel(running.handle)
        elif now - running.cancel_seen > self.settings.cancel_grace_seconds and not running.killed:
            log.warning("job %d did not stop within %.0f s of its cancel; killing it",
                        running.job_id, self.settings.cancel_grace_seconds)
            running.killed = True
            self.backend.kill(running.handle)

    def _wait(self, handle: Handle, deadline: float | None) -> Exit | None:
        """Poll until the job ends (its Exit) or `deadline` passes (None)."""
        while (ended := self.backend.poll(handle)) is None:
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.1)
        return ended

    def _ended(self, running: _Running, ended: Exit) -> None:
        """Record how a job ended (unless it recorded it itself) and tell `on_change`."""
        if self.running.pop(running.job_id, None) is None:
            return
        job = self.store.get(running.job_id)
        # A scheduler's end (time limit, preemption, node failure) wins over the child putting
        # itself back in the queue when the scheduler's SIGTERM came.
        if job.state == RUNNING or (job.state == QUEUED and ended.forced and job.worker == self.name):
            if job.cancel_requested:
                self.store.finish(job.id, CANCELLED)
            elif ended.code == EXIT_INTERRUPTED and not ended.forced:
                self.store.finish(job.id, QUEUED)  # the worker is stopping: resume on the next start
            else:
                self.store.finish(job.id, FAILED, error=ended.error or describe_exit(ended.code or 0))
        log.info("job %d (%s) ended with exit code %s", job.id, self.backend.describe(running.handle), ended.code)
        self._changed(job.id)

    def _changed(self, job_id: int) -> None:
        if self.on_change:
            try:
                self.on_change(self.store.get(job_id))
            except Exception:  # a reporting problem must not stop the worker
                log.exception("on_change failed for job %d", job_id)


def live_workers(store: JobStore, settings: TrainingSettings) -> set[str]:
    """Workers that reported lately, less those on this host whose process is gone."""
    names = store.live_workers(within=max(15.0, 10 * settings.poll_seconds))
    return {name for name in names if pid_alive(_worker_pid(name), name) or not on_this_host(name)}


def _worker_pid(name: str) -> int | None:
    parts = name.split(":")
    return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None


