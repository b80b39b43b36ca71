"""Hybrid search: dense (FAISS) and BM25 passages, fused per paper.

Each method contributes its top passages; scores are min-max normalized over those candidates
and mixed with `dense_weight`; a paper's score is that of its best passage, which is also its
snippet. Filters restrict both methods to the passages of matching papers before ranking.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from core.errors import NotFoundError, QueryError
from retrieval.library import Library


@dataclass
class Filters:
    """Year range (inclusive), author substring, collection name, and `added_after` (unix time:
    only papers added to the library strictly later); None means no filter."""

    years: tuple[int, int] | None = None
    author: str | None = None
    collection: str | None = None
    added_after: float | None = None

    def active(self) -> bool:
        return bool(self.years or self.author or self.collection) or self.added_after is not None


@dataclass
class Hit:
    """One paper in a result list."""

    id: str
    title: str
    authors: list[str]
    year: int | None
    venue: str | None
    url: str | None
    snippet: str
    score: float
    page: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def parse_years(text: str) -> tuple[int, int]:
    """'2019-2023', '2019-', '-2020' or '2021' as an inclusive range."""
    match = re.fullmatch(r"\s*(\d{4})?\s*(?:(-|–|\.\.)\s*(\d{4})?)?\s*", text or "")
    if not match or not (match.group(1) or match.group(3)):
        raise QueryError(f"Year filter '{text}' is not understood; write e.g. 2019-2023, 2019- or 2021.")
    low = int(match.group(1)) if match.group(1) else 0
    high = int(match.group(3)) if match.group(3) else (9999 if match.group(2) else low)
    if low > high:
        raise QueryError(f"Year range '{text}' runs backwards; write the earlier year first.")
    return low, high


def search(library: Library, query: str, k: int | None = None, filters: Filters | None = None,
           query_vector: np.ndarray | None = None, exclude: set[str] | None = None) -> list[Hit]:
    """The k best papers for a query, best first."""
    if not query.strip() and query_vector is None:
        raise QueryError("The query is empty; type a few words about what you are looking for.")
    library.refresh()
    settings = library.search_settings
    k = k or settings.k
    allowed = None
    if filters and filters.active():
        allowed = library.store.filtered_passage_ids(filters.years, filters.author, filters.collection)
        if filters.added_after is not None:
            allowed = np.intersect1d(allowed, _passages_added_after(library.store, filters.added_after))
        if not len(allowed):
            return []
    n = max(settings.candidates, 3 * k)
    dense = _dense(library, query, query_vector, n, allowed)
    lexical = _lexical(library, query, n, allowed)
    return _fuse(library, dense, lexical, k, settings.dense_weight, exclude or set())


def more_like(library: Library, paper_id: str, k: int | None = None, filters: Filters | None = None) -> list[Hit]:
    """Papers closest to a paper in the library (its mean passage vector plus its title words)."""
    store = library.store
    pid = store.resolve_id(paper_id)
    if pid is None:
        raise NotFoundError(f"No paper with id '{paper_id}' in the library; check the id in a search result.")
    paper = store.paper(pid)
    rows = store.conn.execute("SELECT vector FROM passages WHERE paper_id=?", (pid,)).fetchall()
    vecs = np.frombuffer(b"".join(r[0] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    center = vecs.mean(axis=0)
    center /= np.linalg.norm(center) or 1.0
    text = f"{paper['title']} {(paper['abstract'] or '')[:500]}"
    return search(library, text, k, filters, query_vector=center, exclude={pid})


def best_similarity(library: Library, query: str, paper_ids: list[str],
                    added_until: float | None = None) -> dict[str, float]:
    """Each paper's best passage cosine similarity to `query` (absolute, unlike the hybrid score,
    which is normalized over one search's candidates). Papers added after `added_until` are left out."""
    if not paper_ids:
        return {}
    vector = np.asarray(library.embedder.encode([query])[0], dtype=np.float32)
    vector /= np.linalg.norm(vector) or 1.0
    marks = ",".join("?" * len(paper_ids))
    rows = library.store.conn.execute(
        f"SELECT p.paper_id, p.vector FROM passages p JOIN papers a ON a.id = p.paper_id "
        f"WHERE p.paper_id IN ({marks}) AND a.added_at <= ?",
        [*paper_ids, float("inf") if added_until is None else added_until]).fetchall()
    best: dict[str, float] = {}
    for paper_id, blob in rows:
        passage = np.frombuffer(blob, dtype=np.float32)
        score = float(passage @ vector / (np.linalg.norm(passage) or 1.0))
        best[paper_id] = max(best.get(paper_id, -1.0), score)
    return best


def _passages_added_after(store, when: float) -> np.ndarray:
    """Passage ids of the papers added to the library after `when` (unix time)."""
    rows = store.conn.execute("SELECT p.id FROM passages p JOIN papers a ON a.id = p.paper_id "
                              "WHERE a.added_at > ?", (float(when),))
    return np.array([r[0] for r in rows], dtype=np.int64)


def _dense(library, query, query_vector, n, allowed) -> dict[int, float]:
    vectors = library.derived.vectors
    if not len(vectors):
        return {}
    if query_vector is None:
        query_vector = library.embedder.encode([query])[0]
    scores, ids = vectors.search(query_vector[None, :], n, allowed)
    return {int(i): float(s) for s, i in zip(scores[0], ids[0]) if i >= 0}


def _lexical(library, query, n, allowed) -> dict[int, float]:
    bm25 = library.derived.bm25
    scores = bm25.scores(query)
    if not len(scores):
        return {}
    if allowed is not None:
        scores = np.where(np.isin(bm25.ids, allowed), scores, 0.0)
    n = min(n, len(scores))
    top = np.argpartition(-scores, n - 1)[:n]
    return {int(bm25.ids[i]): float(scores[i]) for i in top if scores[i] > 0}


def _normalize(scores: dict[int, float]) -> dict[int, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    span = high - low or 1.0
    return {pid: (s - low) / span for pid, s in scores.items()}


def _fuse(library, dense, lexical, k, weight, exclude) -> list[Hit]:
    dn, ln = _normalize(dense), _normalize(lexical)
    rows = library.store.passages(set(dn) | set(ln))
    # A paper takes each method's best passage on its own, so a long paper is not penalized for
    # having its dense and its lexical evidence in different passages.
    dense_best: dict[str, float] = {}
    lexical_best: dict[str, float] = {}
    snippet_of: dict[str, tuple[float, int]] = {}  # paper -> (fused passage score, passage id)
    for pid, row in rows.items():
        paper = row["paper_id"]
        if paper in exclude:
            continue
        d, l = dn.get(pid, 0.0), ln.get(pid, 0.0)
        dense_best[paper] = max(dense_best.get(paper, 0.0), d)
        lexical_best[paper] = max(lexical_best.get(paper, 0.0), l)
        passage_score = weight * d + (1 - weight) * l
        if paper not in snippet_of or passage_score > snippet_of[paper][0]:
            snippet_of[paper] = (passage_score, pid)
    scores = {p: weight * dense_best[p] + (1 - weight) * lexical_best[p] for p in snippet_of}
    ranked = sorted(scores, key=lambda p: (-scores[p], p))[:k]
    papers = library.store.papers(ranked)
    limit = library.search_settings.snippet_chars
    hits = []
    for paper_id in ranked:
        paper, row = papers[paper_id], rows[snippet_of[paper_id][1]]
        hits.append(Hit(paper_id, paper["title"], paper["authors"], paper["year"], paper["venue"],
                        paper["url"], _snippet(row["text"] or paper["title"], limit), round(scores[paper_id], 4),
                        row["page"]))
    return hits


def _snippet(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut + "…"
