"""SQLite holds the library's truth: papers, passages (with their vectors), aliases, collections.

The FAISS and BM25 files are derived from it and can always be rebuilt from it, which is what
makes an interrupted ingest recoverable. Each write transaction bumps `generation`, and the
manifest records which generation the derived files reflect.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from retrieval.records import normalize_title

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS papers (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, authors TEXT NOT NULL DEFAULT '[]', year INTEGER,
    venue TEXT, doi TEXT, arxiv TEXT, url TEXT, abstract TEXT, bibtex TEXT,
    norm_title TEXT NOT NULL DEFAULT '', norm_authors TEXT NOT NULL DEFAULT '', own_id INTEGER NOT NULL DEFAULT 1, added_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS papers_doi ON papers(doi);
CREATE INDEX IF NOT EXISTS papers_arxiv ON papers(arxiv);
CREATE INDEX IF NOT EXISTS papers_title_year ON papers(norm_title, year);
CREATE INDEX IF NOT EXISTS papers_year ON papers(year);
CREATE TABLE IF NOT EXISTS aliases (alias TEXT PRIMARY KEY, paper_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections (
    paper_id TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (paper_id, name));
CREATE TABLE IF NOT EXISTS sources (
    paper_id TEXT NOT NULL, origin TEXT NOT NULL, record_hash TEXT NOT NULL,
    PRIMARY KEY (paper_id, origin));
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, paper_id TEXT NOT NULL, origin TEXT NOT NULL,
    page INTEGER, kind TEXT NOT NULL, text TEXT NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS passages_paper ON passages(paper_id);
"""

PAPER_FIELDS = ("id", "title", "authors", "year", "venue", "doi", "arxiv", "url", "abstract", "bibtex")


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode, so readers keep reading while a writer commits."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
    conn.execute("PRAGMA busy_timeout=10000")
    conn.row_factory = sqlite3.Row
    return conn


class Store:
    """Typed access to the library database; writes happen inside `transaction()`."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    # -- transactions and generation -------------------------------------------------------
    def transaction(self) -> "_Transaction":
        return _Transaction(self.conn)

    def generation(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def bump_generation(self) -> int:
        gen = self.generation() + 1
        self.set_meta("generation", str(gen))
        return gen

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- papers ------------------------------------------------------------------------------
    def resolve_id(self, ident: str) -> str | None:
        """A paper id from its id or from an alias it was merged under."""
        row = self.conn.execute("SELECT id FROM papers WHERE id=?", (ident,)).fetchone()
        if row:
            return row[0]
        row = self.conn.execute("SELECT paper_id FROM aliases WHERE alias=?", (ident,)).fetchone()
        return row[0] if row else None

    def paper(self, paper_id: str) -> dict | None:
        row = self.conn.execute("SELECT * FROM papers WHERE id=?", (paper_id,)).fetchone()
        return _paper_dict(row) if row else None

    def papers(self, paper_ids: Iterable[str]) -> dict[str, dict]:
        ids = list(dict.fromkeys(paper_ids))
        out: dict[str, dict] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(f"SELECT * FROM papers WHERE id IN ({marks})", chunk):
                out[row["id"]] = _paper_dict(row)
        return out

    def find_duplicate(self, doi: str | None, arxiv: str | None, norm_title: str, year: int | None) -> list[str]:
        """Papers sharing the DOI, the arXiv id, or the normalized title *and* year."""
        found: list[str] = []
        if doi:
            found += [r[0] for r in self.conn.execute("SELECT id FROM papers WHERE doi=?", (doi,))]
        if arxiv:
            found += [r[0] for r in self.conn.execute("SELECT id FROM papers WHERE arxiv=?", (arxiv,))]
        if norm_title and year:
            found += [r[0] for r in self.conn.execute(
                "SELECT id FROM papers WHERE norm_title=? AND year=?", (norm_title, year))]
        return list(dict.fromkeys(found))

    def upsert_paper(self, fields: dict, own_id: bool) -> None:
        values = dict(fields)
        values["norm_authors"] = " | ".join(normalize_title(a) for a in values.get("authors") or [])
        values["authors"] = json.dumps(values.get("authors") or [], ensure_ascii=False)
        exists = self.conn.execute("SELECT 1 FROM papers WHERE id=?", (values["id"],)).fetchone()
        cols = [c for c in PAPER_FIELDS + ("norm_title", "norm_authors") if c in values]
        if exists:
            sets = ", ".join(f"{c}=?" for c in cols if c != "id")
            self.conn.execute(f"UPDATE papers SET {sets} WHERE id=?",
                              [values[c] for c in cols if c != "id"] + [values["id"]])
        else:
            marks = ",".join("?" * (len(cols) + 2))
            self.conn.execute(f"INSERT INTO papers ({', '.join(cols)}, own_id, added_at) VALUES ({marks})",
                              [values[c] for c in cols] + [int(own_id), time.time()])

    def paper_has_own_id(self, paper_id: str) -> bool:
        row = self.conn.execute("SELECT own_id FROM papers WHERE id=?", (paper_id,)).fetchone()
        return bool(row and row[0])

    def add_alias(self, alias: str, paper_id: str) -> None:
        if alias != paper_id:
            self.conn.execute("INSERT OR REPLACE INTO aliases(alias, paper_id) VALUES (?, ?)", (alias, paper_id))

    def add_collection(self, paper_id: str, name: str) -> None:
        self.conn.execute("INSERT OR IGNORE INTO collections(paper_id, name) VALUES (?, ?)", (paper_id, name))

    def source_hash(self, paper_id: str, origin: str) -> str | None:
        row = self.conn.execute("SELECT record_hash FROM sources WHERE paper_id=? AND origin=?",
                                (paper_id, origin)).fetchone()
        return row[0] if row else None

    def origins(self, paper_id: str) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT origin FROM sources WHERE paper_id=?", (paper_id,))]

    def set_source(self, paper_id: str, origin: str, record_hash: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO sources(paper_id, origin, record_hash) VALUES (?, ?, ?)",
                          (paper_id, origin, record_hash))

    def delete_paper(self, paper_id: str) -> list[int]:
        """Remove a paper and everything hanging off it; returns the removed passage ids."""
        ids = [r[0] for r in self.conn.execute("SELECT id FROM passages WHERE paper_id=?", (paper_id,))]
        for table, column in (("passages", "paper_id"), ("aliases", "paper_id"), ("collections", "paper_id"),
                              ("sources", "paper_id"), ("papers", "id")):
            self.conn.execute(f"DELETE FROM {table} WHERE {column}=?", (paper_id,))
        return ids

    # -- passages ------------------------------------------------------------------------------
    def delete_passages(self, paper_id: str, origin: str) -> list[int]:
        ids = [r[0] for r in self.conn.execute(
            "SELECT id FROM passages WHERE paper_id=? AND origin=?", (paper_id, origin))]
        self.conn.execute("DELETE FROM passages WHERE paper_id=? AND origin=?", (paper_id, origin))
        return ids

    def add_passage(self, paper_id: str, origin: str, page: int | None, kind: str, text: str,
                    vector: np.ndarray) -> int:
        cur = self.conn.execute(
            "INSERT INTO passages(paper_id, origin, page, kind, text, vector) VALUES (?, ?, ?, ?, ?, ?)",
            (paper_id, origin, page, kind, text, np.asarray(vector, dtype=np.float32).tobytes()))
        return int(cur.lastrowid)

    def passages(self, passage_ids: Iterable[int]) -> dict[int, sqlite3.Row]:
        ids = list(passage_ids)
        out: dict[int, sqlite3.Row] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                f"SELECT id, paper_id, page, kind, text FROM passages WHERE id IN ({marks})", chunk):
                out[row["id"]] = row
        return out

    def iter_vectors(self, dim: int, batch: int = 20000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All stored (ids, vectors) in id order, a batch at a time."""
        last = -1
        while True:
            rows = self.conn.execute("SELECT id, vector FROM passages WHERE id>? ORDER BY id LIMIT ?",
                                     (last, batch)).fetchall()
            if not rows:
                return
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
            yield ids, vecs
            last = int(ids[-1])

    def iter_texts(self, batch: int = 20000) -> Iterator[list[tuple[int, str, str]]]:
        """(passage id, paper title, passage text) for every passage, in id order."""
        last = -1
        while True:
            rows = self.conn.execute(
                "SELECT p.id, a.title, p.text FROM passages p JOIN papers a ON a.id = p.paper_id "
                "WHERE p.id>? ORDER BY p.id LIMIT ?", (last, batch)).fetchall()
            if not rows:
                return
            yield [(r[0], r[1], r[2]) for r in rows]
            last = rows[-1][0]

    def filtered_passage_ids(self, years: tuple[int, int] | None, author: str | None,
                             collection: str | None) -> np.ndarray:
        """Passage ids of papers that pass the filters (used to restrict both searches)."""
        where, args = [], []
        if years:
            where.append("a.year BETWEEN ? AND ?")
            args += list(years)
        if author:
            # Accent- and case-folded on both sides, so "muller" finds "Jörg Müller".
            where.append("a.norm_authors LIKE ?")
            args.append("%" + normalize_title(author) + "%")
        if collection:
            where.append("a.id IN (SELECT paper_id FROM collections WHERE name=?)")
            args.append(collection)
        sql = "SELECT p.id FROM passages p JOIN papers a ON a.id = p.paper_id"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return np.array([r[0] for r in self.conn.execute(sql, args)], dtype=np.int64)

    def papers_added(self, since: float, until: float | None = None) -> list[dict]:
        """The papers added to the index in [since, until) (unix times), newest first, each with
        its `added_at` (read-only; the weekly report counts them)."""
        rows = self.conn.execute("SELECT * FROM papers WHERE added_at>=? AND added_at<? ORDER BY added_at DESC, id",
                                 (since, float("inf") if until is None else until)).fetchall()
        return [{**_paper_dict(row), "added_at": row["added_at"]} for row in rows]

    def newest_added(self) -> float:
        """The `added_at` of the newest paper (0 when the library is empty)."""
        return float(self.conn.execute("SELECT COALESCE(MAX(added_at), 0) FROM papers").fetchone()[0])

    def counts(self) -> dict[str, int]:
        return {
            "papers": self.conn.execute("SELECT COUNT(*) FROM papers").fetchone()[0],
            "passages": self.conn.execute("SELECT COUNT(*) FROM passages").fetchone()[0],
        }


class _Transaction:
    """`with store.transaction():` — BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def _paper_dict(row: sqlite3.Row) -> dict:
    data = {k: row[k] for k in PAPER_FIELDS}
    data["authors"] = json.loads(data["authors"] or "[]")
    return data
