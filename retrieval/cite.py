"""BibTeX for papers: the original entry when the paper came from a .bib file, else one built
from the stored fields (never invented ones)."""

from __future__ import annotations

import re

from core.errors import NotFoundError
from retrieval.store import Store

_SPECIAL = str.maketrans({"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_"})


def cite(store: Store, idents: list[str]) -> str:
    """BibTeX entries for ids or aliases, in the order given; unknown ids fail before printing."""
    entries = []
    missing = []
    for ident in idents:
        pid = store.resolve_id(ident)
        paper = store.paper(pid) if pid else None
        if paper is None:
            missing.append(ident)
        else:
            entries.append(paper["bibtex"] or build_bibtex(paper))
    if missing:
        raise NotFoundError(f"No paper with id {', '.join(missing)}; search with `labmate papers` to find ids.")
    return "\n\n".join(entries)


def build_bibtex(paper: dict) -> str:
    """A BibTeX entry from stored metadata; the key is the paper id made BibTeX-safe."""
    venue = paper.get("venue") or ""
    if re.search(r"proceedings|conference|workshop|symposium", venue, re.I):
        kind, venue_field = "inproceedings", "booktitle"
    elif venue:
        kind, venue_field = "article", "journal"
    else:
        kind, venue_field = "misc", ""
    fields = [("title", "{" + _escape(paper["title"]) + "}")]
    if paper.get("authors"):
        fields.append(("author", " and ".join(_escape(a) for a in paper["authors"])))
    if venue_field:
        fields.append((venue_field, _escape(venue)))
    for name in ("year", "doi", "url"):
        if paper.get(name):
            fields.append((name, str(paper[name]) if name != "year" else str(paper[name])))
    if paper.get("arxiv"):
        fields += [("eprint", paper["arxiv"]), ("archiveprefix", "arXiv")]
    key = re.sub(r"[^A-Za-z0-9_:\-.]", "", paper["id"]) or "paper"
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
    return f"@{kind}{{{key},\n{body}\n}}"


def _escape(text: str) -> str:
    return text.translate(_SPECIAL)
