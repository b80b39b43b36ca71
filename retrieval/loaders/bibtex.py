"""BibTeX files (Zotero, Mendeley, hand-written): LaTeX decoded to Unicode, citation keys kept."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from retrieval.loaders import LoadResult
from retrieval.records import PaperRecord, Problem, find_arxiv_id, normalize_doi, parse_year

_VENUE_FIELDS = ("journal", "booktitle", "school", "institution", "howpublished", "publisher")


def load(path: Path) -> LoadResult:
    """Every entry of a .bib file; blocks the parser rejects become Problems with their line."""
    import bibtexparser
    from bibtexparser.middlewares import LatexDecodingMiddleware

    text = path.read_text(encoding="utf-8", errors="replace")
    # bibtexparser logs each failed block itself; we report them as Problems instead.
    logging.getLogger("bibtexparser").setLevel(logging.CRITICAL)
    library = bibtexparser.parse_string(text, append_middleware=[LatexDecodingMiddleware()])
    result = LoadResult()
    for block in library.failed_blocks:
        reason = str(getattr(block, "error", "") or "").splitlines()[0:1] or ["cannot be parsed"]
        if type(block).__name__ == "DuplicateBlockKeyBlock":
            reason = [f"duplicate citation key {getattr(block, 'key', '')!r}; the first entry was kept"]
        result.problems.append(Problem(str(path), f"entry at line {block.start_line + 1}", reason[0]))
    for entry in library.entries:
        record, problem = _entry_to_record(entry, path)
        if record is not None:
            result.records.append(record)
        else:
            result.problems.append(problem)
    return result


def _entry_to_record(entry, path: Path) -> tuple[PaperRecord | None, Problem | None]:
    fields = {name.lower(): _clean(f.value) for name, f in entry.fields_dict.items()}
    where = f"entry {entry.key} (line {entry.start_line + 1})"
    title = fields.get("title", "")
    if not title:
        return None, Problem(str(path), where, "entry has no title; add a title field")
    doi = normalize_doi(fields.get("doi"))
    eprint = fields.get("eprint") if "arxiv" in fields.get("archiveprefix", "arxiv").lower() else None
    arxiv = find_arxiv_id(eprint, fields.get("url"), fields.get("journal"), fields.get("doi"))
    url = fields.get("url") or (f"https://doi.org/{doi}" if doi else None)
    record = PaperRecord(
        title=title,
        id=entry.key,
        authors=_authors(fields.get("author") or fields.get("editor") or ""),
        year=parse_year(fields.get("year") or fields.get("date")),
        venue=next((fields[f] for f in _VENUE_FIELDS if fields.get(f)), None),
        doi=doi,
        url=url or (f"https://arxiv.org/abs/{arxiv}" if arxiv else None),
        arxiv=arxiv,
        abstract=fields.get("abstract") or None,
        bibtex=entry.raw.strip(),
        origin=str(path),
        where=where,
    )
    return record, None


def _clean(value: object) -> str:
    """Decoded LaTeX still carries grouping braces, math and line breaks; readers want plain text."""
    text = str(value)
    if "\\" in text or "$" in text:
        # The middleware leaves math mode alone ("$16\\times 16$"); render it as text too.
        from pylatexenc.latex2text import LatexNodes2Text

        text = LatexNodes2Text(math_mode="text").latex_to_text(text)
    text = text.replace("{", "").replace("}", "")
    return re.sub(r"\s+", " ", text).strip()


def _authors(value: str) -> list[str]:
    """'Last, First and Other, A.' -> ['First Last', 'A. Other']; 'et al.'/'others' dropped."""
    names = []
    for part in re.split(r"\s+and\s+", value):
        part = part.strip()
        if not part or part.lower() in {"others", "et al.", "et al"}:
            continue
        if "," in part:
            last, _, first = part.partition(",")
            part = f"{first.strip()} {last.strip()}".strip()
        names.append(part)
    return names
