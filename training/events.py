"""What a running job tells the world: log lines, metrics, progress; and whether it should stop.

The runner (`training.runner.run_job`) only talks to a `RunReporter`. In the service, a job's
child process uses `StoreReporter` (log file + job database); tests use `MemoryReporter`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from core.errors import LabmateError


class JobCancelled(LabmateError):
    """Raised by the runner when the reporter says to stop; a checkpoint was saved first."""


class RunReporter(Protocol):
    def log(self, message: str) -> None:
        """One line for the job's log."""

    def metrics(self, step: int, epoch: float, kind: str, values: dict[str, float]) -> None:
        """A point of the time series: kind "train" (loss, learning_rate, samples_per_s), "eval" or "test"."""

    def progress(self, progress: dict) -> None:
        """The latest state: step, total_steps, epoch, epochs, loss, samples_per_s, eta_s, device,
        gpu_memory_mb, phase ("loading", "training", "evaluating", "saving")."""

    def should_stop(self) -> bool:
        """Whether the job was cancelled (checked between steps)."""


class MemoryReporter:
    """Keeps everything in lists; `stop_after_step` makes `should_stop` true from that step on."""

    def __init__(self, stop_after_step: int | None = None):
        self.lines: list[str] = []
        self.points: list[tuple[int, float, str, dict]] = []
        self.states: list[dict] = []
        self.stop_after_step = stop_after_step

    def log(self, message: str) -> None:
        self.lines.append(message)

    def metrics(self, step: int, epoch: float, kind: str, values: dict[str, float]) -> None:
        self.points.append((step, epoch, kind, dict(values)))

    def progress(self, progress: dict) -> None:
        self.states.append(dict(progress))

    def should_stop(self) -> bool:
        step = self.states[-1].get("step", 0) if self.states else 0
        return self.stop_after_step is not None and step >= self.stop_after_step


class StoreReporter:
    """Writes the log to `log_path` and metrics/progress to the job database; reads cancellation
    from it at most every `poll_seconds` (a step can take milliseconds)."""

    def __init__(self, store, job_id: int, log_path: Path, poll_seconds: float = 1.0):
        self.store, self.job_id, self.poll_seconds = store, job_id, poll_seconds
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("a", encoding="utf-8", buffering=1)  # line-buffered: tails see it at once
        self._checked, self._stop = 0.0, False

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        for line in str(message).splitlines() or [""]:
            self._log.write(f"{stamp} {line}\n")

    def metrics(self, step: int, epoch: float, kind: str, values: dict[str, float]) -> None:
        self.store.add_metrics(self.job_id, step, epoch, kind, values)

    def progress(self, progress: dict) -> None:
        self.store.set_progress(self.job_id, progress)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self._stop and now - self._checked >= self.poll_seconds:
            self._checked = now
            self._stop = self.store.get(self.job_id).cancel_requested
        return self._stop

    def close(self) -> None:
        self._log.close()


def tail(path: Path, lines: int = 50) -> str:
    """The last `lines` lines of a log file ("" when there is none yet)."""
    try:
        with Path(path).open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 256 * lines))
            data = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
