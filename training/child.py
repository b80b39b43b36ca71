"""A job's own process: `python -m training.child DATABASE JOB_ID RUN_DIR DEVICE THREADS`.

Jobs run here, never in the worker's process, so a crash, a segfault in a native library or
the kernel's out-of-memory killer takes down only this process. The exit code tells the worker
what happened; the log (stdout and stderr go to the same file) tells the people.
"""

from __future__ import annotations

import signal
import sys
import traceback
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED, EXIT_INTERRUPTED = 0, 1, 3, 75


class _Reporter:
    """The job database reporter, plus SIGTERM (worker shutting down) as a request to stop."""

    def __init__(self, inner):
        self.inner = inner
        self.interrupted = False
        signal.signal(signal.SIGTERM, self._on_term)

    def _on_term(self, *_):
        self.interrupted = True

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def should_stop(self) -> bool:
        return self.interrupted or self.inner.should_stop()


def main(argv: list[str]) -> int:
    from core.errors import UserError
    from training.events import JobCancelled, StoreReporter
    from training.spec import JobSpec
    from training.store import CANCELLED, FAILED, QUEUED, SUCCEEDED, JobStore

    database, job_id, run_dir, device, threads = argv
    job_id, run_dir = int(job_id), Path(run_dir)
    store = JobStore(Path(database))
    reporter = _Reporter(StoreReporter(store, job_id, run_dir / "log.txt"))
    try:
        job = store.get(job_id)
        reporter.log(f"job {job_id} ({job.name}), attempt {job.attempts}: starting")
        _forget_repeated_metrics(store, job_id, run_dir)
        from training.runner import run_job

        result = run_job(JobSpec.model_validate(job.spec), run_dir, reporter, device=device, threads=int(threads))
        result["id"] = job_id
        store.finish(job_id, SUCCEEDED, result=result)
        reporter.log(f"job {job_id} succeeded")
        return EXIT_OK
    except JobCancelled:
        if store.get(job_id).cancel_requested:
            reporter.log("cancelled")
            store.finish(job_id, CANCELLED)
            return EXIT_CANCELLED
        reporter.log("interrupted: the worker is stopping; the job resumes from its checkpoint on its next start")
        store.finish(job_id, QUEUED)
        return EXIT_INTERRUPTED
    except UserError as exc:
        reporter.log(f"error: {exc}")
        store.finish(job_id, FAILED, error=str(exc))
        return EXIT_FAILED
    except BaseException as exc:  # noqa: BLE001 - the traceback goes to the job's log for its owner
        reporter.log(traceback.format_exc())
        store.finish(job_id, FAILED, error=f"{type(exc).__name__}: {exc}"[:500])
        return EXIT_FAILED
    finally:
        reporter.inner.close()
        store.close()


def _forget_repeated_metrics(store, job_id: int, run_dir: Path) -> None:
    """A resumed job repeats the steps after its last checkpoint; their old points would show twice."""
    from training.runner import checkpoint_step

    step = checkpoint_step(run_dir)
    store.forget_metrics_after(job_id, step if step is not None else -1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
