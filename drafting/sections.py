"""The sections labmate drafts: each has its prompt template, its plan and its target length.

All prompt wording lives here, in one place, so it can be tuned without touching the pipeline.
A small model follows short, concrete instructions best: one sentence, one source, one job.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import UserError

SYSTEM = ("You are a careful scientific writer. You write exactly one sentence, in formal academic "
          "English, using only the evidence you are given. You never add facts, numbers or references "
          "that are not in the evidence.")


@dataclass(frozen=True)
class SectionSpec:
    """How a section is drafted.

    `point` says what a sentence built on one source reports ("state what [{n}] found"); `opening`/`closing` are
    sentences on the topic as a whole (None: the section has none). `all_cited` makes every
    sentence need a citation; `per_paragraph` is how many sources share a paragraph.
    """

    name: str
    title: str
    target_words: int
    max_sources: int
    point: str
    opening: str | None = None
    closing: str | None = None
    all_cited: bool = False
    per_paragraph: int = 3
    lead: str = "{who} found that"  # how each source sentence begins; the model continues it
    cues: tuple[str, ...] = ("found", "show", "demonstrat", "suggest", "increas", "reduc", "associat",
                             "improv", "conclud", "reveal", "indicat", "effect")


SECTIONS: dict[str, SectionSpec] = {spec.name: spec for spec in (
    SectionSpec(
        "abstract", "Abstract", 180, 4,
        point="state the main finding of [{n}]", lead="{who} showed that",
        opening="Write one opening sentence for the abstract of a paper on {topic}, saying why the topic matters.",
        closing="Write one closing sentence for the abstract of a paper on {topic}, saying what this paper examines.",
        per_paragraph=10),
    SectionSpec(
        "introduction", "Introduction", 350, 6,
        point="summarize what [{n}] found",
        opening="Write one opening sentence for the introduction of a paper on {topic}, saying why the topic matters.",
        closing="Write one sentence that ends the introduction of a paper on {topic} by stating the open "
                "question this paper addresses.",
        per_paragraph=3),
    SectionSpec(
        "related-work", "Related work", 400, 8,
        point="state what [{n}] studied and found",
        all_cited=True, per_paragraph=3),
    SectionSpec(
        "methods", "Methods", 300, 5,
        point="describe the method or data that [{n}] used",
        opening="Write one sentence opening the methods section of a paper on {topic}.",
        per_paragraph=3, lead="{who} used", cues=("we used", "using", "method", "data", "cohort", "trial", "measur", "model",
                               "sample", "participant", "design", "analy")),
    SectionSpec(
        "results", "Results", 300, 5,
        point="report the main result of [{n}]", lead="{who} reported that",
        per_paragraph=3),
    SectionSpec(
        "discussion", "Discussion", 350, 6,
        point="state what [{n}] found and what it implies",
        closing="Write one sentence ending the discussion of a paper on {topic} with a limitation or future work.",
        per_paragraph=3),
    SectionSpec(
        "conclusion", "Conclusion", 150, 3,
        point="restate the main finding of [{n}]",
        closing="Write one final sentence for the conclusion of a paper on {topic}.",
        per_paragraph=10),
)}

ALIASES = {"related": "related-work", "relatedwork": "related-work", "related_work": "related-work",
           "intro": "introduction", "method": "methods", "result": "results", "conclusions": "conclusion",
           "discuss": "discussion"}


def evidence_prompt(title: str, sentences: list[str], n: int) -> str:
    """The evidence block for source [n]: its title and key sentences."""
    body = " ".join(sentences)
    return f"Evidence [{n}]: {title}. {body}"


def point_prompt(spec: SectionSpec, n: int, evidence: str) -> str:
    """The request for a sentence on source [n]. The topic is left out on purpose: given it, a
    small model restates the topic and credits it to the source instead of reporting the source."""
    return (f"{evidence}\n\nIn one sentence of at most 30 words, {spec.point.format(n=n)}, using only the "
            f"evidence above. End the sentence with [{n}].")


def topic_prompt(template: str, topic: str, evidence: str) -> str:
    return f"{evidence}\n\n{template.format(topic=topic)} At most 25 words. Do not mention studies or numbers."


def parse_section(name: str) -> SectionSpec:
    """A section by name or common alias; an unknown name lists the ones there are."""
    key = (name or "").strip().lower()
    spec = SECTIONS.get(ALIASES.get(key, key))
    if spec is None:
        raise UserError(f"Unknown section '{name}'. Choose one of: {', '.join(SECTIONS)}.")
    return spec
