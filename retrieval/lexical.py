"""BM25 over passages with `bm25s` (English stop words, Snowball stemming)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# Parameters from Lucene's defaults; the tokenization matches BEIR's BM25 baselines closely.
K1 = 1.2
B = 0.75


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, stop-worded, stemmed tokens, one list per text."""
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), return_ids=False,
                          show_progress=False)


class Bm25Index:
    """A BM25 model over passage ids; rebuilt as a whole when the library changes."""

    def __init__(self, model, ids: np.ndarray):
        self.model = model
        self.ids = ids

    @classmethod
    def build(cls, ids: list[int], texts: list[str]) -> "Bm25Index":
        import bm25s

        model = bm25s.BM25(k1=K1, b=B, method="lucene")
        if texts:
            model.index(tokenize(texts), show_progress=False)
        return cls(model, np.asarray(ids, dtype=np.int64))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage (aligned with `self.ids`); zeros when nothing matches."""
        if not len(self.ids):
            return np.zeros(0, dtype=np.float32)
        tokens = tokenize([query])[0]
        token_ids = self.model.get_tokens_ids(tokens)
        if not token_ids:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self.model.get_scores_from_ids(token_ids), dtype=np.float32)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "ids.npy", self.ids)
        if len(self.ids):
            self.model.save(str(folder), show_progress=False)
        (folder / "done.json").write_text(json.dumps({"passages": int(len(self.ids))}))

    @classmethod
    def load(cls, folder: Path) -> "Bm25Index":
        import bm25s

        ids = np.load(folder / "ids.npy")
        if not len(ids):
            return cls(bm25s.BM25(k1=K1, b=B, method="lucene"), ids)
        model = bm25s.BM25.load(str(folder), mmap=False, show_progress=False)
        return cls(model, ids)
