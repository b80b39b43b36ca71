"""Text classification on CSV/TSV/JSONL files with an encoder (sequence-classification head)."""

from __future__ import annotations

from functools import partial

from training.data import Example, check_labels, read_examples
from training.metrics import class_scores
from training.tasks.base import Data, Feature, Task, infer, input_batch, read_splits


def class_labels(examples: list[Example], given: list[str]) -> list[str]:
    """The spec's labels in their order, else the sorted labels seen in train."""
    return list(dict.fromkeys(given)) if given else sorted({e.label for e in examples})


class TextClassification(Task):
    name = "text-classification"

    def read(self, spec) -> Data:
        reader = partial(read_examples, text_field=spec.data.text_field, label_field=spec.data.label_field)
        data = read_splits(spec, reader, class_labels, check_labels)
        if len(data.labels) < 2:
            _single_label(spec, data.labels)
        return data

    def train_features(self, examples: list[Example], tokenizer, labels, max_length) -> list[Feature]:
        ids = {label: i for i, label in enumerate(labels)}
        encoded = tokenizer([e.text for e in examples], truncation=True, max_length=max_length)["input_ids"]
        return [(row, ids[e.label]) for row, e in zip(encoded, examples)]

    def collate(self, features: list[Feature], pad_id: int) -> dict:
        import torch

        batch = input_batch(features, pad_id)
        if features[0][1] is not None:
            batch["labels"] = torch.tensor([f[1] for f in features], dtype=torch.long)
        return batch

    def evaluate(self, model, tokenizer, examples: list[Example], labels, *, max_length, batch_size, device):
        ids = {label: i for i, label in enumerate(labels)}
        predicted, loss = classify(model, tokenizer, [e.text for e in examples], labels, max_length=max_length,
                                   batch_size=batch_size, device=device, gold=[ids[e.label] for e in examples])
        overall, per_label = class_scores([e.label for e in examples], predicted)
        return {"loss": loss, **overall}, per_label


def classify(model, tokenizer, texts: list[str], labels: list[str], *, max_length: int, batch_size: int,
             device, gold: list[int] | None = None) -> tuple[list[str], float | None]:
    """(the predicted label of each text, mean loss when `gold` label ids are given)."""
    import torch.nn.functional as F

    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    features = [(row, gold[i] if gold else None) for i, row in enumerate(encoded)]
    predicted: list[str] = [""] * len(texts)
    loss_sum = 0.0
    collate = TextClassification().collate
    for chunk, batch, logits in infer(model, features, collate, pad_id=tokenizer.pad_token_id,
                                      batch_size=batch_size, device=device):
        if gold:
            loss_sum += F.cross_entropy(logits, batch["labels"], reduction="sum").item()
        for row, index in zip(logits.argmax(-1).tolist(), chunk):
            predicted[index] = labels[row]
    return predicted, (loss_sum / len(texts) if gold and texts else None)


def _single_label(spec, labels: list[str]) -> None:
    from core.errors import UserError

    raise UserError(f"{spec.data.train.name} has a single label ({', '.join(labels) or 'none'}) in "
                    f"`{spec.data.label_field}`: a classifier needs at least two. Check the label column "
                    "(data.label_field) or add examples of the other classes.")
