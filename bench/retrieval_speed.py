"""Retrieval speed of labmate, measured side by side in one process.

Usage:  .venv/bin/python bench/retrieval_speed.py [--docs N] [--vectors N] [--queries N]
                                                   [--rounds R] [--full] [--skip-ann] [--ann-only]

What is measured (every figure is a median over repeated or interleaved runs, because the
machine may be shared: compare the ratios printed, which are taken between runs made side by side,
rather than absolute numbers between two invocations):

1. Ingest throughput, in embedded texts per second, on the first N SciFact abstracts.
   (a) "bare": one `SentenceTransformer.encode` call (batch 64, normalized) on exactly the texts
       labmate embeds (`passages_for` + "{title}. {text}", as `_commit_batch` builds them);
   (b) "ingest": `Library.open` + `retrieval.ingest.add_paths` into a fresh index folder (parsing,
       SQLite, FAISS, BM25 and the manifest commit included), with the same loaded model.
   Rounds alternate the order (bare first, then ingest first, ...). ratio = ingest / bare, both
   as the ratio of the medians and as the median of the per-round ratios (the verdict uses the
   latter: the two runs of a round see the same load); goal >= 0.85. The texts the ingest stored
   are checked to be exactly the texts the bare run encoded. SciFact has no years, so each
   record gets a deterministic synthetic year (1995-2024, from a CRC of its id) so that the year
   filter of step 2 has something to select.
2. Query latency of `retrieval.search.search(library, query, k=10)` in a warm process, on the
   index of step 1 (or on all 5,183 SciFact abstracts with --full), with SciFact train claims
   as queries, after 10 warm-up queries. Each query runs three times, the variants taking turns:
   as configured; with a 2010-2019 year filter; and, as a diagnostic, with torch and FAISS held
   to one intra-op thread (on a busy machine the threads of one small query wait for each
   other). p50/p95 in ms; goal p50 <= 20 ms (as configured, no filter). A per-stage breakdown
   (query embedding, FAISS, BM25, fusion + SQLite) follows, and a cProfile when the goal is missed.
3. ANN on synthetic 384-d unit vectors (default 1,000,000): exact `FaissIndex.flat` against the
   IVF path `FaissIndex.build` takes past `approximate_after` (`ivf` + `add` + `calibrate` to a
   target recall of 0.95). Reports build times, nlist/nprobe, recall@10 against exact search on
   1,000 held-out queries from the same distribution, single-query latency (median over an
   interleaved loop of 200 queries) and batched throughput (one call with all 1,000 queries,
   median of 3, alternating). Goal: recall@10 >= 0.95 at >= 20x
   faster (the verdict uses the single-query speed-up, the bot's case). Also printed: the
   similarity profile of the data, and the IVF recall when a filter allows only a random 10% of
   the ids (as a year filter does), against exact search over those ids.

The last line printed is a JSON object with all figures (`... | tail -1 | python -m json.tool`).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import pstats
import resource
import statistics
import sys
import tempfile
import time
import zlib
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("LABMATE_TEST_DATA", REPO.parent / "shared" / "data"))
SCIFACT_SIZE = 5183
YEARS = (2010, 2019)

from retrieval.embedder import SentenceTransformerEmbedder  # noqa: E402
from retrieval.ingest import add_paths, passages_for  # noqa: E402
from retrieval.library import Library  # noqa: E402
from retrieval.loaders import load_file  # noqa: E402
from retrieval.search import Filters, search  # noqa: E402
from retrieval.settings import IndexSettings  # noqa: E402
from retrieval.vector_index import FaissIndex, exact_search, recall_at_k  # noqa: E402


# -- small helpers ------------------------------------------------------------------------------
def timed(fn, *args, **kwargs):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def heading(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 78 - len(text)), flush=True)


def table(header: list[str], rows: list[list], widths: list[int] | None = None) -> None:
    widths = widths or [max(len(str(x)) for x in col) + 2 for col in zip(header, *rows)]
    for line in [header] + rows:
        print("".join(str(cell).rjust(w) if i else str(cell).ljust(w)
                      for i, (cell, w) in enumerate(zip(line, widths))), flush=True)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


# -- step 1: ingest throughput ------------------------------------------------------------------
def write_corpus(n: int, path: Path) -> Path:
    """The first n SciFact abstracts as JSONL, each with a deterministic synthetic year."""
    lines = []
    with (DATA / "scifact" / "corpus.jsonl").open() as src:
        for line in src:
            if len(lines) == n:
                break
            row = json.loads(line)
            row["year"] = 1995 + zlib.crc32(row["_id"].encode()) % 30
            lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
    return path


def labmate_texts(path: Path) -> list[str]:
    """Exactly the strings `_commit_batch` embeds for a fresh ingest of this file."""
    words = IndexSettings().passage_words
    return [f"{rec.title}. {text}" for rec in load_file(path).records
            for _, _, text in passages_for(rec, words)]


def bare_encode(embedder, texts: list[str]) -> float:
    """Seconds for one plain SentenceTransformer.encode of all texts."""
    _, seconds = timed(embedder.model.encode, texts, batch_size=64, normalize_embeddings=True,
                       convert_to_numpy=True, show_progress_bar=False)
    return seconds


class TimedEmbedder:
    """The same embedder, adding up the seconds its `encode` takes (to tell labmate's own work
    inside an ingest from the embedding itself)."""

    def __init__(self, embedder):
        self.inner, self.name, self.dim, self.seconds = embedder, embedder.name, embedder.dim, 0.0

    def encode(self, texts, batch_size=None):
        vectors, seconds = timed(self.inner.encode, texts, batch_size)
        self.seconds += seconds
        return vectors


def full_ingest(embedder, corpus: Path, folder: Path) -> tuple[float, int, float]:
    """Seconds, passages and seconds spent embedding for open + add_paths into a fresh folder."""
    timed_embedder = TimedEmbedder(embedder)
    start = time.perf_counter()
    library = Library.open(IndexSettings(dir=folder), timed_embedder)
    report = add_paths(library, [corpus], progress=False)
    seconds = time.perf_counter() - start
    library.close()
    if report.problems:
        raise RuntimeError(f"ingest reported problems: {report.problems[:3]}")
    return seconds, report.passages, timed_embedder.seconds


def check_same_texts(folder: Path, texts: list[str]) -> None:
    """The passages the ingest stored, as `_commit_batch` embedded them, equal the bare texts."""
    from retrieval.store import connect

    conn = connect(folder / "library.sqlite", readonly=True)
    stored = [f"{title}. {text}" for title, text in conn.execute(
        "SELECT a.title, p.text FROM passages p JOIN papers a ON a.id = p.paper_id ORDER BY p.id")]
    conn.close()
    if stored != texts:
        raise RuntimeError("the ingest embedded other texts than the bare run")


def ingest_rounds(embedder, corpus: Path, texts: list[str], work: Path, rounds: int) -> dict:
    """Alternating bare/ingest rounds; returns per-round rates and the last index folder."""
    bare, ingest, own, folder = [], [], [], None
    for r in range(rounds):
        order = ("bare", "ingest") if r % 2 == 0 else ("ingest", "bare")
        for kind in order:
            if kind == "bare":
                bare.append(len(texts) / bare_encode(embedder, texts))
            else:
                folder = work / f"ingest-{r}"
                seconds, passages, embedding = full_ingest(embedder, corpus, folder)
                if passages != len(texts):
                    raise RuntimeError(f"ingest embedded {passages} texts, the bare run {len(texts)}")
                ingest.append(passages / seconds)
                own.append((seconds - embedding, seconds))
        print(f"  round {r + 1} ({' then '.join(order)}): bare {bare[-1]:.1f} texts/s, ingest "
              f"{ingest[-1]:.1f} texts/s, ratio {ingest[-1] / bare[-1]:.3f}; ingest {own[-1][1]:.1f} s of "
              f"which {own[-1][0]:.1f} s outside encode", flush=True)
    return {"bare": bare, "ingest": ingest, "own": own, "folder": folder}


def step_ingest(embedder, docs: int, rounds: int, work: Path) -> dict:
    heading(f"1. Ingest throughput: {docs} SciFact abstracts, {rounds} alternating rounds")
    corpus = write_corpus(docs, work / "corpus.jsonl")
    texts = labmate_texts(corpus)
    print(f"  {docs} abstracts -> {len(texts)} texts to embed "
          f"(passage_words={IndexSettings().passage_words}, batch 64)")
    embedder.model.encode(texts[:64], batch_size=64)  # warm-up
    res = ingest_rounds(embedder, corpus, texts, work, rounds)
    check_same_texts(res["folder"], texts)
    med_b, med_i = statistics.median(res["bare"]), statistics.median(res["ingest"])
    paired = statistics.median(i / b for i, b in zip(res["ingest"], res["bare"]))
    table(["", "bare encode", "labmate ingest"],
          [["texts/s per round", " ".join(f"{x:.1f}" for x in res["bare"]),
            " ".join(f"{x:.1f}" for x in res["ingest"])],
           ["median texts/s", f"{med_b:.1f}", f"{med_i:.1f}"]])
    print(f"  ratio ingest/bare: {med_i / med_b:.3f} (of medians), {paired:.3f} (median of per-round"
          f" ratios); goal >= 0.85 -> {'MET' if paired >= 0.85 else 'NOT MET'}; the ingest stored "
          f"exactly the {len(texts)} texts the bare run encoded")
    outside = statistics.median(o / total for o, total in res["own"])
    print(f"  labmate's own work (parsing, SQLite, FAISS, BM25, commit: ingest time outside encode): "
          f"median {outside:.1%} of the ingest time")
    return {"docs": docs, "texts": len(texts), "bare_texts_per_s": res["bare"],
            "ingest_texts_per_s": res["ingest"], "ingest_outside_encode_s": [round(o, 2) for o, _ in res["own"]],
            "ingest_outside_encode_share": round(outside, 4), "bare_median": round(med_b, 2),
            "ingest_median": round(med_i, 2), "ratio_of_medians": round(med_i / med_b, 4),
            "ratio_paired_median": round(paired, 4), "index": res["folder"]}


# -- step 2: query latency --------------------------------------------------------------------------
def load_queries(n: int) -> list[str]:
    with (DATA / "scifact" / "queries.train.jsonl").open() as src:
        texts = [json.loads(line)["text"] for line in src if line.strip()]
    return [texts[i % len(texts)] for i in range(n)]


def full_corpus_index(embedder, work: Path) -> Path:
    corpus = write_corpus(SCIFACT_SIZE, work / "corpus-full.jsonl")
    print(f"  ingesting all {SCIFACT_SIZE} SciFact abstracts (--full) ...", flush=True)
    seconds, passages, _ = full_ingest(embedder, corpus, work / "full")
    print(f"  done: {passages} passages in {seconds:.0f} s ({passages / seconds:.1f} texts/s)")
    return work / "full"


def interleaved_latency(library, queries: list[str], filters: Filters) -> dict[str, list[float]]:
    """ms per search for each variant, the variants taking turns (rotating order) on every query:
    as configured, with the year filter, and a diagnostic run with torch and FAISS on one thread."""
    variants = {"no filter": (None, False), f"years {YEARS[0]}-{YEARS[1]}": (filters, False),
                "no filter, 1 thread": (None, True)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for i, query in enumerate(queries):
        for name in names[i % 3:] + names[:i % 3]:
            flt, one = variants[name]
            with single_threaded() if one else nullcontext():
                times[name].append(timed(search, library, query, k=10, filters=flt)[1] * 1000)
    return times


def stage_breakdown(library, queries: list[str]) -> dict[str, float]:
    """Median ms of each stage of `search` (same calls it makes, timed one by one)."""
    from retrieval import search as s

    n = max(library.search_settings.candidates, 30)
    stages: dict[str, list[float]] = {"embed query": [], "FAISS search": [], "BM25 scores+top": [],
                                      "fuse+SQLite+hits": []}
    for query in queries:
        vec, t_embed = timed(library.embedder.encode, [query])
        dense, t_faiss = timed(s._dense, library, query, vec[0], n, None)
        lexical, t_bm25 = timed(s._lexical, library, query, n, None)
        _, t_fuse = timed(s._fuse, library, dense, lexical, 10, library.search_settings.dense_weight, set())
        for key, t in zip(stages, (t_embed, t_faiss, t_bm25, t_fuse)):
            stages[key].append(t * 1000)
    return {key: statistics.median(v) for key, v in stages.items()}


@contextmanager
def single_threaded():
    """torch and FAISS (through LABMATE_FAISS_THREADS, read on every FAISS call) on one thread."""
    import torch

    threads, env = torch.get_num_threads(), os.environ.get("LABMATE_FAISS_THREADS")
    torch.set_num_threads(1)
    os.environ["LABMATE_FAISS_THREADS"] = "1"
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if env is None:
            os.environ.pop("LABMATE_FAISS_THREADS")
        else:
            os.environ["LABMATE_FAISS_THREADS"] = env


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def profile_searches(library, queries: list[str], lines: int = 12) -> str:
    """cProfile of plain searches: labmate's own functions by cumulative time, then the
    functions where the CPU time itself is spent."""
    profiler = cProfile.Profile()
    profiler.enable()
    for query in queries:
        search(library, query, k=10)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(r"retrieval/", lines)
    stats.sort_stats("tottime").print_stats(8)
    return "\n".join(line for line in out.getvalue().splitlines()
                     if line.strip() and not line.lstrip().startswith(("Ordered by", "List reduced")))


def step_query(embedder, folder: Path, n_queries: int, full: bool) -> dict:
    library = Library.open(IndexSettings(dir=folder), embedder)
    stats = library.stats()
    heading(f"2. Query latency: {stats['papers']} papers / {stats['passages']} passages "
            f"({'full SciFact' if full else 'the step-1 index; --full for all 5,183'})")
    queries = load_queries(10 + n_queries)
    filters = Filters(years=YEARS)
    for query in queries[:10]:  # warm-up
        search(library, query, k=10)
        search(library, query, k=10, filters=filters)
    times = interleaved_latency(library, queries[10:], filters)
    plain, filtered, single = times.values()
    allowed = len(library.store.filtered_passage_ids(YEARS, None, None))
    print(f"  {n_queries} queries after 10 warm-up; three variants per query, taking turns; torch "
          f"{torch_threads()} threads, FAISS {os.environ.get('LABMATE_FAISS_THREADS', os.cpu_count())} threads")
    table(["search(k=10)", "p50 ms", "p95 ms", "mean ms"],
          [[name + (f" ({allowed} passages)" if name.startswith("years") else ""), f"{pct(v, 50):.1f}",
            f"{pct(v, 95):.1f}", f"{statistics.mean(v):.1f}"] for name, v in times.items()])
    p50 = pct(plain, 50)
    print(f"  goal p50 <= 20 ms (no filter, as configured) -> {'MET' if p50 <= 20 else 'NOT MET'}")
    stages = stage_breakdown(library, queries[10:10 + min(n_queries, 100)])
    print("  median ms per stage: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    if p50 > 20:
        print("  cProfile of 50 plain searches:")
        print("\n".join("    " + line for line in profile_searches(library, queries[10:60]).splitlines()))
    library.close()
    return {"papers": stats["papers"], "passages": stats["passages"], "full_corpus": full,
            "queries": n_queries, "p50_ms": round(p50, 2), "p95_ms": round(pct(plain, 95), 2),
            "year_filter_p50_ms": round(pct(filtered, 50), 2),
            "year_filter_p95_ms": round(pct(filtered, 95), 2),
            "stages_median_ms": {k: round(v, 3) for k, v in stages.items()},
            "one_thread_p50_ms": round(pct(single, 50), 2), "one_thread_p95_ms": round(pct(single, 95), 2)}


# -- step 3: ANN on synthetic vectors ----------------------------------------------------------------
class ClusteredVectors:
    """Unit vectors from a two-level Gaussian mixture, like sentence embeddings.

    `topics` random unit directions; each of `clusters` centers is a topic plus noise (so
    clusters of one topic overlap, as papers of one field do); each cluster has a lognormal
    weight (uneven sizes) and its own spread. A point is its center plus Gaussian noise,
    normalized. The noise is anisotropic (standard deviations falling as j**-0.5 along the axes
    of a random rotation, an effective dimension of about 26) because real embeddings vary along
    a few tens of directions, not evenly along all 384; isotropic noise makes every member of a
    cluster about equally near and the search unrealistically easy for IVF. A fixed seed makes
    the same centers every run; each draw uses its own random stream, so queries are never
    members of the index."""

    def __init__(self, dim: int = 384, clusters: int = 4000, topics: int = 200, decay: float = 0.5,
                 seed: int = 0):
        rng = np.random.default_rng(seed)
        topic = _unit(rng.standard_normal((topics, dim)))
        parent = rng.integers(0, topics, clusters)
        self.centers = _unit(topic[parent] + 0.9 * _unit(rng.standard_normal((clusters, dim)))).astype(np.float32)
        weights = rng.lognormal(0.0, 1.0, clusters)
        self.weights = weights / weights.sum()
        self.spread = rng.uniform(0.8, 1.3, clusters)  # noise norm relative to the unit center
        scale = np.arange(1, dim + 1) ** -decay
        scale *= math.sqrt(dim / (scale**2).sum())  # same total noise power as isotropic noise
        rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        self.mix = (scale[:, None] * rotation).astype(np.float32)
        self.dim, self.seed, self.decay, self.topics = dim, seed, decay, topics

    def draw(self, n: int, stream: int, chunk: int = 100_000) -> np.ndarray:
        rng = np.random.default_rng([self.seed, stream])
        out = np.empty((n, self.dim), dtype=np.float32)
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            label = rng.choice(len(self.weights), size=size, p=self.weights)
            noise = rng.standard_normal((size, self.dim), dtype=np.float32) @ self.mix
            noise *= (self.spread[label] / math.sqrt(self.dim)).astype(np.float32)[:, None]
            noise += self.centers[label]
            out[start:start + size] = _unit(noise)
        return out

    def describe(self) -> str:
        return (f"{len(self.centers)} Gaussian clusters (lognormal sizes, noise/center norm 0.8-1.3, "
                f"anisotropic noise with s.d. ~ j^-{self.decay}) around unit centers grouped in "
                f"{self.topics} topics; {self.dim}-d, normalized, float32, seed {self.seed}")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build_exact(ids, vectors):
    index, t_build = timed(FaissIndex.flat, vectors.shape[1])
    _, t_add = timed(index.add, ids, vectors)
    return index, t_build + t_add


def build_approx(ids, vectors, target: float) -> tuple[FaissIndex, dict]:
    """The same calls as FaissIndex.build past approximate_after, timed one by one."""
    index, t_train = timed(FaissIndex.ivf, vectors, seed=0)
    _, t_add = timed(index.add, ids, vectors)
    params, t_cal = timed(index.calibrate, ids, vectors, target, seed=0)
    return index, {"train_s": t_train, "add_s": t_add, "calibrate_s": t_cal,
                   "nlist": params.nlist, "nprobe": params.nprobe}


def batched_seconds(exact, approx, queries: np.ndarray, repeats: int = 3) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Median seconds of one search call with all queries, exact and approximate alternating;
    also each index's results (scores and ids of the exact one, ids of the approximate one)."""
    t_exact, t_approx = [], []
    for _ in range(repeats):
        truth, seconds = timed(exact.search, queries, 10)
        t_exact.append(seconds)
        (_, found), seconds = timed(approx.search, queries, 10)
        t_approx.append(seconds)
    return statistics.median(t_exact), statistics.median(t_approx), truth, found


def single_query_ms(exact, approx, queries: np.ndarray) -> tuple[list, list]:
    """ms per one-query search, exact and approximate interleaved (order alternating)."""
    t_exact, t_approx = [], []
    for i, q in enumerate(queries):
        runs = [(t_exact, exact), (t_approx, approx)]
        for out, index in (runs if i % 2 == 0 else runs[::-1]):
            _, seconds = timed(index.search, q[None, :], 10)
            out.append(seconds * 1000)
    return t_exact, t_approx


def filtered_recall(approx, vectors: np.ndarray, queries: np.ndarray, fraction: float = 0.1) -> float:
    """Recall@10 of the IVF index when only a random `fraction` of ids is allowed (as a year
    filter does), against exact search over those ids."""
    rng = np.random.default_rng(11)
    allowed = np.sort(rng.choice(len(vectors), int(len(vectors) * fraction), replace=False))
    _, truth = exact_search(vectors[allowed], queries, 10)
    return recall_at_k(approx.search(queries, 10, allowed)[1], allowed[truth], 10)


def similarity_profile(vectors: np.ndarray, truth_scores: np.ndarray, rng) -> str:
    sample = vectors[rng.choice(len(vectors), 2000, replace=False)]
    pair = (sample[:1000] * sample[1000:]).sum(axis=1)
    return (f"cosine of random pairs: mean {pair.mean():.3f}, p99 {np.percentile(pair, 99):.3f}; "
            f"query -> nearest neighbour {truth_scores[:, 0].mean():.3f}, -> 10th {truth_scores[:, 9].mean():.3f}")


def step_ann(n: int, n_queries: int = 1000, single: int = 200, target: float = 0.95) -> dict:
    heading(f"3. ANN: {n:,} synthetic vectors, {n_queries} held-out queries")
    gen = ClusteredVectors()
    (vectors, queries), t_gen = timed(lambda: (gen.draw(n, stream=1), gen.draw(n_queries, stream=2)))
    ids = np.arange(n, dtype=np.int64)
    print(f"  data: {gen.describe()}; generated in {t_gen:.0f} s")
    exact, t_exact_build = build_exact(ids, vectors)
    approx, build = build_approx(ids, vectors, target)
    t_exact_batch, t_approx_batch, (truth_scores, truth), found = batched_seconds(exact, approx, queries)
    recall = recall_at_k(found, truth, 10)
    print("  " + similarity_profile(vectors, truth_scores, np.random.default_rng(7)))
    recall_filtered = filtered_recall(approx, vectors, queries[:200])
    lat_exact, lat_approx = single_query_ms(exact, approx, queries[:single])
    speedup = statistics.median(lat_exact) / statistics.median(lat_approx)
    batch_speedup = t_exact_batch / t_approx_batch
    table(["index", "build s", "1-query p50 ms", "1-query p95 ms", f"batch {n_queries} q/s", "recall@10"],
          [["exact (flat)", f"{t_exact_build:.1f}", f"{statistics.median(lat_exact):.2f}",
            f"{pct(lat_exact, 95):.2f}", f"{n_queries / t_exact_batch:.0f}", "1.000"],
           [f"IVF nlist={build['nlist']} nprobe={build['nprobe']}",
            f"{build['train_s'] + build['add_s'] + build['calibrate_s']:.1f}",
            f"{statistics.median(lat_approx):.3f}", f"{pct(lat_approx, 95):.3f}",
            f"{n_queries / t_approx_batch:.0f}", f"{recall:.4f}"]])
    print(f"  IVF build = train {build['train_s']:.1f} s + add {build['add_s']:.1f} s + calibrate "
          f"{build['calibrate_s']:.1f} s; peak RSS so far {peak_rss_gb():.1f} GB")
    print(f"  IVF recall@10 when a filter allows a random 10% of ids (200 queries): {recall_filtered:.4f}")
    ok = recall >= 0.95 and speedup >= 20
    print(f"  speed-up: {speedup:.1f}x single query (median over {single}, interleaved), "
          f"{batch_speedup:.1f}x batched; goal recall >= 0.95 at >= 20x (single query) -> "
          f"{'MET' if ok else 'NOT MET'}")
    return {"vectors": n, "data": gen.describe(), "exact_build_s": round(t_exact_build, 2),
            **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in build.items()},
            "recall_at_10": round(recall, 4), "recall_at_10_filter_10pct": round(recall_filtered, 4),
            "exact_1q_p50_ms": round(statistics.median(lat_exact), 3),
            "approx_1q_p50_ms": round(statistics.median(lat_approx), 3),
            "speedup_single": round(speedup, 2), "exact_batch_qps": round(n_queries / t_exact_batch, 1),
            "approx_batch_qps": round(n_queries / t_approx_batch, 1), "speedup_batch": round(batch_speedup, 2),
            "peak_rss_gb": round(peak_rss_gb(), 2)}


# -- main ----------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--docs", type=int, default=1000, help="SciFact abstracts for steps 1-2 (default 1000)")
    p.add_argument("--vectors", type=int, default=1_000_000, help="synthetic vectors for step 3")
    p.add_argument("--queries", type=int, default=200, help="timed queries in step 2 (after 10 warm-up)")
    p.add_argument("--rounds", type=int, default=3, help="alternating bare/ingest rounds in step 1")
    p.add_argument("--full", action="store_true", help="step 2 on all 5,183 SciFact abstracts")
    p.add_argument("--skip-ann", action="store_true", help="skip step 3")
    p.add_argument("--ann-only", action="store_true", help="run step 3 only")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    summary: dict = {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()[0]}
    print(f"labmate retrieval speed; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"data {DATA}")
    if not args.ann_only:
        embedder = SentenceTransformerEmbedder(device="cpu")
        embedder.encode(["warm up"])
        with tempfile.TemporaryDirectory(prefix="labmate-speed-") as tmp:
            work = Path(tmp)
            ingest = step_ingest(embedder, args.docs, args.rounds, work)
            folder = full_corpus_index(embedder, work) if args.full else ingest.pop("index")
            ingest.pop("index", None)
            summary["ingest"] = ingest
            summary["query"] = step_query(embedder, folder, args.queries, args.full)
    if not args.skip_ann:
        summary["ann"] = step_ann(args.vectors)
    summary["load_avg_end"] = os.getloadavg()[0]
    summary["peak_rss_gb"] = round(peak_rss_gb(), 2)
    print("\nJSON summary (next line):")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
