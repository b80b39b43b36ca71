"""Training data: CoNLL/CSV/JSONL/text readers on real files, errors that name file and line,
the held-out split, length-grouped batches, and the task scores. No model is loaded here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import NotFoundError, UserError
from training.data import epoch_batches, hold_out, read_conll, read_examples, read_texts
from training.metrics import class_scores, entity_scores, improved
from training.spec import parse_spec
from training.tasks import get_task


@pytest.fixture(scope="module")
def ncbi(data_dir) -> Path:
    return data_dir / "ner" / "ncbi-disease"


def spec_for(folder: Path, task: str = "token-classification", **data) -> object:
    lines = [f'task = "{task}"', "[data]", *(f'{k} = "{v}"' for k, v in data.items())]
    return parse_spec("\n".join(lines) + "\n", base_dir=folder, data_roots=[folder])


def test_the_ncbi_training_file_reads_as_its_5424_sentences(ncbi):
    sentences = read_conll(ncbi / "train.tsv")
    assert len(sentences) == 5424
    first = sentences[0]
    assert first.tokens[:3] == ["Identification", "of", "APC2"] and first.line == 1
    assert first.labels[8:11] == ["B-Disease", "I-Disease", "I-Disease"]
    assert sentences[1].line == len(first.tokens) + 2  # after the blank line
    assert {label for s in sentences for label in s.labels} == {"O", "B-Disease", "I-Disease"}


def test_space_separated_columns_take_the_first_and_last(tmp_path):
    path = tmp_path / "conll.txt"
    path.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\nPeter NNP B-NP B-PER\n")
    sentences = read_conll(path)
    assert [s.tokens for s in sentences] == [["EU", "rejects"], ["Peter"]]
    assert [s.labels for s in sentences] == [["B-ORG", "O"], ["B-PER"]]
    assert sentences[1].line == 7


def test_a_bad_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("Colon\tB-Disease\ncancer\tI-Disease\n\nlonely\n")
    with pytest.raises(UserError, match=r"train.tsv line 4: expected `token<TAB>label`.*'lonely'"):
        read_conll(path)
    with pytest.raises(NotFoundError, match="does not exist"):
        read_conll(tmp_path / "missing.tsv")
    (tmp_path / "latin1.tsv").write_bytes("caf\xe9\tO\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        read_conll(tmp_path / "latin1.tsv")


def test_an_eval_label_unknown_to_train_is_refused_with_its_line(tmp_path):
    (tmp_path / "train.tsv").write_text("Colon\tB-Disease\ncancer\tI-Disease\n.\tO\n")
    (tmp_path / "devel.tsv").write_text("The\tO\n\nBRCA1\tB-Gene\n")
    spec = spec_for(tmp_path, train="train.tsv", eval="devel.tsv")
    with pytest.raises(UserError, match=r"devel.tsv line 3: label 'B-Gene' is not in the training data "
                                        r"\(O, B-Disease, I-Disease\)"):
        get_task("token-classification").read(spec)


def test_without_an_eval_file_a_seeded_share_of_train_is_held_out(ncbi, tmp_path):
    blocks = (ncbi / "train.tsv").read_text().split("\n\n")[:100]
    (tmp_path / "train.tsv").write_text("\n\n".join(blocks))
    data = get_task("token-classification").read(spec_for(tmp_path, train="train.tsv"))
    assert (len(data.train), len(data.eval)) == (90, 10) and "held out" in data.eval_source
    assert data.labels == ["O", "B-Disease", "I-Disease"]
    again = hold_out(list(range(100)), 0.1, seed=42)
    assert again == hold_out(list(range(100)), 0.1, seed=42) != hold_out(list(range(100)), 0.1, seed=1)
    assert sorted(again[0] + again[1]) == list(range(100))


def test_csv_and_jsonl_examples_and_their_errors(tmp_path):
    (tmp_path / "train.csv").write_text('text,label\n"Aspirin, at low dose, helps",yes\nNothing here,no\n')
    assert [(e.text, e.label, e.line) for e in read_examples(tmp_path / "train.csv", "text", "label")] == [
        ("Aspirin, at low dose, helps", "yes", 2), ("Nothing here", "no", 3)]
    (tmp_path / "train.jsonl").write_text('{"sentence": "a", "y": 1}\n\n{"sentence": "b", "y": 0}\n')
    assert [(e.text, e.label) for e in read_examples(tmp_path / "train.jsonl", "sentence", "y")] == [
        ("a", "1"), ("b", "0")]
    with pytest.raises(UserError, match=r"train.csv has no column 'sentence' \(its header: text, label\)"):
        read_examples(tmp_path / "train.csv", "sentence", "label")
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b", label: 1}\n')
    with pytest.raises(UserError, match="bad.jsonl line 2: not valid JSON"):
        read_examples(tmp_path / "bad.jsonl", "text", "label")
    (tmp_path / "empty.csv").write_text("text,label\nsome text,\n")
    with pytest.raises(UserError, match="empty.csv line 2: `label` is missing or empty"):
        read_examples(tmp_path / "empty.csv", "text", "label")
    (tmp_path / "train.xlsx").write_bytes(b"PK")
    with pytest.raises(UserError, match=r"\.csv, \.tsv .* or \.jsonl"):
        read_examples(tmp_path / "train.xlsx", "text", "label")


def test_a_text_classification_spec_needs_two_labels(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\none,a\ntwo,a\nthree,a\n")
    with pytest.raises(UserError, match="single label"):
        get_task("text-classification").read(spec_for(tmp_path, "text-classification", train="train.csv"))


def test_language_model_texts_from_jsonl_and_blocks(data_dir, tmp_path):
    corpus = data_dir / "scifact" / "corpus.jsonl"
    lines = corpus.read_text().splitlines()[:5]
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    texts = read_texts(tmp_path / "a.jsonl", "text")
    assert [t.text for t in texts] == [json.loads(line)["text"] for line in lines]
    (tmp_path / "b.txt").write_text("First block\nstill first.\n\n\nSecond.\n")
    assert [(t.text, t.line) for t in read_texts(tmp_path / "b.txt", "text")] == [
        ("First block\nstill first.", 1), ("Second.", 5)]


def test_epoch_batches_are_seeded_complete_and_grouped_by_length():
    lengths = [(i * 37) % 101 + 1 for i in range(1000)]
    batches = epoch_batches(lengths, 16, seed=3, epoch=0, group=True)
    assert batches == epoch_batches(lengths, 16, seed=3, epoch=0, group=True)
    assert batches != epoch_batches(lengths, 16, seed=3, epoch=1, group=True)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    plain = epoch_batches(lengths, 16, seed=3, epoch=0, group=False)
    assert padded < 0.6 * sum(len(b) * max(lengths[i] for i in b) for b in plain)
    first_sizes = [max(lengths[i] for i in b) for b in batches[:5]]
    assert first_sizes != sorted(first_sizes, reverse=True)  # batches are shuffled after grouping


def test_scores_follow_conlleval_and_macro_averaging():
    gold = [["B-Disease", "I-Disease", "O", "B-Disease"], ["O", "B-Gene"]]
    pred = [["B-Disease", "I-Disease", "O", "O"], ["O", "B-Gene"]]
    overall, per_type = entity_scores(gold, pred)
    assert overall["precision"] == 1.0 and overall["recall"] == pytest.approx(2 / 3)
    assert per_type["Disease"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    scores, per_label = class_scores(["a", "a", "b", "c"], ["a", "b", "b", "c"])
    assert scores == {"accuracy": 0.75, "macro_f1": pytest.approx((2 / 3 + 2 / 3 + 1) / 3)}
    assert per_label["b"]["support"] == 1
    assert improved(0.5, None, True) and improved(0.4, 0.5, False) and not improved(0.5, 0.5, True)
