"""Where a job's child process runs: `TrainerBackend`, chosen by `[training] backend`.

The worker (`training.worker.Worker`) claims jobs from the queue and asks its backend to run
each one: `local` starts `python -m training.child ...` as a child process of the worker;
`slurm` writes the same command into an sbatch script and submits it to a Slurm cluster. Either
way the child itself records progress, metrics and (normally) its own end in the job database;
the worker only fills in an end the child could not record (a crash, a kill, a time limit).

A backend's `Handle` is stored with the job (`Job.handle`, e.g. "local:4242" or "slurm:17"), so
a worker started after a restart can find the job again (`attach`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# EXIT_INTERRUPTED: the child stopped on SIGTERM without a cancel and put itself back in the queue.
from training.child import EXIT_INTERRUPTED  # noqa: F401  (re-exported; child.py imports lazily)
from training.settings import TrainingSettings
from training.store import Job



class LaunchError(Exception):
    """The backend could not start the job (e.g. sbatch refused it); the message says why."""


@dataclass
class Handle:
    """A job as its backend runs it: `backend` ("local", "slurm") and `ref` (a process id, a
    Slurm job id). `process` is backend-private state that is not stored (a Popen)."""

    backend: str
    ref: str
    job_id: int
    run_dir: Path
    process: Any = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return f"{self.backend}:{self.ref}"

    @staticmethod
    def parse(text: str | None) -> tuple[str, str] | None:
        """("slurm", "17") from a stored "slurm:17"; None for nothing stored."""
        if not text or ":" not in text:
            return None
        backend, ref = text.split(":", 1)
        return backend, ref


@dataclass(frozen=True)
class Exit:
    """How a job's run ended, as the backend saw it.

    `code`: the child's exit status (negative: killed by that signal; None: not known).
    `error`: what the job's error becomes when the child did not record its own end.
    `forced`: the backend (scheduler) ended it: a time limit, preemption, node failure or a kill
    from outside. The job then ends failed with `error` even if the child, stopped by SIGTERM, had
    put itself back in the queue; `labmate train resume` continues it from its last checkpoint.
    """

    code: int | None
    error: str | None = None
    forced: bool = False


class TrainerBackend(Protocol):
    name: str
    #: Whether jobs keep running when the worker stops (Slurm jobs do; local children are stopped
    #: with a checkpoint and go back to the queue).
    outlives_worker: bool

    def launch(self, job: Job, run_dir: Path) -> Handle:
        """Start `python -m training.child DATABASE JOB_ID RUN_DIR DEVICE THREADS` for the job
        (LaunchError if it cannot be started)."""

    def poll(self, handle: Handle) -> Exit | None:
        """None while the job runs (or waits for resources); how it ended once it has."""

    def cancel(self, handle: Handle) -> None:
        """Ask the job to stop: it saves a checkpoint and records itself cancelled."""

    def interrupt(self, handle: Handle) -> None:
        """The worker stops: ask the job to checkpoint and go back to the queue (local only)."""

    def kill(self, handle: Handle) -> None:
        """End the job now (it did not stop within the cancel grace period)."""

    def describe(self, handle: Handle) -> str:
        """Where it runs, for people: "process 4242", "Slurm job 17"."""

    def attach(self, job: Job) -> Handle | None:
        """A handle on a running job another worker started (that worker is gone), when this
        backend can follow it to its end; None otherwise."""

    def alive(self, job: Job) -> bool:
        """Whether the job of a gone worker still runs where that worker started it."""


def make_backend(settings: TrainingSettings, store_path: Path) -> TrainerBackend:
    """The backend `[training] backend` names."""
    if settings.backend == "slurm":
        from training.backends.slurm import SlurmBackend

        return SlurmBackend(settings, store_path)
    from training.backends.local import LocalBackend

    return LocalBackend(settings, store_path)


def child_command(python: str, store_path: Path, job_id: int, run_dir: Path, device: str, threads: int) -> list[str]:
    """The job's process, whatever runs it."""
    return [python, "-m", "training.child", str(store_path), str(job_id), str(run_dir), device, str(threads)]
