"""Scientific PDFs: metadata when sane, else first-page layout (font sizes); full text as page-tagged passages."""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from retrieval.loaders import LoadResult
from retrieval.records import Passage, PaperRecord, Problem, find_arxiv_id, normalize_doi, normalize_title, parse_year
from retrieval.records import split_authors

_JUNK_TITLE = re.compile(
    r"^(microsoft\s+\w+\s*-|untitled|title|document\d*|paper|main|slides?)\b|\.(docx?|pdf|tex|dvi|ps|pptx?|rtf)\b", re.I
)
_AFFILIATION = re.compile(r"@|https?:|\b(universit\w*|institut\w*|school|department|dept|college|laborator\w*|labs?|"
                          r"cent(er|re)|inc|corp\w*|research|faculty|academy|hospital|ltd|gmbh|foundation)\b", re.I)
_ABSTRACT_HEAD = re.compile(r"^a\s?bstract\s*(?:$|[.:\u2014\u2013-]\s*(.*)$)", re.I)
_ABSTRACT_END = re.compile(
    r"^(?:\d+\.?\s*|I\.?\s+)?(?:introduction|keywords|key\s?words|index terms|ccs concepts|acm reference format)\b",
    re.I,
)
_VENUE = re.compile(r"^\s*(?:in\s+)?((?:proceedings|transactions|journal) of .+?)(?:,\s*pages?\b.*)?$", re.I)
_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>]+)")
_PARTICLES = {"van", "von", "de", "der", "den", "da", "di", "du", "del", "della", "la", "le", "dos", "bin", "al"}
_MIN_WORDS, _MAX_WORDS = 120, 180  # passage length: long enough for context, short enough for embedders


@dataclass
class _Line:
    """One text line of page 1 with the font facts the title/author heuristics need."""

    text: str
    size: float  # effective font size of the line's dominant span
    y: float  # vertical position of the line's first span (PDF units, up is larger)
    rotated: bool  # margin stamps such as arXiv's run vertically
    names: str  # the text with small-font spans (footnote marks) turned into commas


def load(path: Path) -> LoadResult:
    """One PaperRecord for a readable PDF; a Problem (never an exception) for a broken, locked or image-only one."""
    from pypdf import PdfReader

    # pypdf logs every recoverable quirk (bad xref, missing fontTools); failures become Problems instead.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    result = LoadResult()
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            return _problem(result, path, "the PDF is encrypted; save an unlocked copy and add that")
        meta = _metadata(reader)
        lines, middle = _first_page(reader.pages[0], path, result) if len(reader.pages) else ([], 0.0)
        rest = [_page_text(page, number, path, result) for number, page in enumerate(reader.pages[1:], start=2)]
        texts = ["\n".join(line.text for line in lines)] + rest
    except OSError as exc:
        return _problem(result, path, f"cannot read file: {exc}")
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types (PdfReadError, KeyError...) on bad bytes
        return _problem(result, path, f"not a readable PDF ({type(exc).__name__}: {exc})")
    if not any(t.strip() for t in texts):
        return _problem(result, path, "no extractable text; it may be a scanned image and needs OCR")
    result.records.append(_record(path, meta, lines, middle, texts))
    return result


def _problem(result: LoadResult, path: Path, reason: str) -> LoadResult:
    result.problems.append(Problem(file=str(path), where="", reason=reason))
    return result


def _page_text(page, number: int, path: Path, result: LoadResult) -> str:
    # One damaged page should not cost the whole paper: report it and keep the others.
    try:
        return page.extract_text() or ""
    except Exception as exc:  # noqa: BLE001 - same reason as in load()
        result.problems.append(Problem(str(path), f"page {number}", f"text could not be extracted ({exc})"))
        return ""


def _metadata(reader) -> dict[str, str]:
    try:
        info = reader.metadata or {}
        return {str(k).lstrip("/").lower(): " ".join(str(v).split()) for k, v in info.items() if v is not None}
    except Exception:  # noqa: BLE001 - a broken /Info dictionary still leaves the text usable
        return {}


def _first_page(page, path: Path, result: LoadResult) -> tuple[list[_Line], float]:
    """Page 1 as lines with effective font sizes, and the height of the page's middle."""
    spans: list[tuple[str, float, float, bool]] = []

    def visit(text, cm, tm, _font, font_size):
        # Effective size and position come from the text matrix composed with the CTM.
        a, b, c, d = (tm[0] * cm[0] + tm[1] * cm[2], tm[0] * cm[1] + tm[1] * cm[3],
                      tm[2] * cm[0] + tm[3] * cm[2], tm[2] * cm[1] + tm[3] * cm[3])
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        spans.append((text, (font_size or 0) * math.hypot(c, d), y, abs(b) > 1e-3 or abs(c) > 1e-3))

    try:
        page.extract_text(visitor_text=visit)
    except Exception as exc:  # noqa: BLE001 - as in _page_text: keep the other pages
        result.problems.append(Problem(str(path), "page 1", f"text could not be extracted ({exc})"))
        return [], 0.0
    grouped: list[list[tuple[str, float, float, bool]]] = [[]]
    for text, size, y, rotated in spans:  # a span may end one line and start the next
        for i, piece in enumerate(text.split("\n")):
            grouped.extend([[]] if i else [])
            grouped[-1].extend([(piece, size, y, rotated)] if piece else [])
    box = page.mediabox
    return [_line(g) for g in grouped if "".join(s[0] for s in g).strip()], float(box.bottom) + float(box.height) / 2


def _line(spans: list[tuple[str, float, float, bool]]) -> _Line:
    main = max(spans, key=lambda s: len(s[0].strip()))
    names = "".join(s[0] if s[1] >= 0.85 * main[1] else "," for s in spans)
    return _Line(_clean("".join(s[0] for s in spans)), round(main[1], 1), spans[0][2], main[3], _clean(names))


def _record(path: Path, meta: dict[str, str], lines: list[_Line], middle: float, texts: list[str]) -> PaperRecord:
    title_at, title_end = _title_lines(lines, middle)
    page_title = " ".join(lines[i].text for i in range(title_at, title_end)) if title_end else ""
    head, start, end = _abstract(lines)
    author_lines = lines[title_end : head or None] if title_end else []  # no heading: _page_authors stops early
    body_from = end if end is not None else 0
    arxiv = _arxiv(path, meta, [line.text for line in lines if "arxiv" in line.text.lower()])
    doi = _doi(meta, texts[0])
    venue, venue_year = _venue(lines)
    first_words = set(normalize_title(texts[0]).split())
    meta_abstract = meta.get("subject", "") if len(meta.get("subject", "").split()) >= 25 else ""
    return PaperRecord(
        title=_meta_title(meta.get("title", ""), first_words) or _dehyphenate(page_title) or path.stem,
        id=None,
        authors=_meta_authors(meta.get("author", "")) or _page_authors(author_lines),
        year=venue_year or _arxiv_year(arxiv) or _meta_year(meta),
        venue=venue or ("arXiv" if arxiv else None),
        doi=doi,
        url=f"https://arxiv.org/abs/{arxiv}" if arxiv else (f"https://doi.org/{doi}" if doi else None),
        arxiv=arxiv,
        abstract=meta_abstract or (_page_abstract(lines[start:end]) if head else None) or None,
        body=_passages([line.text for line in lines[body_from:] if not line.rotated], texts[1:]),
        origin=str(path),
        where="",
    )


def _title_lines(lines: list[_Line], middle: float) -> tuple[int, int]:
    """The run of largest-font lines in the top half of page 1, if clearly larger than body text."""
    counts: dict[float, int] = {}
    for line in lines:
        counts[line.size] = counts.get(line.size, 0) + len(line.text)
    body = max(counts, key=counts.get, default=0.0)
    top = [i for i, line in enumerate(lines) if not line.rotated and line.y >= middle]
    candidates = [i for i in top if re.search(r"[A-Za-z]{3}", lines[i].text)]
    biggest = max((lines[i].size for i in candidates), default=0.0)
    if biggest < 1.15 * body:
        return 0, 0
    start = next(i for i in candidates if lines[i].size == biggest)
    end = start
    while end < len(lines) and end - start < 4 and abs(lines[end].size - biggest) < 0.3:
        end += 1
    return start, end


def _abstract(lines: list[_Line]) -> tuple[int, int, int | None]:
    """(heading index, first abstract line, index of the line that ends it) on page 1; zeros if no heading."""
    head = next((i for i, line in enumerate(lines) if _ABSTRACT_HEAD.match(line.text)), None)
    if head is None:
        return 0, 0, None
    inline = _ABSTRACT_HEAD.match(lines[head].text).group(1)
    start = head if inline else head + 1
    if inline:  # "Abstract. We study..." - the heading shares the line with the first sentence
        lines[head].text = inline
    size = lines[start].size if start < len(lines) else 0.0
    end, words = start, 0
    marked = any(_ABSTRACT_END.match(line.text) for line in lines[start:])
    # Stop at the next heading; without one, at a change of font size; never past ~400 words.
    while end < len(lines) and not _ABSTRACT_END.match(lines[end].text) and words < 400:
        if not marked and end > start and abs(lines[end].size - size) > 1.0:
            break
        words += len(lines[end].text.split())
        end += 1
    return head, start, end


def _page_abstract(lines: list[_Line]) -> str:
    # A footnote mark glued to the last sentence ("benchmark.1") is not part of the abstract.
    return re.sub(r"(?<=[.!?])\d{1,2}$", "", _dehyphenate("\n".join(line.text for line in lines)))


def _page_authors(lines: list[_Line]) -> list[str]:
    """Names from the lines between title and abstract, up to the first affiliation or e-mail line."""
    authors: list[str] = []
    for line in lines[:8]:
        if _AFFILIATION.search(line.text) or line.rotated:
            break
        text = re.sub(r"[^\w\s.,'&-]|\d|_", ",", line.names)
        for part in re.split(r",|&|\band\b|\s{2,}", text):
            name = " ".join(part.split()).strip(" .-")
            if _looks_like_name(name):
                authors.append(name)
    return authors


def _looks_like_name(name: str) -> bool:
    tokens = name.split()
    if not 2 <= len(tokens) <= 5 or _AFFILIATION.search(name):
        return False
    return all(t[0].isupper() or t.lower() in _PARTICLES for t in tokens) and tokens[-1][0].isupper()


def _meta_title(title: str, first_page_words: set[str]) -> str:
    """The /Title entry unless it is empty, a file name, or absent from page 1 (templates leave stale ones)."""
    words = normalize_title(title).split()
    if len(words) < 2 or _JUNK_TITLE.search(title):
        return ""
    found = sum(w in first_page_words for w in words)
    return title if not first_page_words or found >= 0.6 * len(words) else ""


def _meta_authors(value: str) -> list[str]:
    names = split_authors(value)
    if not names or any(len(n.replace(",", " ").split()) < 2 or re.search(r"[@\d]", n) for n in names):
        return []  # user names like "jsmith" or "Administrator" are not authors
    names = [" ".join(reversed(n.split(",", 1))) if "," in n else n for n in names]  # "Smith, Jo" -> "Jo Smith"
    return [" ".join(n.split()).title() if n == n.lower() else " ".join(n.split()) for n in names]


def _meta_year(meta: dict[str, str]) -> int | None:
    match = re.match(r"(?:D:)?(\d{4})", meta.get("creationdate", "") or meta.get("moddate", ""))
    return parse_year(match.group(1)) if match else None


def _arxiv(path: Path, meta: dict[str, str], stamp_lines: list[str]) -> str | None:
    fields = [meta.get(k, "") for k in ("title", "subject", "keywords")]
    fields += [v for k, v in meta.items() if "arxiv" in k or "doi" in k]
    found = find_arxiv_id(path.stem, *fields, *stamp_lines)
    # A bare "2020.12345" might be a number; only accept a YYMM with a real month.
    if found and re.match(r"\d{4}\.", found) and not 1 <= int(found[2:4]) <= 12:
        return None
    return found


def _arxiv_year(arxiv: str | None) -> int | None:
    match = re.search(r"(?:^|/)(\d\d)\d\d", arxiv or "")
    yy = int(match.group(1)) if match else None
    return None if yy is None else (1900 + yy if yy >= 91 else 2000 + yy)  # old-style ids began in 1991


def _doi(meta: dict[str, str], first_page: str) -> str | None:
    fields = [v for k, v in meta.items() if k in ("doi", "subject", "keywords", "prism:doi")] + [first_page]
    for text in fields:
        match = _DOI.search(text)
        if match:
            return normalize_doi(match.group(1).rstrip(".,;)]}"))
    return None


def _venue(lines: list[_Line]) -> tuple[str | None, int | None]:
    """A 'Proceedings of ...' line on page 1, and the year printed on it or the line after."""
    for i, line in enumerate(lines):
        match = _VENUE.match(line.text)
        if match and len(match.group(1)) <= 160:
            venue = match.group(1).strip(" ,.")
            nxt = lines[i + 1].text if i + 1 < len(lines) else ""
            years = [parse_year(t) for t in (venue, nxt)]
            return venue, next((y for y in years if y and 1900 <= y <= 2100), None)
    return None, None


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)  # ligatures such as "ﬁ" become "fi"
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", "", text)


def _dehyphenate(text: str) -> str:
    # "litera-\nture" is one word; "AI-\nassisted" keeps its hyphen (uppercase or digit before it).
    text = re.sub(r"(?<=[a-z])-\s*\n\s*(?=[a-z])", "", text)
    return " ".join(text.split())


def _passages(first_page: list[str], other_pages: list[str]) -> list[Passage]:
    """Body passages of ~120-180 words per page, cut at sentence ends; page 1 starts after its abstract."""
    passages: list[Passage] = []
    for number, text in enumerate(["\n".join(first_page)] + other_pages, start=1):
        for chunk in _chunks(_dehyphenate(_clean(text))):
            passages.append(Passage(text=chunk, page=number, kind="body"))
    return passages


def _chunks(text: str) -> list[str]:
    pieces: list[list[str]] = []
    for sentence in re.split(r"(?<=[.!?])\s+(?=[\"“(\[A-Z0-9])", text):
        words = sentence.split()
        # Tables and reference lists have no sentence ends: cut them into passage-sized pieces.
        pieces.extend(words[i : i + _MAX_WORDS] for i in range(0, len(words), _MAX_WORDS))
    chunks: list[list[str]] = []
    for words in pieces:
        if chunks and len(chunks[-1]) + len(words) <= _MAX_WORDS:
            chunks[-1].extend(words)
        elif chunks and len(chunks[-1]) < _MIN_WORDS // 3 and len(chunks[-1]) + len(words) <= _MAX_WORDS + 40:
            chunks[-1].extend(words)  # a short tail is better merged than embedded alone
        else:
            chunks.append(list(words))
    if len(chunks) > 1 and len(chunks[-1]) < _MIN_WORDS // 3 and len(chunks[-2]) + len(chunks[-1]) <= _MAX_WORDS + 40:
        chunks[-2].extend(chunks.pop())
    return [" ".join(c) for c in chunks if c]
