"""Drafting a section: evidence first, then prose sentence by sentence, every sentence checked.

The model is asked for one sentence at a time about one numbered source. The system, not the
model, attaches the citation; a sentence that cites anything else loses that citation (and the
removal is reported); a sentence that fails a check (unsupported words or numbers, authors that
are not the source's, chatter, repetition) is replaced by the source's own key sentence, cited.
So even a 135M-parameter model yields a draft whose every citation is right.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable

from core.errors import UserError
from drafting import checks
from drafting.evidence import gather_sources
from drafting.numbers import numbers_in
from drafting.references import build_draft
from drafting.sections import SYSTEM, SectionSpec, evidence_prompt, parse_section, point_prompt, topic_prompt
from drafting.settings import DraftingSettings
from drafting.types import Draft, DraftRequest, Source

OnUpdate = Callable[[str], None]
# Who a sentence credits when the source lists no authors; varied so a paragraph does not drone.
ANONYMOUS = ("One study", "Another study", "A further study", "This study")
MIN_SUPPORT = 0.6  # share of a sentence's content words that must come from its source or the topic


@dataclass
class Point:
    """One sentence to write: about a source, or on the topic as a whole (opening/closing)."""

    kind: str  # "source", "opening" or "closing"
    source: Source | None = None


def draft(request: DraftRequest, *, library=None, generator, settings: DraftingSettings | None = None,
          on_update: OnUpdate | None = None, sources: list[Source] | None = None) -> Draft:
    """Draft `request.section`; `on_update(text_so_far)` sees the draft grow (callers throttle).

    `sources` (from `collect_sources`) skips retrieval, e.g. when the caller had to hold a lock
    on the library while reading it.
    """
    settings = settings or DraftingSettings()
    spec = parse_section(request.section)
    start = time.perf_counter()
    if spec.name == "results" and request.metrics is not None:
        from drafting.results import draft_results_section

        return draft_results_section(request, generator, settings, on_update)
    if sources is None:
        sources = collect_sources(request, library, settings)
    topic = " ".join(request.topic.split()) or sources[0].title
    writer = SectionWriter(spec, topic, sources, generator, settings, on_update)
    writer.write(plan(spec, sources))
    result = build_draft(spec, topic, writer.paragraphs, sources, writer.warnings)
    result.stats.update(writer.stats(), seconds=round(time.perf_counter() - start, 3), model=generator.name)
    return result


def collect_sources(request: DraftRequest, library, settings: DraftingSettings | None = None) -> list[Source]:
    """The numbered evidence for a request: its named papers, else the top hits for its topic."""
    settings = settings or DraftingSettings()
    spec = parse_section(request.section)
    topic = " ".join(request.topic.split())
    if not topic and not request.papers:
        raise UserError(f"Say what the {spec.title.lower()} is about, e.g. `/draft {spec.name} "
                        "protein folding with language models`.")
    if library is None:
        raise UserError("Drafting needs the paper library; index papers with `labmate index add` first.")
    k = request.k or min(settings.k, spec.max_sources)
    return gather_sources(library, topic, k=k, papers=request.papers, cues=spec.cues)


def plan(spec: SectionSpec, sources: list[Source]) -> list[list[Point]]:
    """Paragraphs of points: an opening, sources in rank order in groups, a closing."""
    paragraphs = [[Point("source", s) for s in sources[i:i + spec.per_paragraph]]
                  for i in range(0, len(sources), spec.per_paragraph)] or [[]]
    if spec.opening:
        paragraphs[0].insert(0, Point("opening"))
    if spec.closing:
        paragraphs[-1].append(Point("closing"))
    return paragraphs


class SectionWriter:
    """Writes the planned sentences one by one, streaming, checking and repairing each."""

    def __init__(self, spec, topic, sources, generator, settings, on_update):
        self.spec, self.topic, self.sources = spec, topic, sources
        self.generator, self.settings, self.on_update = generator, settings, on_update
        self.paragraphs: list[list[str]] = []
        self.warnings: list[str] = []
        self.partial = ""
        self.tokens = 0
        self.generation_seconds = 0.0
        self.fallbacks = 0
        self.removed = 0
        self.used_fallbacks: set[str] = set()

    def write(self, paragraphs: list[list[Point]]) -> None:
        for points in paragraphs:
            self.paragraphs.append([])
            for point in points:
                sentence = self.write_point(point)
                self.paragraphs[-1].append(sentence)
                self.partial = ""
                self._show()

    def write_point(self, point: Point) -> str:
        """One checked sentence for `point` (the model's, or the fallback when it fails a check)."""
        prompt = self._prompt(point)
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        # Starting the answer for the model ("Smith et al. found that") keeps a small model on
        # the source's finding instead of commenting on the task.
        lead = self.lead(point)
        self.partial = lead
        result = self.generator.generate(messages, max_new_tokens=self.settings.sentence_tokens,
                                         stop=["\n"], on_text=self._grow, prefix=lead)
        self.tokens += result.tokens
        self.generation_seconds += result.seconds
        text = checks.LEAD_LABEL.sub("", result.text.strip())
        if lead and text.split(" ", 1)[0].lower() in checks.STOPWORDS:
            text = text[:1].lower() + text[1:]  # "X found that In a trial" -> "in a trial"
        sentence, problem = self.check(point, f"{lead} {text}" if lead else text)
        if problem is None:
            return sentence
        self.fallbacks += 1
        return self.fallback(point)

    def lead(self, point: Point) -> str:
        """The words a source sentence starts with; sentences on the topic start freely."""
        if point.source is None:
            return ""
        who = point.source.short_author() or ANONYMOUS[(point.source.n - 1) % len(ANONYMOUS)]
        return self.spec.lead.format(who=who)

    def _prompt(self, point: Point) -> str:
        if point.kind == "source":
            evidence = evidence_prompt(point.source.title, point.source.sentences[:2], point.source.n)
            return point_prompt(self.spec, point.source.n, evidence)
        template = self.spec.opening if point.kind == "opening" else self.spec.closing
        titles = "\n".join(f"- {s.title}" for s in self.sources[:4])
        return topic_prompt(template, self.topic, f"Papers on the topic:\n{titles}")

    def check(self, point: Point, text: str) -> tuple[str, str | None]:
        """(the sentence with the system's citation, None) or (_, why it cannot be used)."""
        sentences = checks.split_sentences(text.strip())
        first = sentences[0] if sentences else ""
        allowed = [point.source.n] if point.source else []
        self._report_citations(point, checks.cited_numbers(first), allowed)
        body = checks.strip_citations(first).strip("\"' ")
        if body and body[0].islower():
            body = body[0].upper() + body[1:]
        problem = ("cut off" if checks.cut_off(first) else None) or checks.style_problem(body) \
            or self._grounding_problem(point, body)
        if problem is None and any(checks.overlap(body, s) > 0.6 for p in self.paragraphs for s in p):
            problem = "repeats an earlier sentence"
        if problem is None and point.source and checks.overlap(body, point.source.title) > 0.8:
            problem = "only repeats the source's title"
        if problem:
            return body, problem
        return (checks.attach_citation(body, allowed) if allowed else _end(body)), None

    def _grounding_problem(self, point: Point, body: str) -> str | None:
        if point.source is None:
            evidence = " ".join(s.title for s in self.sources)
            if numbers_in(body):
                return "numbers in a sentence that has no source"
            authors: list[str] = []
        else:
            evidence = f"{point.source.title}. {point.source.text}"
            if checks.unsupported_numbers(body, evidence):
                return "numbers not in the source"
            authors = point.source.authors
        if point.source is not None and checks.unbacked_direction(body, evidence):
            return "states an effect or direction its source does not"
        if checks.foreign_authors(body, authors):
            return "names authors who are not the source's"
        # Topic words count only for sentences on the topic: a source sentence must be backed by
        # its source, or "right paper, wrong claim" slips through on the topic's vocabulary.
        known = f"{evidence} {' '.join(authors)}" + (f" {self.topic}" if point.source is None else "")
        if checks.unknown_names(body, known):
            return "names things the source does not (venues, people, acronyms)"
        if checks.support(body, known) < MIN_SUPPORT:
            return "not supported by its source"
        return None

    def _report_citations(self, point: Point, cited: list[int], allowed: list[int]) -> None:
        for n in cited:
            if n in allowed:
                continue
            self.removed += 1
            if not 1 <= n <= len(self.sources):
                why = f"only {len(self.sources)} sources were given"
            elif point.source is None:
                why = "a sentence on the topic as a whole cites nothing"
            else:
                why = f"the sentence was written from source [{point.source.n}]"
            self.warnings.append(f"Removed citation [{n}] the model wrote: {why}.")

    def fallback(self, point: Point) -> str:
        """The source's own most relevant unused sentence, attributed and cited."""
        if point.source is None:
            topic = self.topic.rstrip(".")
            topic = topic[0].lower() + topic[1:] if topic[:2].istitle() else topic
            if point.kind == "opening":
                return f"This section reviews what the literature reports on {topic}."
            return f"Together, these findings frame the open questions on {topic} that this work addresses."
        source = point.source
        choices = [s for s in source.sentences if s not in self.used_fallbacks] or source.sentences
        self.used_fallbacks.add(choices[0])
        sentence = attribute(checks.strip_citations(choices[0]), source)
        return checks.attach_citation(sentence, [source.n])

    def _grow(self, piece: str) -> None:
        self.partial += piece
        self._show()

    def _show(self) -> None:
        if self.on_update:
            done = "\n\n".join(" ".join(p) for p in self.paragraphs if p)
            # The model's own markers are never kept; an unfinished "[1" would only flicker.
            partial = checks.strip_citations(re.sub(r"\s*\[[^\]]*$", "", " ".join(self.partial.split())))
            joiner = " " if self.paragraphs and self.paragraphs[-1] else ("\n\n" if done else "")
            self.on_update(done + (joiner + partial if partial else ""))

    def stats(self) -> dict:
        sentences = sum(len(p) for p in self.paragraphs)
        return {"tokens": self.tokens, "generation_seconds": round(self.generation_seconds, 3),
                "sentences": sentences, "fallbacks": self.fallbacks, "removed_citations": self.removed}


def attribute(sentence: str, source: Source) -> str:
    """A source's own sentence made reportable: 'We found X' -> 'Smith et al. found X'."""
    who = source.short_author() or "One study"
    for lead in ("Here, we ", "Here we ", "In this study, we ", "In this study we ", "We "):
        if sentence.startswith(lead):
            return f"{who} {sentence[len(lead):]}"
    return sentence


def _end(sentence: str) -> str:
    return sentence if sentence.endswith((".", "!")) else sentence.rstrip(",;: ") + "."
