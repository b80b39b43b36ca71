"""Training-run metrics: loading the accepted shapes, the Markdown tables, and the number rule.

Rule: every number in the text equals a number in the metrics. The table is written by code. The
paragraph is written one sentence per headline fact: the model is given the exact values, its first
sentence is checked (`drafting.numbers`), and a failing sentence is replaced with a sentence built
from the same values. `check_numbers` states the rule; `draft_results` asserts it on its output.

Accepted metrics files (`load_metrics`):
(a) a flat object of metric name -> number: {"eval_f1": 0.8712, "eval_loss": 0.31, "epoch": 3};
(b) {"metrics": {...}}, optionally with "run"/"id", "task", "model"/"base_model", "dataset";
(c) a training-service run: {"id", "task", "base_model", "final": {...}, "best": {...},
    "history": [{...}, ...], "per_type": {"Disease": {"precision", "recall", "f1", "support"}}}.
Nested numeric objects are flattened ("eval.f1"); a nested object with "f1" or "precision" and
"recall" (seqeval's per-entity output) is read as a per-type row; booleans are not numbers.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import NotFoundError, UserError
from drafting.numbers import format_value, matches, numbers_in


Value = float | int
META = {"run", "id", "task", "model", "base_model", "dataset", "name", "status"}
RUN_PARTS = {"final", "best", "history", "per_type"}
EXPECTED = ('Expected a JSON object of metric name -> number (e.g. {"eval_f1": 0.87, "epoch": 3}), '
            '{"metrics": {...}}, or a training run with "final", "best", "history" and "per_type".')
SPLITS = {"eval": "dev", "dev": "dev", "validation": "dev", "val": "dev", "valid": "dev",
          "test": "test", "predict": "test", "train": "train"}
SPLIT_WORDS = {"dev": "the development set", "test": "the test set", "train": "the training set"}
NAMES = {"f1": "F1", "macro_f1": "Macro-F1", "f1_macro": "Macro-F1", "micro_f1": "Micro-F1", "f1_micro": "Micro-F1",
         "weighted_f1": "Weighted F1", "f1_weighted": "Weighted F1", "precision": "Precision", "recall": "Recall",
         "accuracy": "Accuracy", "acc": "Accuracy", "exact_match": "Exact match", "em": "Exact match",
         "roc_auc": "ROC AUC", "auc": "AUC", "mcc": "MCC", "bleu": "BLEU", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2",
         "rougel": "ROUGE-L", "loss": "Loss", "perplexity": "Perplexity", "ppl": "Perplexity",
         "epoch": "Epochs", "epochs": "Epochs", "num_train_epochs": "Epochs", "step": "Steps", "steps": "Steps",
         "global_step": "Steps", "support": "Support", "number": "Support"}
ORDER = list(dict.fromkeys(NAMES))
MAIN = ["f1", "macro_f1", "f1_macro", "micro_f1", "f1_micro", "weighted_f1", "f1_weighted", "accuracy", "acc",
        "exact_match", "em", "roc_auc", "auc", "mcc", "bleu", "rougel", "rouge1", "perplexity", "ppl", "loss"]
COUNTS = {"epoch", "epochs", "num_train_epochs", "step", "steps", "global_step", "support", "number"}
NOISE = ("runtime", "per_second", "flos", "learning_rate", "grad_norm", "compilation", "memory")
AGGREGATES = {"avg", "overall", "micro", "macro", "weighted", "total", "all"}
TYPE_STATS = ["precision", "recall", "f1", "accuracy", "support", "number"]
SPLIT_RANK = {"test": 0, "dev": 1, None: 2, "train": 3}


@dataclass
class Metrics:
    """A run's numbers, whatever the file's shape. `values` are the headline (final) metrics."""

    source: str
    values: dict[str, Value]
    best: dict[str, Value] = field(default_factory=dict)
    per_type: dict[str, dict[str, Value]] = field(default_factory=dict)
    history: list[dict[str, Value]] = field(default_factory=list)
    extra: dict[str, Value] = field(default_factory=dict)  # other numbers in the file: allowed, not shown
    run: str | None = None
    task: str | None = None
    model: str | None = None
    dataset: str | None = None

    def pool(self) -> list[Value]:
        """Every value the text may state. History is left out on purpose: intermediate evaluations
        are not results, and hundreds of them would let a wrong number pass by coincidence."""
        rows = [self.values, self.best, self.extra, *self.per_type.values()]
        return [v for row in rows for v in row.values()]


def load_metrics(path: Path) -> dict:
    """The metrics file at `path` as parsed JSON, after checking it holds metrics in a known shape."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"Metrics file {path} does not exist. {EXPECTED}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"Metrics file {path} is not valid JSON ({e}). {EXPECTED}") from None
    normalize_metrics(data, str(path))
    return data


def normalize_metrics(data: dict, source: str) -> Metrics:
    """Any accepted shape (see the module docstring) as `Metrics`; UserError without numbers."""
    if not isinstance(data, dict):
        raise UserError(f"Metrics in {source} are not a JSON object. {EXPECTED}")
    skip = META | RUN_PARTS | {"metrics"}
    if isinstance(data.get("final"), dict) or isinstance(data.get("metrics"), dict):
        body = data["final"] if isinstance(data.get("final"), dict) else data["metrics"]
        rest = {k: v for k, v in data.items() if k not in skip}
    else:
        body, rest = {k: v for k, v in data.items() if k not in skip}, {}
    values, per_type = _numeric(body)
    best, _ = _numeric(data.get("best")) if isinstance(data.get("best"), dict) else ({}, {})
    per_type.update(_numeric_rows(data.get("per_type")))
    history = [_numeric(row)[0] for row in data.get("history") or [] if isinstance(row, dict)]
    values = values or dict(best) or (dict(history[-1]) if history else {})
    if not values and not per_type:
        raise UserError(f"Metrics file {source} has no numeric metric. {EXPECTED}")
    meta = {k: _text(data.get(k)) for k in META}
    return Metrics(source, values, best, per_type, [h for h in history if h], _numeric(rest)[0],
                   run=meta["run"] or meta["id"], task=meta["task"], model=meta["model"] or meta["base_model"],
                   dataset=meta["dataset"])


def _numeric(obj, prefix: str = "") -> tuple[dict[str, Value], dict[str, dict[str, Value]]]:
    """Flattened numbers of a JSON object ("eval.f1"), and the per-type rows nested in it."""
    flat: dict[str, Value] = {}
    rows: dict[str, dict[str, Value]] = {}
    for key, value in (obj.items() if isinstance(obj, dict) else ()):
        if _is_number(value):
            flat[f"{prefix}{key}"] = value
        elif isinstance(value, dict) and _type_name(key, value):
            rows[_type_name(key, value)] = _numeric(value)[0]
        elif isinstance(value, dict):
            inner, inner_rows = _numeric(value, f"{prefix}{key}.")
            flat.update(inner)
            rows.update(inner_rows)
    return flat, rows


def _numeric_rows(obj) -> dict[str, dict[str, Value]]:
    rows = {str(k): _numeric(v)[0] for k, v in (obj.items() if isinstance(obj, dict) else ()) if isinstance(v, dict)}
    return {k: v for k, v in rows.items() if v}


def _type_name(key, value: dict) -> str | None:
    """The type a nested score object is for: "Disease" for seqeval's {"Disease": {"precision", "recall",
    "f1", "number"}} (or "eval_Disease"); None for splits ("eval"), averages and other objects."""
    name = str(key)
    if parse_key(name)[0]:
        name = re.split(r"[._/ \-]", name, maxsplit=1)[-1]
    aggregate = set(re.split(r"[._/ \-]+", name.lower())) & (set(SPLITS) | AGGREGATES)
    stats = {str(k).lower() for k, v in value.items() if _is_number(v)}
    return name if not aggregate and ("f1" in stats or {"precision", "recall"} <= stats) else None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text(value) -> str | None:
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) else None


def parse_key(key: str) -> tuple[str | None, str]:
    """("dev", "f1") for "eval_overall_f1": the split named by the prefix, and the metric."""
    tokens = [t for t in re.split(r"[._/ \-]+", key.lower()) if t]
    split = SPLITS.get(tokens[0]) if tokens else None
    rest = [t for t in tokens[1 if split else 0:] if t not in ("overall", "avg")]  # seqeval, sklearn
    return split, "_".join(rest)


def as_metrics(metrics: Metrics | dict) -> Metrics:
    """`metrics` itself, or a raw metrics dict (e.g. `DraftRequest.metrics`) normalized."""
    return metrics if isinstance(metrics, Metrics) else normalize_metrics(metrics, "the metrics")


def fmt(key: str, value: Value) -> str:
    """A metric's value as shown everywhere: counts as counts, others by `format_value`."""
    return format_value(value, count=parse_key(key)[1] in COUNTS)


def label(key: str) -> str:
    """The pretty name of a metric; an unknown one keeps its key, in a code span (so that digits in a
    name like `ndcg@10` are not read as numbers)."""
    return NAMES.get(parse_key(key)[1]) or f"`{key}`"


def _headline(metrics: Metrics) -> list[tuple[str, str]]:
    """(label, key) of the metrics worth a table row, in a conventional order: scores, loss, counts."""
    keys = list(dict.fromkeys([*metrics.values, *metrics.best]))
    keys = [k for k in keys if not any(n in parse_key(k)[1] for n in NOISE)]

    def rank(key: str):
        split, base = parse_key(key)
        return ORDER.index(base) if base in ORDER else len(ORDER), SPLIT_RANK[split]

    keys.sort(key=rank)
    labels = [label(k) for k in keys]
    # The split is named only when two rows would otherwise share a label (train and dev loss).
    return [(f"{lab} ({parse_key(k)[0]})" if labels.count(lab) > 1 and parse_key(k)[0] else lab, k)
            for lab, k in zip(labels, keys)]


def results_table(metrics: Metrics | dict) -> str:
    """Markdown tables: the headline metrics (with a Best column when the run kept a different best
    checkpoint), then one row per entity type when the run has per-type scores."""
    m = as_metrics(metrics)
    rows = _headline(m)
    with_best = bool(m.best) and m.best != m.values
    out = []
    if rows:
        out = ["| Metric | Final | Best |", "|---|---:|---:|"] if with_best else ["| Metric | Value |", "|---|---:|"]
        for row_label, key in rows:
            cells = [m.values.get(key), m.best.get(key)] if with_best else [m.values.get(key)]
            out.append(f"| {row_label} | " + " | ".join("–" if v is None else fmt(key, v) for v in cells) + " |")
    if m.per_type:
        stats = list(dict.fromkeys(s for row in m.per_type.values() for s in row))
        stats.sort(key=lambda s: TYPE_STATS.index(s.lower()) if s.lower() in TYPE_STATS else len(TYPE_STATS))
        out += [""] if out else []
        out.append(f"| {_type_word(m).capitalize()} | " + " | ".join(label(s) for s in stats) + " |")
        out.append("|---|" + "---:|" * len(stats))
        for name, row in m.per_type.items():
            cells = ["–" if s not in row else fmt(s.lower(), row[s]) for s in stats]
            out.append(f"| {safe_name(name)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _type_word(m: Metrics) -> str:
    return "entity type" if entity_task(m) else "class"


def entity_task(m: Metrics) -> bool:
    """Token classification / NER (whole words: "generation" contains "ner"); without a task, a
    run with per-type scores is taken for one."""
    words = set(re.split(r"[^a-z]+", (m.task or "").lower()))
    return bool(words & {"token", "ner", "entity", "entities"}) or (not m.task and bool(m.per_type))


def safe_name(name: str) -> str:
    """A name as it may appear in text: in a code span if it holds something read as a number."""
    return f"`{name}`" if numbers_in(name) else name


def check_numbers(text: str, metrics: Metrics | dict) -> list[str]:
    """The problems with `text`: one line per number in it that states no measured value."""
    m = as_metrics(metrics)
    return [f"{n.text} is not in the metrics" for n in numbers_in(text) if not matches(n, m)]
