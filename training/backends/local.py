"""`[training] backend = "local"`: each job is a child process of the worker on this machine.

Its stdout and stderr go to the run's log.txt. A cancel needs nothing from here: the child reads
its cancel flag from the job database, saves a checkpoint and records itself cancelled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from training.backends import EXIT_INTERRUPTED, Exit, Handle, child_command
from training.settings import TrainingSettings
from training.store import Job

PROJECT = Path(__file__).resolve().parents[2]
SIGNALS = {signal.SIGKILL: "killed (SIGKILL; often the out-of-memory killer)", signal.SIGSEGV: "crashed (SIGSEGV)",
           signal.SIGTERM: "terminated (SIGTERM)", signal.SIGABRT: "aborted (SIGABRT)"}


class LocalBackend:
    name = "local"
    outlives_worker = False

    def __init__(self, settings: TrainingSettings, store_path: Path):
        self.settings, self.store_path = settings, Path(store_path)

    def launch(self, job: Job, run_dir: Path) -> Handle:
        log_file = (run_dir / "log.txt").open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
        command = child_command(sys.executable, self.store_path, job.id, run_dir, self.settings.device,
                                self.settings.threads)
        try:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                       cwd=PROJECT, start_new_session=True)
        finally:
            log_file.close()
        return Handle(self.name, str(process.pid), job.id, run_dir, process)

    def poll(self, handle: Handle) -> Exit | None:
        code = handle.process.poll()
        if code is None:
            return None
        return Exit(code, None if code in (0, EXIT_INTERRUPTED) else describe_exit(code))

    def cancel(self, handle: Handle) -> None:
        """Nothing to do: the child polls its cancel flag in the job database."""

    def interrupt(self, handle: Handle) -> None:
        if handle.process.poll() is None:
            handle.process.send_signal(signal.SIGTERM)

    def kill(self, handle: Handle) -> None:
        if handle.process.poll() is None:
            handle.process.kill()

    def describe(self, handle: Handle) -> str:
        return f"process {handle.ref}"

    def attach(self, job: Job) -> Handle | None:
        return None  # another process's child cannot be waited for; see alive()

    def alive(self, job: Job) -> bool:
        return pid_alive(job.pid, job.worker)


def describe_exit(code: int) -> str:
    if code < 0:
        what = SIGNALS.get(-code, f"killed by signal {-code}")
        return f"The job's process was {what}. `labmate train resume` continues it from its last checkpoint."
    return f"The job's process exited with code {code}; see its log (`labmate train logs`)."


def on_this_host(name: str | None) -> bool:
    import socket

    return bool(name) and name.split(":")[0] == socket.gethostname()


def pid_alive(pid: int | None, worker: str | None) -> bool:
    """Whether a job's child is still alive on this host (a bot restarted while its child lives on)."""
    if not pid or not on_this_host(worker):
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
