"""Retrieval quality on BEIR SciFact (train queries): nDCG@10 and recall@100 for BM25, dense and
hybrid, all measured through labmate's own ingest and search code.

    .venv/bin/python bench/retrieval_quality.py [--index DIR] [--queries N]

The corpus is ingested with `labmate`'s pipeline into DIR (default: bench/results/scifact-index,
kept so a second run skips the ~5-10 minutes of embedding on 2 CPU cores). BM25-only and
dense-only are the same hybrid search with the dense weight set to 0 and 1.
Published test-split figures: BM25 0.665, all-MiniLM-L6-v2 0.645, BM25 + cross-encoder 0.688.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("LABMATE_TEST_DATA", REPO.parent / "shared" / "data")) / "scifact"


def ndcg_at(ranked: list[str], rels: dict[str, int], k: int = 10) -> float:
    dcg = sum(rels.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(rels.values(), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], rels: dict[str, int], k: int = 100) -> float:
    relevant = {d for d, r in rels.items() if r > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def load_queries(limit: int | None) -> tuple[list[tuple[str, str]], dict[str, dict[str, int]]]:
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    lines = (DATA / "qrels" / "train.tsv").read_text().splitlines()[1:]
    for line in lines:
        qid, doc, score = line.split("\t")
        qrels[qid][doc] = int(score)
    queries = [json.loads(l) for l in (DATA / "queries.train.jsonl").read_text().splitlines() if l.strip()]
    pairs = [(q["_id"], q["text"]) for q in queries if q["_id"] in qrels]
    return pairs[:limit] if limit else pairs, qrels


def open_index(folder: Path):
    from retrieval.ingest import add_paths
    from retrieval.library import Library
    from retrieval.settings import IndexSettings

    library = Library.open(IndexSettings(dir=folder))
    if library.stats()["papers"] < 5183:
        start = time.perf_counter()
        report = add_paths(library, [DATA / "corpus.jsonl"], progress=True)
        print(f"ingested {len(report.added)} papers, {report.passages} passages in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    return library


def evaluate(library, queries, qrels, weight: float, vectors) -> tuple[float, float]:
    from retrieval.search import search

    library.search_settings.dense_weight = weight
    ndcgs, recalls = [], []
    for (qid, text), vector in zip(queries, vectors):
        ranked = [h.id for h in search(library, text, k=100, query_vector=vector)]
        ndcgs.append(ndcg_at(ranked, qrels[qid]))
        recalls.append(recall_at(ranked, qrels[qid]))
    return statistics.fmean(ndcgs), statistics.fmean(recalls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=REPO / "bench" / "results" / "scifact-index")
    parser.add_argument("--queries", type=int, default=None, help="Use only the first N queries.")
    args = parser.parse_args()
    library = open_index(args.index)
    queries, qrels = load_queries(args.queries)
    vectors = library.embedder.encode([text for _, text in queries])
    default_weight = library.search_settings.dense_weight
    results = {}
    print(f"SciFact train: {len(queries)} queries, {library.stats()['papers']} papers, "
          f"{library.stats()['passages']} passages")
    print(f"{'method':<10} {'nDCG@10':>8} {'R@100':>8}")
    for name, weight in (("bm25", 0.0), ("dense", 1.0), ("hybrid", default_weight)):
        ndcg, recall = evaluate(library, queries, qrels, weight, vectors)
        results[name] = {"ndcg@10": round(ndcg, 4), "recall@100": round(recall, 4)}
        print(f"{name:<10} {ndcg:>8.4f} {recall:>8.4f}", flush=True)
    target = results["hybrid"]["ndcg@10"] >= 0.70
    print(f"hybrid nDCG@10 target 0.70: {'met' if target else 'NOT met'}")
    print(json.dumps({"bench": "retrieval_quality", "queries": len(queries), "dense_weight": default_weight,
                      **results}))


if __name__ == "__main__":
    main()
