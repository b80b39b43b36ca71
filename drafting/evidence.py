"""Evidence first: the sources a draft may cite, numbered, each with its key sentences."""

from __future__ import annotations

import re

from core.errors import NotFoundError, UserError
from drafting.checks import content_stems, split_sentences
from drafting.types import Source
from retrieval.cite import build_bibtex


# Structured abstracts label their parts ("BACKGROUND", "OBJECTIVE:"); the labels are not prose.
LABEL = re.compile(r"(?:(?<=^)|(?<=[.!?]\s))(?:[A-Z]{4,}(?:\s+[A-Z]{2,})*\s*:?\s+)(?=[A-Z])")
AIM = re.compile(r"(?:to (?:determine|investigate|assess|evaluate|examine|test|compare)|the (?:aim|purpose|"
                 r"objective)|(?:we|this study) aimed)\b", re.I)


class NothingRetrievedError(UserError):
    """No paper in the library matches the topic."""


def gather_sources(library, topic: str, *, k: int, papers: list[str] | None = None,
                   cues: tuple[str, ...] = ()) -> list[Source]:
    """Sources numbered 1..n: the named papers in the order given, else the top-k search hits."""
    from retrieval.search import search

    store = library.store
    if papers:
        ids = _resolve(store, papers)
    else:
        ids = [hit.id for hit in search(library, topic, k=k)]
        if not ids:
            raise NothingRetrievedError(
                f"No paper in the library matches '{topic}'. Add papers with `labmate index add` "
                "(or share PDFs in Slack), or try other words.")
    rows = store.papers(ids)
    sources = []
    for paper_id in ids:
        paper = rows[paper_id]
        text = paper.get("abstract") or _first_passage(store, paper_id) or paper["title"]
        bibtex = paper.get("bibtex") or build_bibtex(paper)
        sources.append(Source(
            n=len(sources) + 1, paper_id=paper_id, title=paper["title"], authors=paper["authors"],
            year=paper["year"], key=bibtex_key(bibtex) or paper_id, bibtex=bibtex, text=text,
            sentences=key_sentences(text, topic, cues)))
    return sources


def _resolve(store, papers: list[str]) -> list[str]:
    ids, missing = [], []
    for ident in papers:
        pid = store.resolve_id(ident.strip())
        if pid is None:
            missing.append(ident)
        elif pid not in ids:
            ids.append(pid)
    if missing:
        raise NotFoundError(f"No paper with id {', '.join(missing)} in the library; "
                            "copy ids from a /papers result.")
    return ids


def _first_passage(store, paper_id: str) -> str:
    row = store.conn.execute(
        "SELECT text FROM passages WHERE paper_id=? ORDER BY id LIMIT 3", (paper_id,)).fetchall()
    return " ".join(r[0] for r in row if r[0])


def bibtex_key(entry: str) -> str | None:
    """The citation key of a BibTeX entry ('@article{smith2020,' -> 'smith2020')."""
    match = re.match(r"\s*@\w+\s*\{\s*([^,\s]+)\s*,", entry or "")
    return match.group(1) if match else None


def key_sentences(text: str, topic: str, cues: tuple[str, ...] = (), limit: int = 3) -> list[str]:
    """The abstract's sentences that best carry the topic, most relevant first.

    Relevance is shared content words with the topic, plus a bonus for the section's cue
    words ('found', 'increased' for findings; 'cohort', 'measured' for methods); fragments
    and run-ons are passed over, because the best sentence is also the fallback text.
    """
    topic_words = content_stems(topic)
    scored = []
    for position, sentence in enumerate(split_sentences(LABEL.sub("", text))):
        sentence = LABEL.sub("", sentence)
        words = len(sentence.split())
        if words < 6 or words > 70 or sentence.endswith(":"):
            continue
        overlap = len(content_stems(sentence) & topic_words)
        cue = sum(1 for c in cues if c in sentence.lower())
        aim = 1.0 if AIM.match(sentence) else 0.0  # an aim is not a finding worth citing
        score = overlap + 0.5 * min(cue, 2) - aim - 0.05 * position
        scored.append((score, position, sentence))
    scored.sort(key=lambda item: (-item[0], item[1]))
    best = [sentence for _, _, sentence in scored[:limit]]
    return best or [" ".join(text.split()[:60])]
