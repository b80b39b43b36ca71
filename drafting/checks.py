"""Checks on what the model wrote. The model proposes prose; these functions decide what stays.

Citations are `[n]` markers (also `[1, 2]`, `[1-3]`). Words are compared stemmed, so a
sentence that rephrases its source still counts as supported by it.
"""

from __future__ import annotations

import re
from functools import lru_cache

CITE = re.compile(r"\s*\[(\s*\d+\s*(?:[-–,;]\s*\d+\s*)*)\]")
ANY_BRACKET = re.compile(r"\s*\[[^\]]{0,40}\]")
AUTHOR_CITE = re.compile(r"\b([A-Z][A-Za-z'\-]+)(?: and [A-Z][A-Za-z'\-]+)? et al\.?|\(([A-Z][A-Za-z'\-]+)[^()]{0,30}\d{4}\)")
ABBREVIATIONS = ("et al.", "e.g.", "i.e.", "vs.", "Fig.", "fig.", "Eq.", "approx.", "Dr.", "cf.", "Ref.", "No.")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
# What small models put before the sentence: bullets, quotes, "Sentence:", "Evidence [2]:", "[1]".
LEAD_LABEL = re.compile(r"^(?:[-*•\"'\s]|(?:evidence|sentence|answer|summary)\s*(?:\[\d+\])?\s*:|\[\d+\]\s*)+", re.I)
# Sentences about the prompt rather than about the science.
META_TALK = re.compile(r"\b(?:the|this) (?:evidence|document|sentence|summary|text)\b|\bevidence above\b|"
                       r"\b(?:crucial|critical|key|important) finding\b", re.I)
REFUSALS = re.compile(r"\b(as an ai|i'm sorry|i am sorry|i cannot|i can't|language model|here is|here's)\b", re.I)
STOPWORDS = frozenset(
    "a an the and or but of in on at to for from by with without into onto over under about as is are was "
    "were be been being this that these those it its their there which who whom whose what when where how "
    "than then also such both each other more most less least not no can could may might will would shall "
    "should has have had do does did using used use based between among within during after before while "
    "study studies research paper papers work works result results found find finds show shows shown "
    "showed suggest suggests suggested report reports reported evidence author authors however further "
    "our we they our us new recent previous several many".split())


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, not broken after abbreviations such as 'et al.' or 'e.g.'."""
    protected = text
    for i, abbr in enumerate(ABBREVIATIONS):
        protected = protected.replace(abbr, f"\x00{i}\x00")
    parts = [p.strip() for p in SENTENCE_END.split(" ".join(protected.split())) if p.strip()]
    restored = []
    for part in parts:
        for i, abbr in enumerate(ABBREVIATIONS):
            part = part.replace(f"\x00{i}\x00", abbr)
        restored.append(part)
    return restored


def cited_numbers(text: str) -> list[int]:
    """Every source number cited in `text`, in order, ranges expanded."""
    numbers: list[int] = []
    for match in CITE.finditer(text):
        for part in re.split(r"[,;]", match.group(1)):
            low, _, high = part.replace("–", "-").partition("-")
            low_n = int(low)
            high_n = int(high) if high.strip() else low_n
            numbers.extend(range(low_n, min(high_n, low_n + 50) + 1))
    return numbers


def strip_citations(text: str) -> str:
    """`text` without any bracketed marker (numeric or not); spacing before punctuation repaired."""
    text = ANY_BRACKET.sub("", text)
    return re.sub(r"\s+([.,;:!?])", r"\1", text).strip()


def attach_citation(sentence: str, numbers: list[int]) -> str:
    """The sentence with `[n, m]` placed before its final punctuation."""
    marker = "[" + ", ".join(str(n) for n in numbers) + "]"
    body = sentence.rstrip()
    end = body[-1] if body and body[-1] in ".!?" else "."
    body = body.rstrip(".!? ")
    return f"{body} {marker}{end}"


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer  # PyStemmer, already used for BM25

    return Stemmer.Stemmer("english")


def content_stems(text: str) -> set[str]:
    """Stemmed content words (no stopwords, no numbers, no citation markers)."""
    words = re.findall(r"[A-Za-z][A-Za-z\-]{2,}", strip_citations(text).lower())
    words = [w for part in words for w in part.split("-") if len(w) > 2 and w not in STOPWORDS]
    return set(_stemmer().stemWords(words))


def support(sentence: str, evidence: str, topic: str = "") -> float:
    """Share of the sentence's content words found in the evidence (or the topic): 1.0 = all."""
    words = content_stems(sentence)
    if not words:
        return 0.0
    known = content_stems(evidence) | content_stems(topic)
    return len(words & known) / len(words)


def unsupported_numbers(sentence: str, evidence: str) -> list[str]:
    """Numbers in the sentence (as `drafting.numbers` reads prose) whose digits the evidence
    never writes."""
    from drafting.numbers import numbers_in

    plain = " ".join(evidence.split())
    digits = [re.match(r"[-−+]?[\d.,]+(?:[eE][-−+]?\d+)?", n.text).group(0).lstrip("+") for n in numbers_in(sentence)]
    return [d for d in digits if d not in plain]


def foreign_authors(sentence: str, allowed: list[str]) -> list[str]:
    """Author names cited author-year style ('Smith et al.', '(Smith, 2019)') not among `allowed`."""
    allowed_lower = {name.lower() for full in allowed for name in re.findall(r"[A-Za-z'\-]+", full)}
    found = [m.group(1) or m.group(2) for m in AUTHOR_CITE.finditer(sentence)]
    return [name for name in found if name and name.lower() not in allowed_lower]


def style_problem(sentence: str, min_words: int = 6, max_words: int = 60) -> str | None:
    """Why a sentence is unusable as prose (None when it is fine)."""
    words = strip_citations(sentence).split()
    if len(words) < min_words:
        return "too short"
    if len(words) > max_words:
        return "too long"
    if REFUSALS.search(sentence) or re.search(r"\bI\b", sentence):
        return "not prose (assistant chatter)"
    if META_TALK.search(sentence):
        return "talks about the evidence instead of the finding"
    if "?" in sentence or re.search(r"https?://|doi\.org|\*\*|#|:\s*[\"“]|published in", sentence):
        return "not prose (question, link or markup)"
    lowered = [w.lower().strip(".,;:") for w in words]
    if len(set(lowered)) < 0.5 * len(lowered):
        return "repetitive"
    return None


# Words that set a claim's direction: each must be backed by the source itself, or "aspirin
# reduced cancer risk" can come back as "increased" with every other word supported.
DIRECTION = ("increas", "decreas", "reduc", "lower", "higher", "rais", "elev", "improv", "worsen", "enhanc",
             "inhibit", "suppress", "promot", "prevent", "protect", "harm", "benefit", "greater", "fewer",
             "posit", "negat", "not", "no", "without", "fail", "unrel", "inverse")


def unbacked_direction(sentence: str, evidence: str) -> list[str]:
    """Direction and negation words in the sentence that the evidence never uses."""
    words = re.findall(r"[a-z]+", strip_citations(sentence).lower())
    stems = set(_stemmer().stemWords(words))
    known = set(_stemmer().stemWords(re.findall(r"[a-z]+", evidence.lower())))
    return sorted(s for s in stems - known if s.startswith(DIRECTION) and (len(s) > 3 or s in DIRECTION))


def unknown_names(sentence: str, evidence: str) -> list[str]:
    """Capitalized words after the first (names, venues, acronyms) that the evidence never uses."""
    words = re.findall(r"(?<=[\s(])[A-Z][A-Za-z0-9\-]{1,}", strip_citations(sentence))
    known = set(re.findall(r"[A-Za-z0-9\-]+", evidence.lower()))
    stems = content_stems(evidence)
    # Acronyms and words with digits must appear as written; ordinary words may be inflected.
    return [w for w in words if w.lower() not in known
            and not (w[1:].islower() and w.isalpha() and content_stems(w) and content_stems(w) <= stems)]


def cut_off(sentence: str) -> bool:
    """Whether the sentence stops mid-way (no final punctuation, or ends on a joining word)."""
    body = strip_citations(sentence).rstrip()
    last = body.rstrip(".!").split()[-1].lower() if body.split() else ""
    return not body.endswith((".", "!")) or last in {"and", "or", "with", "of", "the", "in", "to", "a", "an"}


def overlap(a: str, b: str) -> float:
    """Jaccard similarity of two sentences' content words (near-duplicates score high)."""
    x, y = content_stems(a), content_stems(b)
    return len(x & y) / len(x | y) if x and y else 0.0
