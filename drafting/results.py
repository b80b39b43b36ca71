"""The results section, drafted from a training run's metrics (loaded by `drafting.metrics`).

Rule: every number in the text equals a number in the metrics. The table is written by code. The
paragraph is written one sentence per headline fact: the model is given the exact values, its first
sentence is checked (`drafting.numbers`), and a failing sentence is replaced with a sentence built
from the same values. `check_numbers` states the rule; `draft_results` asserts it on its output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drafting.metrics import (MAIN, SPLIT_RANK, SPLIT_WORDS, Metrics, Value, entity_task, label, parse_key,
                              safe_name, as_metrics, check_numbers, fmt, load_metrics, normalize_metrics,
                              results_table)
from drafting.numbers import Number, matches, number_problem, numbers_in

__all__ = ["Metrics", "load_metrics", "normalize_metrics", "results_table", "check_numbers", "draft_results",
           "draft_results_section", "numbers_in", "matches", "Number"]


# --- The paragraph: one checked sentence per headline fact ------------------------------------

SYSTEM = ("You are a careful scientific writer. You write exactly one sentence, in formal academic English, "
          "for the results section of a paper. You use only the numbers you are given, exactly as written.")
KEEP = "Keep the numbers exactly as written."
MAX_WORDS = 50
ECHO = re.compile(r"^(?:the )?(?:results? section(?: of (?:a|the|this) paper)? (?:states?|reports?|reporting|shows?) "
                  r"that|(?:rephrased )?sentence:|answer:|results?:|[-*•])\s*", re.I)
META_TALK = re.compile(r"\b(?:results? section|rephras\w*|sentences?|instructions?|numbers? (?:above|given))\b", re.I)


@dataclass(frozen=True)
class Fact:
    """One sentence to write: the claim it makes and the values it must state."""

    claim: str                 # "the model reached an F1 of 0.8712 on the development set"
    required: tuple[Value, ...]

    @property
    def template(self) -> str:
        """The system-written sentence, used when the model's fails its checks."""
        return self.claim[0].upper() + self.claim[1:] + "."

    @property
    def prompt(self) -> str:
        # Asking SmolLM2 to rephrase a finished sentence works better than describing the sentence
        # wanted: described, it echoes the instruction ("The results section states that ...").
        return f"{self.template}\n\nRephrase the sentence above in formal academic English. {KEEP}"


def draft_results(metrics: Metrics | dict, generator, *, on_update=None,
                  sentence_tokens: int = 64) -> tuple[str, list[str], dict]:
    """The results section: (Markdown table + paragraph, warnings, stats).

    `generator` follows `drafting.generator.Generator`; `on_update(text_so_far)` sees the section as
    it is written. Each model sentence that fails `_problem` is replaced with its fact's template
    and a warning says why. Stats: tokens, seconds, sentences, fallbacks.
    """
    m = as_metrics(metrics)
    table = results_table(m)
    facts = [f for f in _facts(m) if not check_numbers(f.template, m)]  # a name with digits could break one
    warnings = [] if facts else ["no headline metric to write about; the section is the table alone"]
    stats = {"tokens": 0, "seconds": 0.0, "sentences": 0, "fallbacks": 0}
    sentences: list[str] = []
    show = (lambda partial="": on_update(_join(table, sentences, partial))) if on_update else (lambda partial="": None)
    show()
    for i, fact in enumerate(facts, 1):
        sentence, problem = _write(fact, m, generator, sentence_tokens, stats, show)
        if problem:
            warnings.append(f"sentence {i}: {problem}; replaced with the measured value")
            stats["fallbacks"] += 1
            sentence = fact.template
        sentences.append(sentence)
        show()
    stats["sentences"] = len(sentences)
    paragraph = " ".join(sentences)
    problems = check_numbers(paragraph, m)
    if problems:  # raised, not `assert`ed, so that it holds under python -O too
        raise AssertionError(f"results paragraph states unmeasured numbers: {'; '.join(problems)}")
    return _join(table, sentences), warnings, stats


def _facts(m: Metrics) -> list[Fact]:
    """The headline facts, in the order a results paragraph gives them."""
    main = _main_key(m)
    # Token-level accuracy says little in NER (most tokens are O), so only classifiers report it.
    accuracy = None if entity_task(m) else _plain_fact(m, main, "accuracy")
    facts = [_main_fact(m, main), _pr_fact(m, main), accuracy, _plain_fact(m, main, "loss"), _type_fact(m),
             _best_fact(m, main)]
    return [f for f in facts if f]


def _main_key(m: Metrics) -> str | None:
    """The run's main metric: the first score of MAIN present, test split before dev before train."""
    keys = [k for k in m.values if parse_key(k)[1] in MAIN]
    keys.sort(key=lambda k: (MAIN.index(parse_key(k)[1]), SPLIT_RANK[parse_key(k)[0]]))
    return keys[0] if keys else None


def _prose(key: str) -> str:
    """A metric's name inside a sentence: 'F1', 'accuracy', 'macro-F1', an unknown one as a code span."""
    name = label(key)
    return name if name[:2].isupper() or name.startswith("`") else name[0].lower() + name[1:]


def _on(key: str) -> str:
    split = parse_key(key)[0]
    return f" on {SPLIT_WORDS[split]}" if split else ""


def _main_fact(m: Metrics, key: str | None) -> Fact | None:
    if key is None:
        return None
    name = _prose(key)
    if parse_key(key)[1] == "f1" and entity_task(m):
        name = "entity-level F1"
    article = "an" if name[0] in "aeiouAEIOUFM" or name.startswith(("ROC", "entity")) else "a"
    value = m.values[key]
    return Fact(f"the model reached {article} {name} of {fmt(key, value)}{_on(key)}", (value,))


def _sibling(m: Metrics, key: str | None, base: str) -> str | None:
    """The metric `base` of the same split as `key` (any split if none there)."""
    split = parse_key(key)[0] if key else None
    found = [k for k in m.values if parse_key(k)[1] == base]
    return next((k for k in found if parse_key(k)[0] == split), found[0] if found else None)


def _pr_fact(m: Metrics, main: str | None) -> Fact | None:
    p, r = _sibling(m, main, "precision"), _sibling(m, main, "recall")
    if not (p and r):
        return None
    pv, rv = m.values[p], m.values[r]
    ps, rs = fmt(p, pv), fmt(r, rv)
    where = _on(p)
    if ps == rs:
        return Fact(f"precision and recall were both {ps}{where}", (pv,))
    relation = "lower" if float(ps) < float(rs) else "higher"
    return Fact(f"precision ({ps}) was {relation} than recall ({rs}){where}", (pv, rv))


def _plain_fact(m: Metrics, main: str | None, base: str) -> Fact | None:
    """'the loss on the development set was 0.0581': a metric besides the main one (loss is left
    out when the main metric is perplexity, its exponential)."""
    key = _sibling(m, main, base)
    if key is None or key == main or (base == "loss" and parse_key(main or "")[1] in ("perplexity", "ppl")):
        return None
    split = parse_key(key)[0]
    what = "the final training loss" if base == "loss" and split in (None, "train") else f"the {_prose(key)}{_on(key)}"
    return Fact(f"{what} was {fmt(key, m.values[key])}", (m.values[key],))


def _type_fact(m: Metrics) -> Fact | None:
    """The best and the worst type; none with a single type (its score is the overall one)."""
    stat = next((s for s in ("f1", "F1", "accuracy") if any(s in row for row in m.per_type.values())), None)
    rows = sorted(((row[stat], name) for name, row in m.per_type.items() if stat in row), reverse=True)
    if len(rows) < 2 or fmt(stat, rows[0][0]) == fmt(stat, rows[-1][0]):
        return None
    kind = "entities" if entity_task(m) else "examples"
    stat_name = _prose(stat.lower())
    (top, best), (low, worst) = rows[0], rows[-1]
    return Fact(f"{safe_name(best)} {kind} had the highest {stat_name} ({fmt(stat, top)}) and {safe_name(worst)} {kind} "
                f"the lowest ({fmt(stat, low)})", (top, low))


def _best_fact(m: Metrics, main: str | None) -> Fact | None:
    if not main or main not in m.best or fmt(main, m.best[main]) == fmt(main, m.values[main]):
        return None
    when = next((k for k in ("step", "global_step", "epoch") if k in m.best), None)
    at = f", at {'epoch' if when == 'epoch' else 'step'} {fmt(when, m.best[when])}" if when else ""
    required = (m.best[main], m.best[when]) if when else (m.best[main],)
    return Fact(f"the best {_prose(main)}{_on(main)} during training was {fmt(main, m.best[main])}{at}", required)


def _join(table: str, sentences: list[str], partial: str = "") -> str:
    paragraph = " ".join([*sentences, partial] if partial else sentences)
    return "\n\n".join(p for p in (table, paragraph) if p)


def _write(fact: Fact, m: Metrics, generator, max_tokens: int, stats: dict, show) -> tuple[str, str | None]:
    """The model's first sentence for `fact`, and what is wrong with it (None: nothing)."""
    pieces: list[str] = []

    def on_text(piece: str) -> None:
        pieces.append(piece)
        show("".join(pieces).split("\n")[0].strip())

    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": fact.prompt}]
    generation = generator.generate(messages, max_new_tokens=max_tokens, stop=["\n"], on_text=on_text)
    stats["tokens"] += generation.tokens
    stats["seconds"] += generation.seconds
    sentence = first_sentence(generation.text)
    cut_off = generation.tokens >= max_tokens and not sentence.endswith((".", "!", "?"))
    if sentence and not sentence.endswith((".", "!", "?")) and not cut_off:
        sentence += "."  # stopped at the newline without a full stop
    return sentence, _problem(sentence, fact, m, cut_off)


def first_sentence(text: str) -> str:
    """The first sentence of the model's output, without quotes, bold, list marks or an echo of
    the task ("The results section states that ...")."""
    text = (text or "").split("\n")[0].replace("**", "").strip().strip("\"“”'").strip()
    text = ECHO.sub("", text).strip("\"“”'").strip()
    text = text[:1].upper() + text[1:]
    end = re.search(r"[.!?][\"”)]?\s+(?=[A-Z\[(\"“])", text)
    return text[: end.start() + 1] if end else text


def _problem(sentence: str, fact: Fact, m: Metrics, cut_off: bool) -> str | None:
    """Why the model's sentence cannot be used, or None. The prose is checked first, so that a
    warning names a wrong number only in a sentence that was otherwise usable."""
    words = sentence.split()
    if not words:
        return "model wrote nothing"
    if cut_off:
        return "model's sentence was cut off"
    if len(words) > MAX_WORDS:
        return f"model wrote {len(words)} words (more than {MAX_WORDS})"
    if re.search(r"\b(?:I|[Mm]y)\b", sentence) or "as an ai" in sentence.lower():
        return "model wrote about itself"
    if META_TALK.search(sentence):
        return "model wrote about its task instead of the result"
    # Brackets and code spans would hide numbers from the check; markup is not prose.
    if re.search(r"[\[\]{}|#<>`]", sentence) or _garbage(sentence):
        return "model did not write a usable sentence"
    return number_problem(numbers_in(sentence), fact.required, m, most=len(numbers_in(fact.template)))


def _garbage(sentence: str) -> bool:
    """Too few words, mostly non-letters, or one word over and over: not a sentence."""
    words = re.findall(r"[A-Za-z]{2,}", sentence)
    letters = sum(c.isalpha() for c in sentence)
    visible = sum(not c.isspace() for c in sentence)
    repeated = max((words.count(w) for w in set(words)), default=0)
    return len(words) < 3 or letters < 0.5 * visible or repeated > max(3, len(words) // 3)


def draft_results_section(request, generator, settings, on_update=None):
    """A `Draft` of the results section from `request.metrics` (no citations: the numbers are ours)."""
    from drafting.types import Draft

    metrics = normalize_metrics(request.metrics, "the metrics") if isinstance(request.metrics, dict) \
        else request.metrics
    text, warnings, stats = draft_results(metrics, generator, on_update=on_update,
                                          sentence_tokens=settings.sentence_tokens)
    stats["model"] = generator.name
    topic = request.topic or metrics.run or "the training run"
    return Draft(section="results", topic=topic, text=text, citations=[], references="", bibtex="",
                 warnings=warnings, stats=stats)
