"""The drafting module's data: numbered sources, the request, and the finished draft."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Source:
    """A paper given to the model as numbered evidence `[n]`."""

    n: int
    paper_id: str
    title: str
    authors: list[str]
    year: int | None
    key: str             # BibTeX key (the original entry's, else the paper id made BibTeX-safe)
    bibtex: str          # the entry, original or built from stored fields
    text: str            # abstract (or best passage) the evidence is taken from
    sentences: list[str] = field(default_factory=list)  # key sentences, most relevant first

    def short_author(self) -> str:
        """'Smith et al.', 'Smith and Lee', 'Smith', or '' without authors."""
        names = [a.split(",")[0].strip() if "," in a else a.split()[-1] for a in self.authors if a.strip()]
        if not names:
            return ""
        if len(names) == 1:
            return names[0]
        return f"{names[0]} and {names[1]}" if len(names) == 2 else f"{names[0]} et al."


@dataclass
class Citation:
    """A cited source as it appears in the final text and reference list."""

    n: int
    id: str
    title: str
    key: str


@dataclass
class DraftRequest:
    """What to draft. `papers` (ids) replaces retrieval; `metrics` feeds a results section."""

    section: str
    topic: str = ""
    papers: list[str] = field(default_factory=list)
    k: int | None = None
    metrics: dict | None = None


@dataclass
class Draft:
    """A finished draft. `text` is Markdown whose `[n]` all refer to `citations`."""

    section: str
    topic: str
    text: str
    citations: list[Citation]
    references: str
    bibtex: str
    warnings: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)  # tokens, seconds, sentences, fallbacks, removed

    def to_json(self) -> dict:
        """The `--json` shape: section, text, citations, references, bibtex, warnings."""
        return {"section": self.section, "text": self.text,
                "citations": [c.__dict__ for c in self.citations], "references": self.references,
                "bibtex": self.bibtex, "warnings": self.warnings}

    def markdown(self) -> str:
        """The draft as a Markdown document: heading, text, references."""
        title = self.section.replace("-", " ").capitalize()
        parts = [f"## {title}", "", self.text.strip()]
        if self.references:
            parts += ["", "### References", "", self.references]
        return "\n".join(parts) + "\n"
