"""Typed settings of the training service; the bot's config file composes them as `[training]`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from retrieval.settings import Section


class TrainingSettings(Section):
    data_roots: list[Path] = Field(
        default_factory=lambda: [Path("data")],
        description="Folders training jobs may read data from; a path outside them is refused. "
        'In the environment, a JSON list: LABMATE_TRAINING__DATA_ROOTS=\'["/srv/data"]\'.')
    specs_dir: Path = Field(
        Path("specs"), description="Folder of job spec files; `/train start NAME` runs NAME.toml from here.")
    runs_dir: Path = Field(
        Path("index/runs"), description="One folder per job: its log, checkpoints and best model.")
    database: Path = Field(
        Path("index/training.sqlite"), description="The job queue, states and metrics (SQLite).")
    url: str = Field(
        "", description="Address of a `labmate train serve` service (e.g. http://gpu-box:8600) the bot and the "
        "CLI send jobs to; empty runs jobs on this machine.")
    token_env: str = Field(
        "LABMATE_TRAIN_TOKEN", description="Environment variable holding the bearer token that `labmate train "
        "serve` requires and clients send.")
    run_worker: bool = Field(
        True, description="Whether `labmate serve` runs the job worker itself (when `url` is empty).")
    parallel_jobs: int = Field(1, ge=1, le=16, description="Jobs the worker runs at once (one per GPU is usual).")
    device: str = Field("auto", description='"auto" (CUDA when available), "cpu" or "cuda".')
    threads: int = Field(0, ge=0, description="CPU threads a job's child process uses (0 = torch's default).")
    poll_seconds: float = Field(1.0, gt=0, le=60, description="How often the worker looks for new jobs and cancels.")
    cancel_grace_seconds: float = Field(
        30.0, gt=0, description="How long a cancelled job may take to stop by itself before it is killed.")
    report_seconds: float = Field(
        30.0, ge=1, description="How often the progress message of a running job is updated in Slack.")
    plot_every_evals: int = Field(
        0, ge=0, description="Also upload the loss/eval plot after every N evaluations while a job runs "
        "(0 = only when it ends).")
