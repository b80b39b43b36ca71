"""The worker: takes queued jobs and runs each in a child process (`training.child`).

A child's crash or out-of-memory kill never takes the worker (or the bot it runs in) down: the
job is marked failed with the reason, and `resume` continues it from its last checkpoint. Jobs
left running by a worker that died (a restart, a power cut) are put back in the queue when a
worker starts, and resume from their checkpoints. Cancelling asks the child to stop (it saves a
checkpoint first); one that does not stop within the grace period is killed.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from training.settings import TrainingSettings
from training.store import CANCELLED, FAILED, QUEUED, RUNNING, Job, JobStore, worker_name

log = logging.getLogger("labmate.training")
EXIT_INTERRUPTED = 75  # training.child: stopped by SIGTERM, back in the queue
SIGNALS = {signal.SIGKILL: "killed (SIGKILL; often the out-of-memory killer)", signal.SIGSEGV: "crashed (SIGSEGV)",
           signal.SIGTERM: "terminated (SIGTERM)", signal.SIGABRT: "aborted (SIGABRT)"}


@dataclass
class _Running:
    job_id: int
    process: subprocess.Popen
    cancel_seen: float | None = None


class Worker:
    """Runs up to `[training] parallel_jobs` jobs at a time. `on_change(job)` is called whenever a
    job starts or ends (the bot uses it to report at once)."""

    def __init__(self, settings: TrainingSettings, store: JobStore | None = None,
                 on_change: Callable[[Job], None] | None = None):
        self.settings = settings
        self.store = store or JobStore(settings.database)
        self.on_change = on_change
        self.name = worker_name()
        self.running: dict[int, _Running] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._recovered = 0.0

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "Worker":
        """Run the loop in a background thread."""
        self.store.worker_alive(self.name)
        self.recover()
        self._thread = threading.Thread(target=self.loop, name="labmate-train-worker", daemon=True)
        self._thread.start()
        return self

    def loop(self) -> None:
        """Poll until `stop()`: look for cancels and ended children, then start queued jobs."""
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # the loop must outlive any one bad poll (a locked database, a bad row)
                log.exception("training worker poll failed")
            self._stop.wait(self.settings.poll_seconds)

    def step(self) -> None:
        """One poll: heartbeat, reap ended children, enforce cancels, start jobs while there is room."""
        self.store.worker_alive(self.name)
        if time.monotonic() - self._recovered > 30:
            self.recover()
        for running in list(self.running.values()):
            self._watch(running)
        while len(self.running) < self.settings.parallel_jobs and not self._stop.is_set():
            job = self.store.claim(self.name)
            if job is None:
                break
            self._launch(job)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop taking jobs; running children checkpoint and go back to the queue (they resume on
        the next start)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        for running in list(self.running.values()):
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for running in list(self.running.values()):
            try:
                running.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait()
            self._ended(running)
        self.store.worker_gone(self.name)

    def recover(self) -> list[int]:
        """Put back in the queue the jobs whose worker is gone; they resume from their checkpoints."""
        self._recovered = time.monotonic()
        alive = live_workers(self.store, self.settings) | {self.name}
        requeued = []
        for job in self.store.list([RUNNING], limit=1000):
            if job.id in self.running or job.worker in alive or _pid_alive(job.pid, job.worker):
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
        """Run one queued job in a child of this process and wait for it (`train submit --wait`
        with no worker running). Ctrl-C stops it with a checkpoint and returns it to the queue."""
        self.store.worker_alive(self.name)
        job = self.store.claim(self.name, job_id)
        if job is None:
            return self.store.get(job_id)
        running = self._launch(job)
        try:
            while running.process.poll() is None:
                self.store.worker_alive(self.name)
                self._watch(running)
                time.sleep(self.settings.poll_seconds)
        except KeyboardInterrupt:
            running.process.send_signal(signal.SIGTERM)
            running.process.wait()
        self._watch(running)
        self.store.worker_gone(self.name)
        return self.store.get(job_id)

    # -- one child ------------------------------------------------------------------------------

    def _launch(self, job: Job) -> _Running:
        run_dir = self.settings.runs_dir / f"job-{job.id}"
        run_dir.mkdir(parents=True, exist_ok=True)
        log_file = (run_dir / "log.txt").open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
        command = [sys.executable, "-m", "training.child", str(self.store.path), str(job.id), str(run_dir),
                   self.settings.device, str(self.settings.threads)]
        try:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                       cwd=Path(__file__).resolve().parents[1], start_new_session=True)
        finally:
            log_file.close()
        self.store.set_pid(job.id, process.pid)
        running = self.running[job.id] = _Running(job.id, process)
        log.info("job %d (%s) started in process %d", job.id, job.name, process.pid)
        self._changed(job.id)
        return running

    def _watch(self, running: _Running) -> None:
        if running.process.poll() is not None:
            self._ended(running)
            return
        if not self.store.get(running.job_id).cancel_requested:
            return
        now = time.monotonic()
        running.cancel_seen = running.cancel_seen or now
        if now - running.cancel_seen > self.settings.cancel_grace_seconds:
            log.warning("job %d did not stop within %.0f s of its cancel; killing it",
                        running.job_id, self.settings.cancel_grace_seconds)
            running.process.kill()

    def _ended(self, running: _Running) -> None:
        """Record how a child ended (unless it recorded it itself) and tell `on_change`."""
        if self.running.pop(running.job_id, None) is None:
            return
        code = running.process.wait()
        job = self.store.get(running.job_id)
        if job.state == RUNNING:
            if job.cancel_requested:
                self.store.finish(job.id, CANCELLED)
            elif code == EXIT_INTERRUPTED:
                self.store.finish(job.id, QUEUED)  # the worker is stopping: resume on the next start
            else:
                self.store.finish(job.id, FAILED, error=_describe_exit(code))
        log.info("job %d ended with exit code %s", job.id, code)
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
    return {name for name in names if _pid_alive(_worker_pid(name), name) or not _on_this_host(name)}


def _worker_pid(name: str) -> int | None:
    parts = name.split(":")
    return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None


def _on_this_host(name: str | None) -> bool:
    import socket

    return bool(name) and name.split(":")[0] == socket.gethostname()


def _describe_exit(code: int) -> str:
    if code < 0:
        what = SIGNALS.get(-code, f"killed by signal {-code}")
        return f"The job's process was {what}. `labmate train resume` continues it from its last checkpoint."
    return f"The job's process exited with code {code}; see its log (`labmate train logs`)."


def _pid_alive(pid: int | None, worker: str | None) -> bool:
    """Whether a job's child is still alive on this host (a bot restarted while its child lives on)."""
    if not pid or not _on_this_host(worker):
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
