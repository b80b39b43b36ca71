"""Causal language modelling (LoRA fine-tuning of a small decoder such as SmolLM2).

Each text is one example (truncated to max_length, ending with the end-of-text token); the
labels are the input ids, padding masked out. Scored by token-level loss and perplexity.
"""

from __future__ import annotations

from functools import partial

from training.data import Example, read_texts
from training.metrics import perplexity
from training.tasks.base import Data, Feature, Task, infer, input_batch, pad, read_splits

IGNORE = -100
EVAL_BATCH_CAP = 8  # logits are batch x length x vocabulary (49k for SmolLM2): keep them small


class CausalLM(Task):
    name = "causal-lm"
    lora = True

    def read(self, spec) -> Data:
        reader = partial(read_texts, text_field=spec.data.text_field)
        return read_splits(spec, reader, lambda train, given: [], lambda *args: None)

    def train_features(self, examples: list[Example], tokenizer, labels, max_length) -> list[Feature]:
        eos = tokenizer.eos_token_id
        encoded = tokenizer([e.text for e in examples], truncation=True, max_length=max_length)["input_ids"]
        features = []
        for row in encoded:
            # Texts that fit end with the end-of-text token, so the model learns where a text ends;
            # a truncated one does not (its end is not the end of the text).
            if eos is not None and len(row) < max_length and (not row or row[-1] != eos):
                row = row + [eos]
            features.append((row, None))
        return features

    def collate(self, features: list[Feature], pad_id: int) -> dict:
        batch = input_batch(features, pad_id)
        batch["labels"] = pad([f[0] for f in features], IGNORE)
        return batch

    def evaluate(self, model, tokenizer, examples: list[Example], labels, *, max_length, batch_size, device):
        import torch.nn.functional as F

        features = self.train_features(examples, tokenizer, labels, max_length)
        loss_sum, counted = 0.0, 0
        for _chunk, batch, logits in infer(model, features, self.collate, pad_id=tokenizer.pad_token_id,
                                           batch_size=min(batch_size, EVAL_BATCH_CAP), device=device):
            targets = batch["labels"][:, 1:]  # each position predicts the next token
            loss_sum += F.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), ignore_index=IGNORE,
                                        reduction="sum").item()
            counted += int((targets != IGNORE).sum())
        loss = loss_sum / counted if counted else float("nan")
        return {"loss": loss, "perplexity": perplexity(loss)}, {}
