"""FAISS index kinds: exact while small, calibrated IVF beyond the configured size."""

from __future__ import annotations

import numpy as np

from retrieval.vector_index import FaissIndex, exact_search, recall_at_k


def clustered(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(50, dim))
    data = centers[rng.integers(0, 50, n)] + 0.5 * rng.normal(size=(n, dim))
    return (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)


def test_ivf_past_threshold_meets_target_recall_and_filters(tmp_path):
    data = clustered(6200)
    vectors, queries = data[:6000], data[6000:]  # held-out queries from the same distribution
    ids = np.arange(100, 6100, dtype=np.int64)
    index = FaissIndex.build(ids, vectors, approximate_after=1000, target_recall=0.95)
    assert index.kind == "ivf" and index.nprobe >= 1
    truth = ids[exact_search(vectors, queries, 10)[1]]
    assert recall_at_k(index.search(queries, 10)[1], truth, 10) >= 0.9
    allowed = ids[::10]
    found = index.search(queries[:20], 5, allowed=allowed)[1]
    assert set(found.ravel().tolist()) <= set(allowed.tolist())
    index.save(tmp_path / "v.faiss")
    loaded = FaissIndex.load(tmp_path / "v.faiss", "ivf", index.nprobe)
    assert np.array_equal(loaded.search(queries[:5], 10)[1], index.search(queries[:5], 10)[1])


def test_small_collections_stay_exact_and_tiny_ivf_does_not_crash():
    vectors = clustered(40)
    ids = np.arange(40, dtype=np.int64)
    assert FaissIndex.build(ids, vectors, approximate_after=100).kind == "flat"
    tiny = FaissIndex.build(ids, vectors, approximate_after=10)
    assert tiny.kind == "ivf" and tiny.search(vectors[:1], 1)[1][0][0] == 0
    tiny.remove(np.array([0]))
    assert len(tiny) == 39
