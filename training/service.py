"""The training service as its clients see it: submit, list, cancel, resume, logs, metrics.

`TrainingService` is the one interface the bot and the CLI use. `LocalService` works on the job
database of this machine; `training.client.RemoteService` speaks to `labmate train serve` over
HTTP with the same methods. `make_service(settings)` picks one from `[training] url`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

from core.errors import NotFoundError
from training.events import tail
from training.settings import TrainingSettings
from training.spec import JobSpec, SpecError, load_spec, parse_spec
from training.store import FINISHED, Job, JobStore, MetricPoint, QUEUED, RUNNING

PRESET_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")


class TrainingService(Protocol):
    def submit(self, spec_text: str, *, base_dir: str | None = None, source: str = "spec",
               origin: dict | None = None) -> Job:
        """Validate a spec (TOML text) and queue it; relative data paths resolve against `base_dir`
        (default: the specs folder)."""

    def submit_preset(self, name: str, *, origin: dict | None = None) -> Job:
        """Queue the spec file NAME.toml from the specs folder."""

    def presets(self) -> list[str]:
        """Names of the spec files in the specs folder."""

    def get(self, job_id: int) -> Job:
        """One job (NotFoundError if there is none)."""

    def list(self, active: bool = False, limit: int = 20) -> list[Job]:
        """Newest first; `active` keeps queued and running jobs only."""

    def cancel(self, job_id: int) -> Job:
        """Cancel a queued job at once, or ask a running one to stop."""

    def resume(self, job_id: int) -> Job:
        """Queue a failed or cancelled job again; it continues from its last checkpoint."""

    def logs(self, job_id: int, lines: int = 200) -> str:
        """The last lines of the job's log."""

    def metrics(self, job_id: int, since_step: int = -1) -> list[MetricPoint]:
        """The job's metrics time series."""


class LocalService:
    """The service on this machine's job database and runs folder."""

    def __init__(self, settings: TrainingSettings, store: JobStore | None = None):
        self.settings = settings
        self.store = store or JobStore(settings.database)

    def validate(self, spec_text: str, *, base_dir: str | None = None, source: str = "spec") -> JobSpec:
        base = Path(base_dir) if base_dir else self.settings.specs_dir
        return parse_spec(spec_text, base_dir=base, data_roots=self.settings.data_roots, source=source)

    def submit(self, spec_text: str, *, base_dir: str | None = None, source: str = "spec",
               origin: dict | None = None) -> Job:
        spec = self.validate(spec_text, base_dir=base_dir, source=source)
        return self.store.submit(name=spec.name, task=spec.task, spec=spec.model_dump(mode="json"),
                                 spec_text=spec_text, origin=origin)

    def submit_file(self, path: Path, *, origin: dict | None = None) -> Job:
        spec, text = load_spec(path, data_roots=self.settings.data_roots)
        return self.store.submit(name=spec.name, task=spec.task, spec=spec.model_dump(mode="json"),
                                 spec_text=text, origin=origin)

    def submit_preset(self, name: str, *, origin: dict | None = None) -> Job:
        return self.submit_file(self.preset_path(name), origin=origin)

    def preset_path(self, name: str) -> Path:
        name = name.removesuffix(".toml")
        path = self.settings.specs_dir / f"{name}.toml"
        if not PRESET_NAME.match(name) or not path.is_file():
            known = ", ".join(self.presets()) or f"none yet: put NAME.toml files in {self.settings.specs_dir}"
            raise SpecError(f"There is no preset '{name}' (presets: {known}). "
                            "Or paste a spec: `/train start` followed by its TOML.")
        return path

    def presets(self) -> list[str]:
        folder = self.settings.specs_dir
        return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []

    def get(self, job_id: int) -> Job:
        return self.store.get(job_id)

    def list(self, active: bool = False, limit: int = 20) -> list[Job]:
        return self.store.list((QUEUED, RUNNING) if active else None, limit)

    def cancel(self, job_id: int) -> Job:
        return self.store.request_cancel(job_id)

    def resume(self, job_id: int) -> Job:
        return self.store.resume(job_id)

    def logs(self, job_id: int, lines: int = 200) -> str:
        self.store.get(job_id)  # NotFoundError for unknown ids
        return tail(self.log_path(job_id), lines)

    def metrics(self, job_id: int, since_step: int = -1) -> list[MetricPoint]:
        self.store.get(job_id)  # NotFoundError for unknown ids, as logs() does
        return self.store.metrics(job_id, since_step)

    def run_dir(self, job_id: int) -> Path:
        return self.settings.runs_dir / f"job-{int(job_id)}"

    def log_path(self, job_id: int) -> Path:
        return self.run_dir(job_id) / "log.txt"

    def model_dir(self, job_id: int) -> Path:
        """The best model of a finished job (for predictions)."""
        job = self.store.get(job_id)
        path = self.run_dir(job_id) / "best"
        if not path.is_dir():
            hint = "it has not saved a model yet" if job.state not in FINISHED else f"it {job.state} without one"
            raise NotFoundError(f"Job {job_id} has no trained model: {hint}.")
        return path

    def close(self) -> None:
        self.store.close()


def make_service(settings: TrainingSettings, env=None) -> TrainingService:
    """RemoteService when `[training] url` is set, else LocalService."""
    if settings.url:
        import os

        from training.client import RemoteService

        env = os.environ if env is None else env
        return RemoteService(settings.url, env.get(settings.token_env, ""), token_env=settings.token_env)
    return LocalService(settings)
