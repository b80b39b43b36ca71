"""Job specs: TOML files (or text) validated into `JobSpec`; every error names the bad field.

```toml
task = "token-classification"        # or "text-classification", "causal-lm"
base_model = "default"               # the bundled model for the task, or a local model folder
[data]
train = "data/ner/train.tsv"         # relative paths resolve against the spec file's folder
eval = "data/ner/devel.tsv"
[train]
epochs = 3
learning_rate = 5e-5
```
Data paths must lie inside one of the configured data roots; anything else is refused.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import UserError
from training.settings import SlurmJobOptions

TASKS = ("token-classification", "text-classification", "causal-lm")


class SpecError(UserError):
    """A job spec is malformed, names a missing file, or reads outside the data roots."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Strict):
    train: Path = Field(description="Training file: CoNLL/BIO `token<TAB>label` (.tsv/.conll/.txt), CSV or JSONL.")
    eval: Path | None = Field(None, description="Evaluation file; without one, `eval_fraction` of train is held out.")
    test: Path | None = Field(None, description="Optional test file, evaluated once with the best checkpoint.")
    eval_fraction: float = Field(0.1, gt=0, lt=0.5, description="Share of train held out when there is no eval file.")
    text_field: str = Field("text", description="Column (CSV) or key (JSONL) holding the text.")
    label_field: str = Field("label", description="Column or key holding the label (text classification).")


class TrainSpec(_Strict):
    epochs: float = Field(3, gt=0, le=1000, description="Passes over the training data (fractions allowed).")
    learning_rate: float = Field(5e-5, gt=0, lt=1, description="Peak learning rate of AdamW.")
    batch_size: int = Field(16, ge=1, le=4096, description="Examples per optimizer step, before accumulation.")
    eval_batch_size: int = Field(64, ge=1, le=4096, description="Examples per batch when evaluating.")
    gradient_accumulation: int = Field(1, ge=1, le=1024, description="Batches accumulated per optimizer step.")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of steps the learning rate warms up over.")
    warmup_steps: int | None = Field(None, ge=0, description="Warmup in steps (overrides warmup_ratio).")
    weight_decay: float = Field(0.01, ge=0, lt=1, description="AdamW weight decay (not applied to biases/norms).")
    max_length: int = Field(128, ge=8, le=8192, description="Longest input in tokens; longer ones are truncated.")
    seed: int = Field(42, description="Random seed (data order, initialization).")
    eval_every: int = Field(0, ge=0, description="Evaluate every N optimizer steps (0 = at the end of each epoch).")
    save_every: int = Field(
        0, ge=0, description="Save a resumable checkpoint every N steps (0 = at each evaluation).")
    early_stopping: int = Field(
        0, ge=0, description="Stop after N evaluations without improvement of the best metric (0 = never).")
    max_steps: int = Field(0, ge=0, description="Stop after N optimizer steps (0 = no limit).")
    max_grad_norm: float = Field(1.0, ge=0, description="Gradient clipping norm (0 = off).")
    group_by_length: bool = Field(True, description="Batch examples of similar length (less padding).")
    max_examples: int = Field(0, ge=0, description="Use only the first N training examples (0 = all); for trials.")
    gpus: int = Field(
        1, ge=1, le=64, description="Data-parallel processes (torchrun): one per GPU with NCCL, or CPU processes "
        "with gloo where there is no CUDA. batch_size stays the global batch, split among them.")


class LoraSpec(_Strict):
    r: int = Field(8, ge=1, le=512, description="LoRA rank.")
    alpha: int = Field(16, ge=1, description="LoRA scaling alpha.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA path.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "v_proj"], description="Module names LoRA adapts.")


class JobSpec(_Strict):
    task: Literal["token-classification", "text-classification", "causal-lm"] = Field(
        description="What to fine-tune the model for.")
    base_model: str = Field(
        "default", description='"default" (MiniLM for encoder tasks, SmolLM2 for causal-lm) or a model folder.')
    name: str = Field("", max_length=80, description="A short name shown in reports (default: the spec's name).")
    data: DataSpec
    train: TrainSpec = Field(default_factory=TrainSpec)
    lora: LoraSpec = Field(default_factory=LoraSpec)
    labels: list[str] = Field(
        default_factory=list, description="Label set in a fixed order (default: the labels seen in train).")
    slurm: SlurmJobOptions | None = Field(
        None, description='Overrides of [training.slurm] for this job (partition, account, qos, gpus, gpu_type, '
        'time_limit, cpus, mem, extra); used only with [training] backend = "slurm".')

    def data_paths(self) -> dict[str, Path]:
        """The data files this job reads, by role."""
        return {role: path for role in ("train", "eval", "test")
                if (path := getattr(self.data, role)) is not None}


def parse_spec(text: str, *, base_dir: Path, data_roots: list[Path], source: str = "spec") -> JobSpec:
    """Validate spec TOML text; relative data paths resolve against `base_dir`, and every data
    file must exist inside one of `data_roots`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source} is not valid TOML: {exc}. Fix the line it names.") from None
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_explain(exc, source)) from None
    for role, path in spec.data_paths().items():
        setattr(spec.data, role, confine(path, base_dir, data_roots, f"{source}: data.{role}"))
    if not spec.name:
        spec.name = Path(source).stem if source.endswith(".toml") else spec.task
    return spec


def load_spec(path: Path, *, data_roots: list[Path]) -> tuple[JobSpec, str]:
    """Read and validate a spec file; returns the spec and its text (kept with the job)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"Spec file {path} does not exist; give the path of a .toml job spec.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"Spec file {path} cannot be read ({exc}); give a .toml job spec.") from None
    return parse_spec(text, base_dir=path.resolve().parent, data_roots=data_roots, source=path.name), text


def confine(path: Path, base_dir: Path, roots: list[Path], what: str) -> Path:
    """`path` made absolute (against `base_dir`), symlinks resolved, checked to exist inside a root."""
    full = (base_dir / Path(path).expanduser()).resolve()
    resolved_roots = [Path(root).expanduser().resolve() for root in roots]
    if not any(full.is_relative_to(root) for root in resolved_roots):
        allowed = ", ".join(str(r) for r in resolved_roots) or "(none configured)"
        raise SpecError(f"{what} = {str(path)!r} is outside the data folders jobs may read ({allowed}). "
                        "Move the file into one of them, or add its folder to [training] data_roots.")
    if not full.is_file():
        raise SpecError(f"{what} = {str(path)!r}: there is no file {full}. Check the path; relative paths "
                        "resolve against the spec file's folder.")
    return full


def _explain(exc: ValidationError, source: str) -> str:
    lines = [f"{source} is not a valid job spec:"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"- unknown key '{field}'; check its spelling (see `labmate train submit --help`).")
        elif err["type"] == "missing":
            lines.append(f"- '{field}' is required.")
        elif err["type"] == "literal_error" and field == "task":
            lines.append(f"- task must be one of {', '.join(TASKS)} (got {err.get('input')!r}).")
        else:
            lines.append(f"- {field}: {err['msg']} (got {err.get('input')!r}).")
    return "\n".join(lines)
