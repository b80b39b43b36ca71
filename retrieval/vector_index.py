"""Dense vector search with FAISS: exact inner product while small, IVF past a configured size.

The index stores passage ids (int64) with their vectors. IVF parameters are chosen for recall:
`nlist` grows with the square root of the collection and `nprobe` is calibrated on the data
itself until recall@10 against exact search reaches the configured target.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


class VectorIndex(Protocol):
    """What the library needs from a vector index."""

    kind: str

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...
    def remove(self, ids: np.ndarray) -> None: ...
    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...
    def save(self, path: Path) -> None: ...
    def __len__(self) -> int: ...


@dataclass
class IvfParams:
    nlist: int
    nprobe: int


def _faiss():
    import faiss

    # All cores by default (batch work, IVF training); LABMATE_FAISS_THREADS caps it on a
    # shared machine.
    faiss.omp_set_num_threads(int(os.environ.get("LABMATE_FAISS_THREADS", os.cpu_count() or 1)))
    return faiss


def _gpu_copy(index):
    """A GPU copy of the index when faiss-gpu is installed and a device is visible, else None.
    Any failure to copy (an index type the GPU build lacks, no memory) falls back to the CPU."""
    faiss = _faiss()
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        return None
    try:
        return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    except Exception as exc:  # noqa: BLE001 - searching on the CPU is always correct
        logging.getLogger("labmate.faiss").warning("FAISS GPU copy failed, searching on CPU: %s", exc)
        return None


class FaissIndex:
    """A FAISS index over passage ids; `kind` is "flat" (exact) or "ivf" (approximate)."""

    def __init__(self, index, kind: str, nprobe: int | None = None):
        self.index = index
        self.kind = kind
        self.nprobe = nprobe
        self._gpu = None  # a GPU copy for unfiltered searches, made on first use
        self._gpu_checked = False
        self._apply_nprobe()

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def flat(cls, dim: int) -> "FaissIndex":
        faiss = _faiss()
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), "flat")

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, approximate_after: int,
              target_recall: float = 0.95, seed: int = 0) -> "FaissIndex":
        """Exact index for up to `approximate_after` vectors, a calibrated IVF index beyond."""
        dim = vectors.shape[1]
        if len(ids) <= approximate_after:
            index = cls.flat(dim)
        else:
            index = cls.ivf(vectors, seed=seed)
        index.add(ids, vectors)
        if index.kind == "ivf":
            index.calibrate(ids, vectors, target_recall, seed=seed)
        return index

    @classmethod
    def ivf(cls, train_vectors: np.ndarray, nlist: int | None = None, seed: int = 0) -> "FaissIndex":
        """An untrained-then-trained IVF-Flat index; nlist ~ 4*sqrt(n), capped for training cost."""
        faiss = _faiss()
        n, dim = train_vectors.shape
        nlist = nlist or int(min(max(64, 4 * math.sqrt(n)), 16384))
        nlist = 1 << round(math.log2(nlist))
        nlist = max(1, min(nlist, n // 39))  # k-means needs ~39 points per centroid
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        # 64 points per centroid train k-means well; more only costs time.
        rng = np.random.default_rng(seed)
        sample = train_vectors[rng.choice(n, size=min(n, 64 * nlist), replace=False)]
        index.cp.seed = seed
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        return cls(index, "ivf", nprobe=8)

    def calibrate(self, ids: np.ndarray, vectors: np.ndarray, target_recall: float, seed: int = 0,
                  n_queries: int = 200) -> IvfParams:
        """Smallest nprobe whose recall@10 against exact search meets the target, on queries
        sampled from the collection and scored leave-one-out: each query's own id is dropped from
        both result lists. A query that is in the index always finds itself (in the list probed
        first), which overstates the recall new queries get; without itself it stands for an
        unseen query from the same distribution."""
        if self.kind != "ivf":
            return IvfParams(1, 1)
        rng = np.random.default_rng(seed + 1)
        picks = rng.choice(len(vectors), size=min(n_queries, len(vectors)), replace=False)
        queries = np.ascontiguousarray(vectors[picks], dtype=np.float32)
        k = min(11, len(vectors))
        truth = _without_own(ids[exact_search(vectors, queries, k)[1]], ids[picks])
        nlist = _faiss().extract_index_ivf(self.index).nlist
        nprobe = 1
        while True:
            self.nprobe = nprobe
            self._apply_nprobe()
            found = _without_own(self.index.search(queries, k)[1], ids[picks])
            if recall_at_k(found, truth, 10) >= target_recall or nprobe >= nlist:
                return IvfParams(nlist, nprobe)
            nprobe = min(nlist, nprobe * 2 if nprobe < 8 else int(nprobe * 1.5))

    def _apply_nprobe(self) -> None:
        if self.kind == "ivf" and self.nprobe:
            _faiss().extract_index_ivf(self.index).nprobe = self.nprobe

    # -- use -------------------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                                    np.ascontiguousarray(ids, dtype=np.int64))
            self._gpu, self._gpu_checked = None, False

    def remove(self, ids: np.ndarray) -> None:
        if len(ids):
            self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
            self._gpu, self._gpu_checked = None, False

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None):
        """(scores, ids) of the k nearest passages per query; `allowed` restricts the ids."""
        faiss = _faiss()
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.index.d)
        k = max(1, min(k, len(self)))
        if allowed is None:
            return self._unfiltered().search(queries, k)
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        if self.kind == "ivf":
            # A filter leaves fewer candidates in each probed list: probe proportionally more
            # lists so a narrow filter keeps the calibrated recall.
            nlist = faiss.extract_index_ivf(self.index).nlist
            nprobe = min(nlist, math.ceil(self.nprobe * len(self) / max(1, len(allowed))))
            params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
        else:
            params = faiss.SearchParameters(sel=selector)
        return self.index.search(queries, k, params=params)

    def _unfiltered(self):
        """The GPU copy when there is one (exact search only: IVF parameters stay on the CPU)."""
        if not self._gpu_checked and self.kind == "flat":
            self._gpu, self._gpu_checked = _gpu_copy(self.index), True
        return self._gpu if self._gpu is not None else self.index

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def save(self, path: Path) -> None:
        _faiss().write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, kind: str, nprobe: int | None = None) -> "FaissIndex":
        return cls(_faiss().read_index(str(path)), kind, nprobe)


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force inner-product top-k (positions into `vectors`), the reference for recall."""
    faiss = _faiss()
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return flat.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def _without_own(found: np.ndarray, own: np.ndarray) -> list[np.ndarray]:
    """Each row's first 10 ids other than the query's own id."""
    return [row[row != o][:10] for row, o in zip(found, own)]


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean fraction of each query's true top-k ids that the returned top-k contains."""
    hits = sum(len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth))
    return hits / max(1, k * len(truth))
