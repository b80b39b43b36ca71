"""Finding model files on disk. labmate never downloads a model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError
from core.models import DEFAULT_PACKAGE, default_gguf  # noqa: F401 - re-exported for drafting

DEFAULT_MODEL = "default"


@dataclass(frozen=True)
class ModelFiles:
    """Either a GGUF file (`gguf` set) or a Hugging Face model folder (`gguf` None)."""

    folder: Path
    gguf: str | None = None

    @property
    def gguf_path(self) -> Path | None:
        return self.folder / self.gguf if self.gguf else None


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
