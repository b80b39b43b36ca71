"""Adding papers: load files, merge duplicates, embed passages, commit in batches.

Each batch is one SQLite transaction (papers, passages and their vectors together), so a crash
loses at most the batch in flight; what was committed before stays and is published by the next
writer or reader that finds the files lagging behind.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from core.errors import NotFoundError
from retrieval.library import Library
from retrieval.loaders import find_files, load_file
from retrieval.records import PaperRecord, Problem, generated_key, normalize_title



@dataclass
class IngestReport:
    """What an ingest did, for the CLI, Slack replies and tests."""

    files: int = 0
    added: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    passages: int = 0

    def summary(self) -> str:
        lines = [f"{self.files} file(s): {len(self.added)} added, {len(self.merged)} merged, "
                 f"{len(self.unchanged)} unchanged, {len(self.problems)} skipped ({self.passages} passages embedded)"]
        lines += [f"  skipped {p}" for p in self.problems]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"files": self.files, "added": self.added, "merged": self.merged, "unchanged": self.unchanged,
                "passages": self.passages, "problems": [vars(p) for p in self.problems]}


def add_paths(library: Library, paths: Iterable[Path], collection: str | None = None,
              progress: bool | None = None) -> IngestReport:
    """Ingest files and folders (recursively); bad entries are reported, the rest indexed."""
    # Absolute paths identify a source, so re-adding it by another spelling is still "unchanged".
    files, problems = find_files([Path(p).expanduser().resolve() for p in paths])
    report = IngestReport(files=len(files), problems=problems)
    records: list[PaperRecord] = []
    for path in files:
        result = load_file(path)
        records.extend(result.records)
        report.problems.extend(result.problems)
    return add_records(library, records, collection, report, progress)


def add_records(library: Library, records: list[PaperRecord], collection: str | None = None,
                report: IngestReport | None = None, progress: bool | None = None) -> IngestReport:
    """Merge and embed records in committed batches under the write lock."""
    report = report or IngestReport()
    bar = _progress_bar(len(records), progress)
    with library.writing():
        batch: list[PaperRecord] = []
        size = 0
        for record in records:
            batch.append(record)
            size += 1 + len(record.body)
            if size >= library.index_settings.commit_every:
                _commit_batch(library, batch, collection, report)
                bar.update(len(batch))
                batch, size = [], 0
                library.checkpoint()
        if batch:
            _commit_batch(library, batch, collection, report)
            bar.update(len(batch))
    bar.close()
    return report


def _progress_bar(total: int, progress: bool | None):
    from tqdm import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    return tqdm(total=total, unit="paper", desc="Indexing", disable=not show or total < 50, leave=False)


def _commit_batch(library: Library, batch: list[PaperRecord], collection: str | None,
                  report: IngestReport) -> None:
    store = library.store
    removed: list[int] = []
    pending: list[tuple[str, str, int | None, str, str]] = []  # paper, origin, page, kind, text
    with store.transaction():
        for record in batch:
            removed += _plan(library, record, collection, report, pending)
        titles = store.papers({p[0] for p in pending})
        texts = [f"{titles[p[0]]['title']}. {p[4]}" for p in pending]
        vectors = library.embedder.encode(texts)
        ids = np.array([store.add_passage(p[0], p[1], p[2], p[3], p[4], v) for p, v in zip(pending, vectors)],
                       dtype=np.int64)
        store.set_meta("model", library.embedder.name)
        store.set_meta("dim", str(library.embedder.dim))
        generation = store.bump_generation()
    library.derived.vectors.remove(np.array(removed, dtype=np.int64))
    library.derived.vectors.add(ids, vectors)
    library.derived.generation = generation
    report.passages += len(pending)


def _plan(library: Library, record: PaperRecord, collection: str | None, report: IngestReport,
          pending: list) -> list[int]:
    """Write the paper row for one record and queue its passages; returns replaced passage ids."""
    store = library.store
    target = _match(store, record)
    digest = record.content_hash()
    label = record.id or record.title[:60]
    if target and store.source_hash(target, record.origin) == digest:
        report.unchanged.append(target)
        if collection:
            store.add_collection(target, collection)
        return []
    existing = store.paper(target) if target else None
    same_origin = bool(target) and record.origin in store.origins(target)
    paper_id = target or _new_id(store, record)
    fields = _merge_fields(existing, record, prefer_new=same_origin or existing is None)
    store.upsert_paper({**fields, "id": paper_id, "norm_title": normalize_title(fields["title"])},
                       own_id=record.id is not None if existing is None else store.paper_has_own_id(paper_id))
    if record.id:
        store.add_alias(record.id, paper_id)
    store.add_collection(paper_id, collection or "default")
    removed = store.delete_passages(paper_id, record.origin)
    store.set_source(paper_id, record.origin, digest)
    take_abstract = existing is None or same_origin or not existing.get("abstract")
    for page, kind, text in passages_for(record, library.index_settings.passage_words, take_abstract):
        pending.append((paper_id, record.origin, page, kind, text))
    (report.merged if existing and not same_origin else report.added).append(
        paper_id if existing is None or same_origin else f"{label} -> {paper_id}")
    return removed


def _match(store, record: PaperRecord) -> str | None:
    """The paper this record is (by its own id, DOI, arXiv id, or title+year), if any."""
    if record.id:
        found = store.resolve_id(record.id)
        if found:
            return found
    norm = normalize_title(record.title)
    for candidate in store.find_duplicate(record.doi, record.arxiv, norm, record.year):
        # Two records of one file that carry distinct ids of their own are distinct papers.
        if record.id and store.paper_has_own_id(candidate) and record.origin in store.origins(candidate):
            continue
        return candidate
    return None


def _new_id(store, record: PaperRecord) -> str:
    if record.id:
        return record.id
    base = generated_key(record)
    candidate, n = base, 1
    while store.resolve_id(candidate) is not None:
        n += 1
        candidate = f"{base}{chr(ord('a') + n - 1)}" if n <= 26 else f"{base}{n}"
    return candidate


def _merge_fields(existing: dict | None, record: PaperRecord, prefer_new: bool) -> dict:
    """New values fill gaps; they replace old ones only when the same source changed."""
    new = {"title": record.title, "authors": record.authors, "year": record.year, "venue": record.venue,
           "doi": record.doi, "arxiv": record.arxiv, "url": record.url, "abstract": record.abstract,
           "bibtex": record.bibtex}
    if existing is None:
        return new
    merged = {}
    for key, value in new.items():
        old = existing.get(key)
        merged[key] = (value or old) if prefer_new else (old or value)
    if record.bibtex and not prefer_new and existing.get("bibtex") is None:
        merged["bibtex"] = record.bibtex
    return merged


def passages_for(record: PaperRecord, words: int, with_abstract: bool = True) -> list[tuple[int | None, str, str]]:
    """(page, kind, text) passages: the abstract (split if long) and the full-text body."""
    out: list[tuple[int | None, str, str]] = []
    if with_abstract:
        chunks = split_text(record.abstract or "", words) or [""]
        out += [(None, "abstract", chunk) for chunk in chunks]
    out += [(p.page, p.kind, p.text) for p in record.body if p.text.strip()]
    return out


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


def split_text(text: str, words: int) -> list[str]:
    """Passages of about `words` words that break at sentence ends; short texts stay whole."""
    text = " ".join(text.split())
    if not text:
        return []
    if len(text.split()) <= words * 1.5:
        return [text]
    chunks, current, count = [], [], 0
    for sentence in _SENTENCE_END.split(text):
        n = len(sentence.split())
        if current and count + n > words:
            chunks.append(" ".join(current))
            current, count = [], 0
        current.append(sentence)
        count += n
    if current:
        if chunks and count < words // 3:
            chunks[-1] += " " + " ".join(current)  # a short tail belongs with what precedes it
        else:
            chunks.append(" ".join(current))
    return chunks


def remove_papers(library: Library, idents: list[str]) -> list[str]:
    """Delete papers by id or alias; unknown ids raise NotFoundError and nothing is removed."""
    store = library.store
    resolved = [(ident, store.resolve_id(ident)) for ident in idents]
    missing = [ident for ident, pid in resolved if pid is None]
    if missing:
        raise NotFoundError(f"No paper with id {', '.join(missing)}; `labmate papers QUERY --json` shows ids.")
    with library.writing():
        removed: list[int] = []
        with store.transaction():
            for _, pid in resolved:
                removed += store.delete_paper(pid)
            library.derived.generation = store.bump_generation()
        library.derived.vectors.remove(np.array(removed, dtype=np.int64))
    return [pid for _, pid in resolved]


def rebuild(library: Library, progress: bool | None = None) -> int:
    """Re-embed every passage with the library's embedder (after a model change) in one
    transaction, so an interrupted rebuild leaves the old index as it was."""
    store = library.store
    rows = store.conn.execute(
        "SELECT p.id, a.title, p.text FROM passages p JOIN papers a ON a.id = p.paper_id ORDER BY p.id").fetchall()
    bar = _progress_bar(len(rows), progress)
    with library.writing():
        with store.transaction():
            step = library.index_settings.commit_every
            for start in range(0, len(rows), step):
                chunk = rows[start:start + step]
                vectors = library.embedder.encode([f"{r[1]}. {r[2]}" for r in chunk])
                store.conn.executemany("UPDATE passages SET vector=? WHERE id=?",
                                       [(v.tobytes(), r[0]) for v, r in zip(vectors, chunk)])
                bar.update(len(chunk))
            store.set_meta("model", library.embedder.name)
            store.set_meta("dim", str(library.embedder.dim))
            store.bump_generation()
        library.derived = library._build_derived()
    bar.close()
    return len(rows)
