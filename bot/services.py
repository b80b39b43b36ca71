"""Wiring: settings in, ready-to-use services out. No work happens at import."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings
    from retrieval.library import Library


def open_library(settings: "Settings", check_model: bool = True) -> "Library":
    """The retriever's library as configured (loads FAISS/BM25 files; the model loads on first use)."""
    from retrieval.embedder import SentenceTransformerEmbedder
    from retrieval.library import Library

    embedder = SentenceTransformerEmbedder(**settings.embedding.model_dump())
    return Library.open(settings.index, embedder, settings.search, check_model=check_model)
