"""What every task shares: the data it read, padding, and batched inference in length order."""

from __future__ import annotations

from dataclasses import dataclass

from training.metrics import MAIN_METRIC

# A feature is (input ids, target): target is a list of label ids per token (token
# classification), one label id (text classification) or None (language modelling, or predict).
Feature = tuple[list[int], object]


@dataclass
class Data:
    """The examples of one job: `eval_source` says where the eval examples came from."""

    train: list
    eval: list
    test: list | None
    labels: list[str]
    eval_source: str


class Task:
    """Interface the runner uses; subclasses fill it in for one task."""

    name = ""
    lora = False  # whether the model is fine-tuned through a LoRA adapter

    @property
    def main(self) -> str:
        return MAIN_METRIC[self.name][0]

    @property
    def higher(self) -> bool:
        return MAIN_METRIC[self.name][1]

    def read(self, spec) -> Data:
        """Train/eval/test examples and the label set; UserError for bad files."""
        raise NotImplementedError

    def train_features(self, examples: list, tokenizer, labels: list[str], max_length: int) -> list[Feature]:
        """One feature per training example, truncated to `max_length` tokens."""
        raise NotImplementedError

    def collate(self, features: list[Feature], pad_id: int) -> dict:
        """A padded batch of tensors for `model(**batch)` (labels included when known)."""
        raise NotImplementedError

    def evaluate(self, model, tokenizer, examples: list, labels: list[str], *, max_length: int,
                 batch_size: int, device) -> tuple[dict, dict]:
        """(metrics, per-type rows) of `model` on `examples`."""
        raise NotImplementedError


def pad(rows: list[list[int]], value: int):
    """A LongTensor of `rows` right-padded with `value` to the longest."""
    import torch

    width = max(len(row) for row in rows)
    return torch.tensor([row + [value] * (width - len(row)) for row in rows], dtype=torch.long)


def input_batch(features: list[Feature], pad_id: int) -> dict:
    """input_ids and attention_mask of `features`."""
    import torch

    ids = pad([f[0] for f in features], pad_id)
    lengths = torch.tensor([len(f[0]) for f in features])
    mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
    return {"input_ids": ids, "attention_mask": mask}


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after a single text (BERT: [CLS], [SEP])."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start], full[start + len(plain):]
    return [], []


def infer(model, features: list[Feature], collate, *, pad_id: int, batch_size: int, device):
    """Yields (feature indices, batch on device, logits) over `features`, longest first so each
    batch pads little; no gradients, bf16 autocast on GPUs that support it."""
    import torch

    from training.models import autocast

    order = sorted(range(len(features)), key=lambda i: len(features[i][0]), reverse=True)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast(device):
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                batch = {k: v.to(device) for k, v in collate([features[i] for i in chunk], pad_id).items()}
                inputs = {k: v for k, v in batch.items() if k != "labels"}
                yield chunk, batch, model(**inputs).logits.float()
    finally:
        model.train(was_training)


def read_splits(spec, reader, label_set, check) -> Data:
    """Train/eval/test examples of a spec through `reader(path)`: the labels come from
    `label_set(train, spec.labels)` and every split is checked against them (`check(items,
    labels, path, given)`); without an eval file a seeded share of train is held out."""
    from training.data import hold_out

    data, given = spec.data, bool(spec.labels)
    train = reader(data.train)
    if spec.train.max_examples:
        train = train[:spec.train.max_examples]
    labels = label_set(train, spec.labels)
    check(train, labels, data.train, given)
    if data.eval is not None:
        evals, source = reader(data.eval), data.eval.name
        check(evals, labels, data.eval, given)
    else:
        train, evals = hold_out(train, data.eval_fraction, spec.train.seed)
        source = f"{data.eval_fraction:.0%} of {data.train.name}, held out"
    test = reader(data.test) if data.test is not None else None
    if test is not None:
        check(test, labels, data.test, given)
    return Data(train, evals, test, labels, source)
