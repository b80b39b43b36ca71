"""The parts of a draft the system builds itself: numbering, reference list, .bib, final checks."""

from __future__ import annotations

import re

from drafting import checks
from drafting.types import Citation, Draft, Source


def build_draft(spec, topic: str, paragraphs: list[list[str]], sources: list[Source],
                warnings: list[str]) -> Draft:
    """Renumber citations by first use, then build the reference list and .bib of exactly them."""
    text = "\n\n".join(" ".join(p) for p in paragraphs if p)
    order: list[int] = []
    for n in checks.cited_numbers(text):
        if n not in order:
            order.append(n)
    mapping = {old: new for new, old in enumerate(order, start=1)}
    text = renumber(text, mapping)
    by_number = {s.n: s for s in sources}
    cited = [by_number[old] for old in order]
    citations = [Citation(n=i, id=s.paper_id, title=s.title, key=s.key) for i, s in enumerate(cited, 1)]
    references = "\n".join(reference_line(i, s) for i, s in enumerate(cited, 1))
    bibtex = "\n\n".join(s.bibtex.strip() for s in cited) + ("\n" if cited else "")
    result = Draft(section=spec.name, topic=topic, text=text, citations=citations, references=references,
                   bibtex=bibtex, warnings=list(warnings))
    if spec.all_cited:
        result.warnings += [f"Sentence without a citation: \"{s}\"" for s in uncited_sentences(text)]
    return result


def renumber(text: str, mapping: dict[int, int]) -> str:
    """Rewrite every `[..]` marker through `mapping` (numbers not in it are dropped)."""
    def replace(match: re.Match) -> str:
        numbers = [mapping[n] for n in checks.cited_numbers(match.group(0)) if n in mapping]
        unique = sorted(dict.fromkeys(numbers))
        return " [" + ", ".join(map(str, unique)) + "]" if unique else ""

    return checks.CITE.sub(replace, text)


def reference_line(n: int, source: Source) -> str:
    """'[1] Smith, J.; Lee, K. (2020). Title. BibTeX: smith2020'."""
    authors = "; ".join(source.authors[:6]) + ("; et al." if len(source.authors) > 6 else "")
    year = f" ({source.year})" if source.year else ""
    who = f"{authors}{year}. " if authors else (f"{source.year}. " if source.year else "")
    return f"[{n}] {who}{source.title.rstrip('.')}. BibTeX: {source.key}"


def uncited_sentences(text: str) -> list[str]:
    """Sentences carrying no `[n]` citation."""
    return [s for s in checks.split_sentences(text) if not checks.cited_numbers(s)]


def citation_errors(result: Draft, all_cited: bool = False) -> list[str]:
    """Every way the draft's citations could be wrong; empty for a correct draft.

    A citation number without a reference, a reference never cited, a .bib entry that is not a
    cited one (or a cited one missing from the .bib), and, where every sentence must be cited,
    any sentence without a citation.
    """
    from drafting.evidence import bibtex_key

    errors = []
    cited = set(checks.cited_numbers(result.text))
    listed = {c.n for c in result.citations}
    errors += [f"[{n}] cited but not in the references" for n in sorted(cited - listed)]
    errors += [f"[{n}] in the references but never cited" for n in sorted(listed - cited)]
    bib_keys = [bibtex_key(e) for e in re.split(r"\n(?=\s*@)", result.bibtex) if e.strip()]
    if sorted(bib_keys) != sorted(c.key for c in result.citations):
        errors.append(f".bib keys {sorted(bib_keys)} differ from the cited keys "
                      f"{sorted(c.key for c in result.citations)}")
    if all_cited:
        errors += [f"uncited sentence: {s}" for s in uncited_sentences(result.text)]
    return errors
