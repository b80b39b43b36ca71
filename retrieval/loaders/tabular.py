"""JSONL, JSON and CSV exports: BEIR records (`_id`, `title`, `text`) and native records
(`id`, `title`, `abstract`, `authors`, `year`, `venue`, `doi`, `url`, `bibtex`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable

from retrieval.loaders import LoadResult
from retrieval.records import (
    PaperRecord,
    Problem,
    find_arxiv_id,
    normalize_doi,
    parse_year,
    split_authors,
)

KNOWN_FIELDS = {"_id", "id", "title", "text", "abstract", "authors", "year", "venue", "doi", "url",
                "bibtex", "arxiv", "metadata"}


def load_jsonl(path: Path) -> LoadResult:
    """One JSON object per line; a bad line is reported with its number and skipped."""
    result = LoadResult()
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                result.problems.append(Problem(str(path), f"line {number}", f"invalid JSON: {exc.msg}"))
                continue
            _add(result, obj, path, f"line {number}")
    return result


def load_json(path: Path) -> LoadResult:
    """A JSON array of records (or one record, or {"papers": [...]})."""
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError as exc:
        if "\n{" in path.read_text(encoding="utf-8", errors="replace")[:10000]:
            return load_jsonl(path)  # a JSONL file saved with a .json name
        return LoadResult(problems=[Problem(str(path), f"line {exc.lineno}", f"invalid JSON: {exc.msg}")])
    if isinstance(data, dict):
        data = data.get("papers", data.get("records", [data]))
    if not isinstance(data, list):
        return LoadResult(problems=[Problem(str(path), "", "expected a list of records")])
    result = LoadResult()
    for number, obj in enumerate(data, start=1):
        _add(result, obj, path, f"record {number}")
    return result


def load_csv(path: Path) -> LoadResult:
    """A CSV with a header row naming the same fields as native records."""
    result = LoadResult()
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not ({"title", "_id", "id"} & {f.strip() for f in reader.fieldnames}):
            return LoadResult(problems=[Problem(str(path), "line 1", "header needs a 'title' column "
                                                "(and optionally id, abstract, authors, year, venue, doi, url)")])
        for row in reader:
            clean = {k.strip(): v for k, v in row.items() if k is not None and v not in (None, "")}
            _add(result, clean, path, f"line {reader.line_num}")
    return result


def _add(result: LoadResult, obj: Any, path: Path, where: str) -> None:
    try:
        result.records.append(record_from_mapping(obj, str(path), where))
    except ValueError as exc:
        result.problems.append(Problem(str(path), where, str(exc)))


def record_from_mapping(obj: Any, origin: str = "", where: str = "") -> PaperRecord:
    """Build a record from a BEIR or native mapping; ValueError says what is missing."""
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object with at least a title")
    own_id = obj.get("_id", obj.get("id"))
    title = _text(obj.get("title"))
    abstract = _text(obj.get("abstract") or obj.get("text"))
    if not title and not abstract:
        raise ValueError("record has neither a title nor a text/abstract")
    doi = normalize_doi(_text(obj.get("doi")))
    url = _text(obj.get("url")) or None
    arxiv = find_arxiv_id(_text(obj.get("arxiv")), url, doi)
    return PaperRecord(
        title=title or _first_words(abstract),
        id=str(own_id).strip() if own_id not in (None, "") else None,
        authors=split_authors(_authors_value(obj.get("authors"))),
        year=parse_year(obj.get("year")),
        venue=_text(obj.get("venue")) or None,
        doi=doi,
        url=url or (f"https://doi.org/{doi}" if doi else None),
        arxiv=arxiv,
        abstract=abstract or None,
        bibtex=_text(obj.get("bibtex")) or None,
        origin=origin,
        where=where,
    )


def _authors_value(value: Any) -> Any:
    # Exports write authors as ["A B", ...], as [{"name": ...}] or as one string.
    if isinstance(value, list):
        return [a.get("name", "") if isinstance(a, dict) else a for a in value]
    if isinstance(value, str) and value.startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, dict)):
        value = " ".join(str(v) for v in value)
    return " ".join(str(value).split())


def _first_words(text: str, n: int = 12) -> str:
    return " ".join(text.split()[:n])
