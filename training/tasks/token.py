"""Token classification (NER) on CoNLL/BIO files with an encoder such as MiniLM.

Words are tokenized with `is_split_into_words=True`; the first sub-token of each word carries
its label, the others and the special tokens -100. Training truncates long sentences; evaluation
and prediction cut them into windows at word boundaries so every word gets a label.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.data import Sentence, bio_labels, check_conll_labels, read_conll
from training.metrics import entity_scores
from training.tasks.base import Data, Feature, Task, infer, input_batch, pad, read_splits, special_tokens

IGNORE = -100


@dataclass
class Window:
    """Part of a sentence that fits the model: its ids and, per word, (word index, position)."""

    sentence: int
    ids: list[int]
    words: list[tuple[int, int]]


@dataclass
class Labeled:
    """What `label_sentences` found: labels per word, mean token loss (with gold), windows used."""

    labels: list[list[str]]
    loss: float | None
    windows: int


class TokenClassification(Task):
    name = "token-classification"

    def read(self, spec) -> Data:
        return read_splits(spec, read_conll, bio_labels, check_conll_labels)

    def train_features(self, examples: list[Sentence], tokenizer, labels, max_length) -> list[Feature]:
        ids = {label: i for i, label in enumerate(labels)}
        features, seen = [], set()
        for window in sentence_windows(tokenizer, [s.tokens for s in examples], max_length):
            # Training keeps each sentence's first window only; one without a labelled word (all
            # its characters unknown to the tokenizer) would only add a batch with no loss.
            if window.sentence not in seen and window.words:
                seen.add(window.sentence)
                gold = examples[window.sentence].labels
                features.append((window.ids, _targets(window, [ids[label] for label in gold])))
        return features

    def collate(self, features: list[Feature], pad_id: int) -> dict:
        batch = input_batch(features, pad_id)
        if features[0][1] is not None:
            batch["labels"] = pad([f[1] for f in features], IGNORE)
        return batch

    def evaluate(self, model, tokenizer, examples: list[Sentence], labels, *, max_length, batch_size, device):
        ids = {label: i for i, label in enumerate(labels)}
        gold = [[ids[label] for label in s.labels] for s in examples]
        found = label_sentences(model, tokenizer, [s.tokens for s in examples], labels, max_length=max_length,
                                batch_size=batch_size, device=device, gold=gold)
        overall, per_type = entity_scores([s.labels for s in examples], found.labels)
        return {"loss": found.loss, **overall}, per_type


def label_sentences(model, tokenizer, sentences: list[list[str]], labels: list[str], *, max_length: int,
                    batch_size: int, device, gold: list[list[int]] | None = None) -> Labeled:
    """The model's label for every word of `sentences` (and the mean loss when `gold` label ids
    are given). A word the tokenizer drops entirely (e.g. a control character) gets "O"."""
    import torch.nn.functional as F

    windows = sentence_windows(tokenizer, sentences, max_length)
    features = [(w.ids, _targets(w, gold[w.sentence]) if gold else None) for w in windows]
    default = "O" if "O" in labels else labels[0]
    predicted = [[default] * len(tokens) for tokens in sentences]
    loss_sum, counted = 0.0, 0
    collate = TokenClassification().collate
    for chunk, batch, logits in infer(model, features, collate, pad_id=tokenizer.pad_token_id,
                                      batch_size=batch_size, device=device):
        if gold:
            targets = batch["labels"]
            loss_sum += F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE,
                                        reduction="sum").item()
            counted += int((targets != IGNORE).sum())
        best = logits.argmax(-1).tolist()
        for row, index in enumerate(chunk):
            window = windows[index]
            for word, position in window.words:
                predicted[window.sentence][word] = labels[best[row][position]]
    return Labeled(predicted, loss_sum / counted if counted else None, len(windows))


def sentence_windows(tokenizer, sentences: list[list[str]], max_length: int) -> list[Window]:
    """Every sentence as one or more windows of at most `max_length` tokens (specials included),
    cut between words; a single word longer than a window is cut to fit."""
    prefix, suffix = special_tokens(tokenizer)
    budget = max(1, max_length - len(prefix) - len(suffix))
    windows = []
    for start in range(0, len(sentences), 1024):  # bounded batches keep memory flat on big files
        part = sentences[start:start + 1024]
        encoded = tokenizer(part, is_split_into_words=True, add_special_tokens=False)
        for offset, words in enumerate(part):
            ids, bounds = encoded["input_ids"][offset], _bounds(encoded.word_ids(offset), len(words))
            for first, end, low, high in _spans(bounds, budget):
                placed = [(w, len(prefix) + bounds[w][0] - low) for w in range(first, end)
                          if bounds[w][0] < bounds[w][1] and bounds[w][0] < high]
                windows.append(Window(start + offset, prefix + ids[low:high] + suffix, placed))
    return windows


def _bounds(word_ids: list[int | None], count: int) -> list[tuple[int, int]]:
    """(first, end) token positions of each word; a word without tokens gets an empty range."""
    first: list[int | None] = [None] * count
    end = [0] * count
    for position, word in enumerate(word_ids):
        if word is not None:
            if first[word] is None:
                first[word] = position
            end[word] = position + 1
    bounds, reached = [], 0
    for word in range(count):
        if first[word] is None:
            bounds.append((reached, reached))
        else:
            bounds.append((first[word], end[word]))
            reached = end[word]
    return bounds


def _spans(bounds: list[tuple[int, int]], budget: int) -> list[tuple[int, int, int, int]]:
    """Greedy (first word, end word, first token, end token) spans of at most `budget` tokens."""
    spans, word = [], 0
    while word < len(bounds):
        low, end = bounds[word][0], word
        while end < len(bounds) and bounds[end][1] - low <= budget:
            end += 1
        end = max(end, word + 1)
        spans.append((word, end, low, min(bounds[end - 1][1], low + budget)))
        word = end
    return spans


def _targets(window: Window, gold: list[int]) -> list[int]:
    targets = [IGNORE] * len(window.ids)
    for word, position in window.words:
        targets[position] = gold[word]
    return targets
