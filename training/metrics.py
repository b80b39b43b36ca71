"""Scores of each task: entity-level P/R/F1 (seqeval, conlleval rules), accuracy and macro-F1,
perplexity; and which metric decides the best checkpoint."""

from __future__ import annotations

import math

# task -> (main metric, higher is better)
MAIN_METRIC = {
    "token-classification": ("f1", True),
    "text-classification": ("macro_f1", True),
    "causal-lm": ("loss", False),
}


def improved(value: float, best: float | None, higher: bool) -> bool:
    """Whether `value` beats `best` (None or NaN: anything finite does)."""
    if best is None or not math.isfinite(best):
        return math.isfinite(value)
    return value > best if higher else value < best


def entity_scores(gold: list[list[str]], pred: list[list[str]]) -> tuple[dict, dict]:
    """(overall, per type) entity-level scores of BIO sequences, as conlleval counts them: an
    entity is right only when its type and both boundaries are. Overall holds precision, recall,
    f1 (micro-averaged over entities) and token accuracy; per type precision/recall/f1/support."""
    from seqeval.metrics import accuracy_score, classification_report

    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    micro = report.get("micro avg", {})
    overall = {"precision": float(micro.get("precision", 0.0)), "recall": float(micro.get("recall", 0.0)),
               "f1": float(micro.get("f1-score", 0.0)), "accuracy": float(accuracy_score(gold, pred))}
    per_type = {name: _row(row) for name, row in report.items() if not name.endswith(" avg")}
    return overall, per_type


def class_scores(gold: list[str], pred: list[str]) -> tuple[dict, dict]:
    """(overall, per label) for single-label classification: accuracy and macro-F1 (the mean F1
    over the labels that occur in gold or predictions, as scikit-learn averages)."""
    per_label = {}
    for label in sorted(set(gold) | set(pred)):
        hits = sum(g == p == label for g, p in zip(gold, pred))
        guessed, support = pred.count(label), gold.count(label)
        precision = hits / guessed if guessed else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    accuracy = sum(g == p for g, p in zip(gold, pred)) / len(gold) if gold else 0.0
    macro = sum(row["f1"] for row in per_label.values()) / len(per_label) if per_label else 0.0
    return {"accuracy": accuracy, "macro_f1": macro}, per_label


def perplexity(loss: float) -> float:
    """exp(loss), capped so a diverged run still gives a finite number for JSON."""
    return math.exp(min(loss, 50.0)) if math.isfinite(loss) else math.exp(50.0)


def _row(row: dict) -> dict:
    return {"precision": float(row["precision"]), "recall": float(row["recall"]),
            "f1": float(row["f1-score"]), "support": int(row["support"])}
