"""Reading training data (CoNLL/BIO, CSV/TSV, JSONL, plain text) and ordering it into batches.

Every problem with a file is a `UserError` naming the file and line, so the person who made
the file can fix it. Nothing here imports torch: the readers run before any model is loaded.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path

from core.errors import NotFoundError, UserError

DOCSTART = "-DOCSTART-"  # CoNLL-2003 document separators: not sentences
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
JSONL_SUFFIXES = {".jsonl", ".json", ".ndjson"}


@dataclass
class Sentence:
    """One sentence of a CoNLL file; `line` is the 1-based line of its first token."""

    tokens: list[str]
    labels: list[str]
    line: int


@dataclass
class Example:
    """One text (with its label, for classification) and the line it came from."""

    text: str
    label: str | None
    line: int


def _require(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"Data file {path} does not exist. Check the path in the job spec.")
    return path


def read_lines(path: Path):
    """Yields (line number, line without its newline) of a UTF-8 text file (a BOM is dropped)."""
    path = _require(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for number, line in enumerate(handle, 1):
                yield number, line.rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path.name} is not UTF-8 text ({exc}). Save it as UTF-8 and submit again.") from None


def read_conll(path: Path) -> list[Sentence]:
    """Sentences of a `token<TAB>label` file (or space-separated columns: first is the token,
    last the label), a blank line between sentences."""
    sentences: list[Sentence] = []
    tokens: list[str] = []
    labels: list[str] = []
    start = 0
    for number, line in read_lines(path):
        if not line.strip() or line.startswith(DOCSTART):
            if tokens:
                sentences.append(Sentence(tokens, labels, start))
            tokens, labels = [], []
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) < 2 or not parts[0].strip() or not parts[-1].strip():
            raise UserError(f"{Path(path).name} line {number}: expected `token<TAB>label` (or space-separated "
                            f"columns, the label last), got {line[:80]!r}. Fix the line; sentences are "
                            "separated by blank lines.")
        if not tokens:
            start = number
        tokens.append(parts[0].strip())
        labels.append(parts[-1].strip())
    if tokens:
        sentences.append(Sentence(tokens, labels, start))
    if not sentences:
        raise UserError(f"{Path(path).name} holds no sentences; expected `token<TAB>label` lines.")
    return sentences


def bio_labels(sentences: list[Sentence], given: list[str]) -> list[str]:
    """The label set: `given` (the spec's order), else the labels seen, "O" first, then sorted."""
    if given:
        return list(dict.fromkeys(given))
    seen = {label for sentence in sentences for label in sentence.labels}
    return (["O"] if "O" in seen else []) + sorted(seen - {"O"})


def check_conll_labels(sentences: list[Sentence], labels: list[str], path: Path, spec_given: bool) -> None:
    """UserError at the first label outside `labels`, naming file, line and what to do."""
    known = set(labels)
    for sentence in sentences:
        for offset, label in enumerate(sentence.labels):
            if label not in known:
                _unknown_label(path, sentence.line + offset, label, labels, spec_given)


def check_labels(examples: list[Example], labels: list[str], path: Path, spec_given: bool) -> None:
    """The same check for classification examples."""
    known = set(labels)
    for example in examples:
        if example.label not in known:
            _unknown_label(path, example.line, example.label, labels, spec_given)


def _unknown_label(path: Path, line: int, label: str, labels: list[str], spec_given: bool) -> None:
    where = "the spec's `labels`" if spec_given else "the training data"
    shown = ", ".join(labels[:20]) + (", ..." if len(labels) > 20 else "")
    raise UserError(f"{Path(path).name} line {line}: label {label!r} is not in {where} ({shown}). "
                    "The model can only predict labels it was trained on: fix the label, or add it to "
                    "`labels` in the spec and to the training data.")


def read_examples(path: Path, text_field: str, label_field: str | None) -> list[Example]:
    """Texts (and labels when `label_field` is given) of a CSV/TSV (header row) or JSONL file."""
    path = _require(path)
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        examples = _read_table(path, TABLE_SUFFIXES[suffix], text_field, label_field)
    elif suffix in JSONL_SUFFIXES:
        examples = _read_jsonl(path, text_field, label_field)
    else:
        raise UserError(f"{path.name}: text classification reads .csv, .tsv (with a header row) or .jsonl "
                        "files. Convert the file or rename it with the right extension.")
    if not examples:
        fields = f"`{text_field}` and `{label_field}`" if label_field else f"`{text_field}`"
        raise UserError(f"{path.name} holds no examples; add rows with {fields}.")
    return examples


def _read_table(path: Path, delimiter: str, text_field: str, label_field: str | None) -> list[Example]:
    examples = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        columns = reader.fieldnames or []
        for field in filter(None, (text_field, label_field)):
            if field not in columns:
                raise UserError(f"{path.name} has no column {field!r} (its header: {', '.join(columns) or 'none'}). "
                                "Rename the column, or set data.text_field / data.label_field in the spec.")
        try:
            for row in reader:
                examples.append(_example(path, reader.line_num, row, text_field, label_field))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise UserError(f"{path.name} line {reader.line_num}: cannot be read ({exc}). Fix the quoting "
                            "or save the file as UTF-8.") from None
    return examples


def _read_jsonl(path: Path, text_field: str, label_field: str | None) -> list[Example]:
    examples = []
    for number, line in read_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path.name} line {number}: not valid JSON ({exc.msg}). Each line must be one "
                            f'JSON object, e.g. {{"{text_field}": "...", "{label_field}": "..."}}.') from None
        if not isinstance(row, dict):
            raise UserError(f"{path.name} line {number}: expected a JSON object, got {type(row).__name__}.")
        examples.append(_example(path, number, row, text_field, label_field))
    return examples


def _example(path: Path, line: int, row: dict, text_field: str, label_field: str | None) -> Example:
    text = row.get(text_field)
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"{path.name} line {line}: `{text_field}` is missing or empty. Fill it in or remove "
                        "the row (or set data.text_field in the spec).")
    if label_field is None:
        return Example(text, None, line)
    label = row.get(label_field)
    if label is None or isinstance(label, (dict, list)) or not str(label).strip():
        raise UserError(f"{path.name} line {line}: `{label_field}` is missing or empty. Give every row a "
                        "label (or set data.label_field in the spec).")
    return Example(text, str(label).strip(), line)


def read_texts(path: Path, text_field: str) -> list[Example]:
    """Language-model texts: JSONL (`text_field` per line) or plain text, one example per
    blank-line-separated block."""
    path = Path(path)
    if path.suffix.lower() in JSONL_SUFFIXES:
        examples = _read_jsonl(path, text_field, None)
    else:
        examples, block, start = [], [], 0
        for number, line in [*read_lines(path), (-1, "")]:
            if line.strip():
                start = start if block else number
                block.append(line)
            elif block:
                examples.append(Example("\n".join(block), None, start))
                block = []
    if not examples:
        raise UserError(f"{path.name} holds no texts; give JSONL lines with `{text_field}` or plain text.")
    return examples


def hold_out(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """(train, eval): a seeded random `fraction` of `items` (at least one) held out for eval."""
    if len(items) < 2:
        raise UserError("There are too few training examples to hold some out for evaluation: add "
                        "examples, or give an eval file (data.eval) in the spec.")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    count = max(1, round(len(items) * fraction))
    held = set(order[:count])
    return ([x for i, x in enumerate(items) if i not in held], [x for i, x in enumerate(items) if i in held])


def epoch_batches(lengths: list[int], batch_size: int, *, seed: int, epoch: int, group: bool,
                  mega: int = 50) -> list[list[int]]:
    """Batches (lists of indices) of one epoch, a function of (seed, epoch) alone, so a resumed
    run sees the same order. `group`: shuffle, sort by length within mega-batches of `mega`
    batches, then shuffle the batches; similar lengths share a batch and padding stays small."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group:
        size = batch_size * mega
        order = [i for start in range(0, len(order), size)
                 for i in sorted(order[start:start + size], key=lengths.__getitem__, reverse=True)]
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    if group:
        rng.shuffle(batches)
    return batches
