"""Typed settings of the training service; the bot's config file composes them as `[training]`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from retrieval.settings import Section

_TIME = re.compile(r"^(\d+-\d{1,2}(:\d{1,2}(:\d{1,2})?)?|\d+(:\d{1,2}(:\d{1,2})?)?|UNLIMITED|INFINITE)$")
_MEMORY = re.compile(r"^\d+[KMGT]?$")
_NAME = re.compile(r"^[\w.,:+-]*$")


def _time_limit(value: str) -> str:
    if value and not _TIME.match(value):
        raise ValueError('a Slurm time limit is "MINUTES", "HH:MM:SS", "MM:SS" or "DAYS-HH[:MM[:SS]]" (e.g. "4:00:00")')
    return value


def _memory(value: str) -> str:
    if value and not _MEMORY.match(value.upper()):
        raise ValueError('memory is a number with an optional K/M/G/T suffix (e.g. "16G"), as sbatch --mem takes it')
    return value.upper()


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("a Slurm name may hold letters, digits and _ . , : + - only")
    return value


def _sbatch_options(values: list[str]) -> list[str]:
    for value in values:
        if not value.startswith("-") or "\n" in value or "\r" in value:
            raise ValueError(f"{value!r}: each extra line is one sbatch option such as \"--constraint=a100\" "
                             "(written into the script as `#SBATCH OPTION`)")
    return values


TimeLimit = Annotated[str, AfterValidator(_time_limit)]
Memory = Annotated[str, AfterValidator(_memory)]
SlurmName = Annotated[str, AfterValidator(_name)]
SbatchOptions = Annotated[list[str], AfterValidator(_sbatch_options)]


class SlurmSettings(Section):
    """`[training.slurm]`: how jobs are submitted when `[training] backend = "slurm"`. A job spec's
    `[slurm]` table overrides partition, account, qos, gpus, gpu_type, time_limit, cpus, mem, extra."""

    partition: SlurmName = Field(
        "", description="Partition jobs go to (sbatch --partition); empty = the cluster's default.")
    account: SlurmName = Field(
        "", description="Account charged for jobs (sbatch --account); empty = the user's default.")
    qos: SlurmName = Field("", description="Quality of service (sbatch --qos); empty = the default.")
    gpus: int = Field(0, ge=0, le=64, description="GPUs per job (0 = none).")
    gpu_type: SlurmName = Field(
        "", description='GPU type for the request, e.g. "a100" (--gres=gpu:a100:N); empty = any.')
    gpu_option: Literal["gres", "gpus"] = Field(
        "gres", description='How GPUs are requested: "gres" (--gres=gpu:N, every Slurm) or "gpus" (--gpus=N).')
    time_limit: TimeLimit = Field(
        "", description='Wall-clock limit per job (sbatch --time), e.g. "4:00:00" or "1-00:00:00"; empty = the '
        "partition's. A job that reaches it ends failed; `resume` continues it from its last checkpoint.")
    cpus: int = Field(
        0, ge=0, le=1024, description="CPUs per job (--cpus-per-task; 0 = the cluster's default). With [training] "
        "threads = 0 it is also the job's thread count.")
    mem: Memory = Field("", description='Memory per job (sbatch --mem), e.g. "32G"; empty = the cluster\'s default.')
    extra: SbatchOptions = Field(
        default_factory=list, description='More sbatch options, one per `#SBATCH` line, e.g. ["--constraint=a100", '
        '"--exclude=node7"].')
    setup: list[str] = Field(
        default_factory=list, description='Shell lines the job script runs before training (e.g. "module load '
        'cuda/12.4").')
    python: str = Field(
        "", description="Python that runs the job on the nodes; empty = the one running the worker (the same venv, "
        "which must be on storage the nodes see).")
    workdir: Path | None = Field(
        None, description="Folder the job runs in on the nodes; empty = this project's folder.")
    bin_dir: Path | None = Field(
        None, description="Folder holding sbatch, squeue, scontrol and scancel; empty = found on PATH.")
    command_timeout: float = Field(
        60.0, gt=0, le=600, description="Seconds a Slurm command (sbatch, squeue, ...) may take before it counts "
        "as failed.")


class SlurmJobOptions(BaseModel):
    """A job spec's `[slurm]` table: per-job overrides of `[training.slurm]` (unset keys keep the config's)."""

    model_config = ConfigDict(extra="forbid")

    partition: SlurmName | None = Field(None, description="Partition for this job.")
    account: SlurmName | None = Field(None, description="Account for this job.")
    qos: SlurmName | None = Field(None, description="Quality of service for this job.")
    gpus: int | None = Field(None, ge=0, le=64, description="GPUs for this job (0 = none).")
    gpu_type: SlurmName | None = Field(None, description='GPU type, e.g. "a100".')
    time_limit: TimeLimit | None = Field(None, description='Time limit, e.g. "2:00:00".')
    cpus: int | None = Field(None, ge=0, le=1024, description="CPUs for this job.")
    mem: Memory | None = Field(None, description='Memory, e.g. "32G".')
    extra: SbatchOptions | None = Field(None, description="More sbatch options (replace the config's).")


class TrainingSettings(Section):
    backend: Literal["local", "slurm"] = Field(
        "local", description='Where jobs run: "local" (a child process of the worker on this machine) or "slurm" '
        "(each job an sbatch job; see [training.slurm]; runs_dir and database must be on storage the nodes see).")
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
    slurm: SlurmSettings = Field(
        default_factory=SlurmSettings, description='Slurm submission settings, used when backend = "slurm".')
