"""Labelling files with a trained model: `predict_file(model_dir, input, output)`.

Token classification keeps the input's layout exactly: one output line `token<TAB>label` per
input token line (a gold label after a TAB is ignored), the same blank lines in the same places;
long sentences are windowed so every token is labelled. Text classification writes a TSV of
`text<TAB>label` rows.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from core.errors import NotFoundError, UserError
from training.data import DOCSTART, JSONL_SUFFIXES, TABLE_SUFFIXES, read_examples


def predict_file(model_dir: Path, input_path: Path, output_path: Path, *, device: str = "auto",
                 batch_size: int = 64) -> dict:
    """Label `input_path` with the model in `model_dir` (a job's `best/`) into `output_path`;
    returns counts (sentences/tokens/entities, or texts and labels)."""
    from training.models import load_trained, pick_device, read_meta

    model_dir, input_path, output_path = Path(model_dir), Path(input_path), Path(output_path)
    meta = read_meta(model_dir)
    if meta.get("task") == "causal-lm":
        raise UserError("predict labels files with a classifier; this job fine-tuned a language model "
                        "(causal-lm). Use the model folder with a text generator instead.")
    if not input_path.is_file():
        raise NotFoundError(f"Input file {input_path} does not exist. Give a file of tokens (one per line, blank "
                            "lines between sentences) or of texts.")
    target = pick_device(device)
    model, tokenizer, meta = load_trained(model_dir, target)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    temp = output_path.with_name(output_path.name + ".tmp")
    if meta["task"] == "token-classification":
        counts = _tokens(model, tokenizer, meta, input_path, temp, target, batch_size)
    else:
        counts = _texts(model, tokenizer, meta, input_path, temp, target, batch_size)
    os.replace(temp, output_path)  # a failed run never leaves half an output file
    return {"task": meta["task"], **counts, "output": str(output_path)}


def read_token_lines(path: Path) -> tuple[list[str | None], list[list[int]]]:
    """(the token of each line, None for blank lines; sentences as lists of line indices)."""
    from training.data import read_lines

    tokens: list[str | None] = []
    sentences: list[list[int]] = []
    current: list[int] = []
    for _number, line in read_lines(path):
        token = None
        if line.strip():
            token = (line.split("\t")[0] if "\t" in line else line.split()[0]).strip() or line.strip()
        if token is None or token.startswith(DOCSTART):
            if current:
                sentences.append(current)
            current = []
        else:
            current.append(len(tokens))
        tokens.append(token)
    if current:
        sentences.append(current)
    return tokens, sentences


def _tokens(model, tokenizer, meta, input_path: Path, output: Path, device, batch_size: int) -> dict:
    from seqeval.metrics.sequence_labeling import get_entities

    from training.tasks.token import label_sentences

    tokens, sentences = read_token_lines(input_path)
    words = [[tokens[i] for i in sentence] for sentence in sentences]
    found = label_sentences(model, tokenizer, words, meta["labels"], max_length=meta["max_length"],
                            batch_size=batch_size, device=device)
    labels: list[str] = ["O"] * len(tokens)  # -DOCSTART- lines stay "O"
    for sentence, predicted in zip(sentences, found.labels):
        for index, label in zip(sentence, predicted):
            labels[index] = label
    with output.open("w", encoding="utf-8") as handle:
        for token, label in zip(tokens, labels):
            handle.write("\n" if token is None else f"{token}\t{label}\n")
    entities = sum(len(get_entities(predicted)) for predicted in found.labels)
    return {"sentences": len(sentences), "tokens": sum(map(len, sentences)), "entities": entities,
            "windows": found.windows}


def _texts(model, tokenizer, meta, input_path: Path, output: Path, device, batch_size: int) -> dict:
    from training.data import read_lines
    from training.tasks.text import classify

    suffix = input_path.suffix.lower()
    if suffix in TABLE_SUFFIXES or suffix in JSONL_SUFFIXES:
        texts = [e.text for e in read_examples(input_path, meta.get("text_field", "text"), None)]
    else:
        texts = [line.strip() for _number, line in read_lines(input_path) if line.strip()]
    if not texts:
        raise UserError(f"{input_path.name} holds no texts to label.")
    predicted, _loss = classify(model, tokenizer, texts, meta["labels"], max_length=meta["max_length"],
                                batch_size=batch_size, device=device)
    with output.open("w", encoding="utf-8") as handle:
        handle.write("text\tlabel\n")
        for text, label in zip(texts, predicted):
            handle.write(f"{' '.join(text.split())}\t{label}\n")  # tabs and newlines would break the TSV
    return {"texts": len(texts), "labels": dict(Counter(predicted))}
