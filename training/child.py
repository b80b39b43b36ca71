"""A job's own process: `python -m training.child DATABASE JOB_ID RUN_DIR DEVICE THREADS`.

Jobs run here, never in the worker's process, so a crash, a segfault in a native library or
the kernel's out-of-memory killer takes down only this process. The exit code tells the worker
what happened; the log (stdout and stderr go to the same file) tells the people.

A job whose spec has `[train] gpus = N > 1` runs here under torchrun: this process starts
`python -m torch.distributed.run --standalone --nproc_per_node N -m training.child <same args>`,
waits for it and exits with the code the job's outcome calls for. Each rank (LOCAL_RANK in its
environment) joins the process group (training/distributed.py) and trains; rank 0 alone writes
the job database, the log, checkpoints and the best model. Ranks end with 0 when the job ended
as planned (succeeded, cancelled, interrupted: rank 0 recorded it) and 1 on a failure, which
makes torchrun stop the others at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
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


class _Silent:
    """The reporter of ranks other than 0: they write nothing (rank 0 decides when to stop)."""

    def log(self, message: str) -> None:
        pass

    def metrics(self, step: int, epoch: float, kind: str, values: dict) -> None:
        pass

    def progress(self, progress: dict) -> None:
        pass

    def should_stop(self) -> bool:
        return False

    def close(self) -> None:
        pass


def main(argv: list[str]) -> int:
    from training.distributed import under_torchrun

    if under_torchrun():
        return _rank(argv)
    from training.events import StoreReporter
    from training.spec import JobSpec
    from training.store import JobStore

    database, job_id, run_dir, device, threads = argv
    job_id, run_dir = int(job_id), Path(run_dir)
    store = JobStore(Path(database))
    reporter = _Reporter(StoreReporter(store, job_id, run_dir / "log.txt"))
    try:
        job = store.get(job_id)
        reporter.log(f"job {job_id} ({job.name}), attempt {job.attempts}: starting")
        _forget_repeated_metrics(store, job_id, run_dir)
        spec = JobSpec.model_validate(job.spec)
        if spec.train.gpus > 1:
            return _torchrun(argv, spec.train.gpus, store, reporter)
        from training.runner import run_job

        result = run_job(spec, run_dir, reporter, device=device, threads=int(threads))
        return _record(store, reporter, job_id, result=result)
    except BaseException as exc:  # noqa: BLE001 - the traceback goes to the job's log for its owner
        return _record(store, reporter, job_id, exc)
    finally:
        reporter.inner.close()
        store.close()


def _record(store, reporter, job_id: int, error: BaseException | None = None, result: dict | None = None) -> int:
    """Write how the job ended (its state and a log line: succeeded with `result`, cancelled,
    interrupted by the worker stopping, or failed with `error`); returns the exit code that says so."""
    from core.errors import UserError
    from training.events import JobCancelled
    from training.store import CANCELLED, FAILED, QUEUED, SUCCEEDED

    if error is None:
        store.finish(job_id, SUCCEEDED, result={**(result or {}), "id": job_id})
        reporter.log(f"job {job_id} succeeded")
        return EXIT_OK
    if isinstance(error, JobCancelled):
        if store.get(job_id).cancel_requested:
            reporter.log("cancelled")
            store.finish(job_id, CANCELLED)
            return EXIT_CANCELLED
        reporter.log("interrupted: the worker is stopping; the job resumes from its checkpoint on its next start")
        store.finish(job_id, QUEUED)
        return EXIT_INTERRUPTED
    if isinstance(error, UserError):
        reporter.log(f"error: {error}")
        store.finish(job_id, FAILED, error=str(error))
    else:
        reporter.log("".join(traceback.format_exception(error)))
        store.finish(job_id, FAILED, error=f"{type(error).__name__}: {error}"[:500])
    return EXIT_FAILED


def _torchrun(argv: list[str], processes: int, store, reporter: _Reporter) -> int:
    """Run the job as `processes` ranks under torchrun and wait; the exit code follows the outcome
    rank 0 recorded. SIGTERM (the worker stopping) goes to the ranks, which checkpoint and stop
    together; if this process is killed, torchrun and the ranks die with it."""
    from training.distributed import check_devices, parent_death_signal, rank_threads, torchrun_command
    from training.store import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED

    database, job_id, run_dir, device, threads = argv
    job_id = int(job_id)
    backend = check_devices(device, processes)
    per_rank = rank_threads(int(threads), processes)
    reporter.log(f"data parallel: {processes} processes under torchrun ({backend}"
                 + (", one GPU each" if backend == "nccl" else f", {per_rank} CPU threads each") + ")")
    env = {**os.environ, "OMP_NUM_THREADS": str(per_rank)}
    process = subprocess.Popen(torchrun_command(processes, argv), env=env, preexec_fn=parent_death_signal())

    def on_term(*_):
        if store.get(job_id).state == RUNNING:  # else the ranks are only tearing down: let them
            _signal_ranks(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    code = process.wait()
    job = store.get(job_id)
    if job.state == RUNNING:  # no rank recorded an end: one crashed or was killed
        if job.cancel_requested:
            reporter.log("cancelled")
            store.finish(job_id, CANCELLED)
            return EXIT_CANCELLED
        error = (f"A training process of the job failed (torchrun exited with code {code}); its log says which "
                 "and why. `labmate train resume` continues the job from its last checkpoint.")
        reporter.log(f"error: {error}")
        store.finish(job_id, FAILED, error=error)
        return EXIT_FAILED
    return {SUCCEEDED: EXIT_OK, CANCELLED: EXIT_CANCELLED, QUEUED: EXIT_INTERRUPTED}.get(job.state, EXIT_FAILED)


def _signal_ranks(torchrun: int, sig: int) -> None:
    """Send `sig` to the ranks (torchrun's children) themselves: they stop at the same step after a
    checkpoint, and torchrun then ends by itself. Without them (still starting): torchrun."""
    try:
        children = Path(f"/proc/{torchrun}/task/{torchrun}/children").read_text().split()
    except OSError:
        children = []
    for pid in children or [str(torchrun)]:
        try:
            os.kill(int(pid), sig)
        except (OSError, ValueError):
            pass


def _rank(argv: list[str]) -> int:
    """One rank of a data-parallel job (under torchrun). Rank 0 records the outcome as `main` does."""
    from training import distributed
    from training.events import JobCancelled, StoreReporter
    from training.spec import JobSpec
    from training.store import JobStore

    database, job_id, run_dir, device, threads = argv
    job_id, run_dir = int(job_id), Path(run_dir)
    main = os.environ.get("RANK") == "0"
    store = JobStore(Path(database))
    reporter = _Reporter(StoreReporter(store, job_id, run_dir / "log.txt") if main else _Silent())
    try:
        group = distributed.start(device)
        spec = JobSpec.model_validate(store.get(job_id).spec)
        from training.runner import run_job

        threads = distributed.rank_threads(int(threads), group.world)
        result = run_job(spec, run_dir, reporter, device=device, threads=threads, group=group)
        return _record(store, reporter, job_id, result=result) if main else EXIT_OK
    except BaseException as exc:  # noqa: BLE001 - rank 0 records it; torchrun stops the other ranks
        if main:
            _record(store, reporter, job_id, exc)
        elif not isinstance(exc, JobCancelled):
            print(f"rank {os.environ.get('RANK', '?')} of job {job_id}: {traceback.format_exc()}",
                  file=sys.stderr, flush=True)
        # A stop every rank agreed on (cancel, worker stopping) is a clean end of this process.
        return EXIT_OK if isinstance(exc, JobCancelled) else EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the outcome is known: a late SIGTERM changes nothing
        reporter.inner.close()
        store.close()
        distributed.stop()


def _forget_repeated_metrics(store, job_id: int, run_dir: Path) -> None:
    """A resumed job repeats the steps after its last checkpoint; their old points would show twice."""
    from training.runner import checkpoint_step

    step = checkpoint_step(run_dir)
    store.forget_metrics_after(job_id, step if step is not None else -1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
