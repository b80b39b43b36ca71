"""The shapes ingestion produces and the normalizations deduplication relies on."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Passage:
    """A piece of a paper's text that is embedded and searched on its own."""

    text: str
    page: int | None = None  # 1-based PDF page; None for abstracts from metadata
    kind: str = "abstract"  # "abstract" or "body"


@dataclass
class PaperRecord:
    """One paper as read from a source file, before it is merged into the library."""

    title: str
    id: str | None = None  # the record's own id (BibTeX key, `_id`, `id`); None if it has none
    authors: list[str] = field(default_factory=list)
    year: int | None = None
    venue: str | None = None
    doi: str | None = None
    url: str | None = None
    arxiv: str | None = None
    abstract: str | None = None
    bibtex: str | None = None  # the original entry, when the record came from a .bib file
    body: list[Passage] = field(default_factory=list)  # full text (PDFs), with page numbers
    origin: str = ""  # "file" the record came from, for reports and same-file rules
    where: str = ""  # "line 12", "entry smith2020", "page 1": where in the file

    def content_hash(self) -> str:
        """A digest of everything ingestion stores, so re-adding an unchanged record is a no-op."""
        data = asdict(self)
        data.pop("origin")
        data.pop("where")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class Problem:
    """A part of an input that was skipped, and why."""

    file: str
    where: str
    reason: str

    def __str__(self) -> str:
        shown = _display_path(self.file)
        return f"{shown}: {self.where}: {self.reason}" if self.where else f"{shown}: {self.reason}"


def _display_path(file: str) -> str:
    """Sources are stored by absolute path; people read them relative to where they are."""
    try:
        return str(Path(file).relative_to(Path.cwd()))
    except ValueError:
        return file


_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.I)
_ARXIV_NEW = re.compile(r"(?<![\d.])(\d{4}\.\d{4,5})(?:v\d+)?(?!\d)")
_ARXIV_OLD = re.compile(r"\b([a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?\b")
_ARXIV_DOI = re.compile(r"^10\.48550/arxiv\.(.+)$", re.I)


def normalize_doi(doi: str | None) -> str | None:
    """`https://doi.org/10.1/ABC` and `doi:10.1/abc` both become `10.1/abc`."""
    if not doi:
        return None
    doi = _DOI_PREFIX.sub("", doi.strip()).strip().rstrip(".").lower()
    return doi if doi.startswith("10.") else None


def find_arxiv_id(*texts: str | None) -> str | None:
    """The first arXiv identifier (without version) in any of the texts: ids, URLs, DOIs, notes."""
    for text in texts:
        if not text:
            continue
        doi_match = _ARXIV_DOI.match(text.strip())
        if doi_match:
            text = doi_match.group(1)
        for pattern in (_ARXIV_NEW, _ARXIV_OLD):
            match = pattern.search(text)
            if match:
                return match.group(1).lower()
    return None


def normalize_title(title: str | None) -> str:
    """Lower-case ASCII words only, so 'Deep  Résumé-Learning.' == 'deep resume learning'."""
    if not title:
        return ""
    text = unicodedata.normalize("NFKD", title)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return " ".join(re.findall(r"[a-z0-9]+", text))


def parse_year(value: object) -> int | None:
    """A plausible publication year from an int or a string like '2019', '2019-05-01', 'May 2019'."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 1000 <= value <= 2999 else None
    match = re.search(r"(?<!\d)(1[5-9]\d\d|2[0-9]\d\d)(?!\d)", str(value))
    return int(match.group(1)) if match else None


def split_authors(value: object) -> list[str]:
    """Authors from a list or from a string separated by ' and ' or ';'."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = [str(a) for a in value]
    else:
        text = str(value)
        items = re.split(r"\s+and\s+|;", text) if (" and " in text or ";" in text) else text.split(",")
        if "," in text and " and " not in text and ";" not in text and len(items) == 2:
            items = [text]  # "Smith, John" is one author, not two
    return [" ".join(a.split()) for a in items if a.strip()]


def slugify(text: str) -> str:
    """A short ASCII token for generated ids: 'Müller-Lee' -> 'mullerlee'."""
    return normalize_title(text).replace(" ", "")


def generated_key(record: PaperRecord) -> str:
    """A BibTeX-style key for a record that has no id of its own: `cohan2020specter`."""
    last = ""
    if record.authors:
        first = record.authors[0]
        last = first.split(",")[0] if "," in first else (first.split() or [""])[-1]
    stop = {"a", "an", "the", "on", "of", "for", "in", "and", "to", "with", "towards"}
    word = next((w for w in normalize_title(record.title).split() if w not in stop), "paper")
    return f"{slugify(last)}{record.year or ''}{word}" or "paper"
