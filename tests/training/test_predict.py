"""predict_file with models trained by the real runner: the input's exact layout, one label per
token even for sentences longer than a window, agreement with the runner's own evaluation, text
classification output, and the errors for missing models and inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from core.errors import NotFoundError
from training.data import read_conll
from training.events import MemoryReporter
from training.predict import predict_file
from training.runner import run_job
from training.spec import parse_spec


def sentences(path: Path, start: int, count: int) -> str:
    return "\n\n".join(path.read_text().split("\n\n")[start:start + count]).strip() + "\n"


@pytest.fixture(scope="module")
def ner_model(data_dir, tmp_path_factory) -> tuple[Path, Path, dict]:
    """A 4-step model with max_length 16, so most devel sentences need several windows."""
    ncbi = data_dir / "ner" / "ncbi-disease"
    folder = tmp_path_factory.mktemp("ner")
    (folder / "train.tsv").write_text(sentences(ncbi / "train.tsv", 0, 48))
    (folder / "devel.tsv").write_text(sentences(ncbi / "devel.tsv", 0, 24))
    spec = parse_spec('task = "token-classification"\n[data]\ntrain = "train.tsv"\neval = "devel.tsv"\n'
                      "[train]\nbatch_size = 8\nmax_steps = 4\nlearning_rate = 3e-4\nmax_length = 16\n",
                      base_dir=folder, data_roots=[folder])
    result = run_job(spec, folder / "run", MemoryReporter())
    return folder / "run" / "best", folder / "devel.tsv", result


def test_predict_keeps_the_input_layout_with_one_label_per_token(ner_model, tmp_path):
    model_dir, devel, _result = ner_model
    text = "\n" + devel.read_text().replace("\n\n", "\n\n\n", 1) + "\nunlabelled\ntokens\n"
    source = tmp_path / "input.tsv"
    source.write_text(text)
    counts = predict_file(model_dir, source, tmp_path / "out" / "predicted.tsv", batch_size=16)

    given, written = text.splitlines(), (tmp_path / "out" / "predicted.tsv").read_text().splitlines()
    assert len(written) == len(given)
    for line, out in zip(given, written):
        assert (line == "") == (out == "")
        if line:
            token, label = out.split("\t")
            assert token == line.split("\t")[0] and label in ("O", "B-Disease", "I-Disease")
    tokens = sum(1 for line in given if line)
    assert counts["tokens"] == tokens and counts["sentences"] == 25
    assert counts["windows"] > counts["sentences"]  # 14 word pieces per window: long sentences were split


def test_predict_agrees_with_the_runners_evaluation(ner_model, tmp_path):
    from training.metrics import entity_scores

    model_dir, devel, result = ner_model
    predict_file(model_dir, devel, tmp_path / "predicted.tsv")
    gold = [s.labels for s in read_conll(devel)]
    predicted = [s.labels for s in read_conll(tmp_path / "predicted.tsv")]
    scores, _per_type = entity_scores(gold, predicted)
    assert scores["accuracy"] == pytest.approx(result["final"]["accuracy"])
    assert scores["f1"] == pytest.approx(result["final"]["f1"])


def test_missing_models_and_inputs_say_what_to_give(ner_model, tmp_path):
    model_dir, devel, _result = ner_model
    with pytest.raises(NotFoundError, match=r"no trained model at .*labmate train submit"):
        predict_file(tmp_path / "nowhere", devel, tmp_path / "out.tsv")
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotFoundError, match="no labmate.json"):
        predict_file(tmp_path / "plain", devel, tmp_path / "out.tsv")
    with pytest.raises(NotFoundError, match="Input file .* does not exist"):
        predict_file(model_dir, tmp_path / "missing.tsv", tmp_path / "out.tsv")
    assert not (tmp_path / "out.tsv").exists()


def test_text_classification_predicts_csv_jsonl_and_plain_lines(data_dir, tmp_path):
    claims = [json.loads(line)["text"] for line in
              (data_dir / "scifact" / "queries.train.jsonl").read_text().splitlines()[:48]]
    rows = [(claim, "negation" if " not " in f" {claim} " or "n't" in claim else "plain") for claim in claims]
    with (tmp_path / "train.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([("text", "label"), *rows])
    spec = parse_spec('task = "text-classification"\nlabels = ["plain", "negation"]\n[data]\ntrain = "train.csv"\n'
                      "[train]\nbatch_size = 16\nmax_steps = 2\nmax_length = 48\n",
                      base_dir=tmp_path, data_roots=[tmp_path])
    run_job(spec, tmp_path / "run", MemoryReporter())
    best = tmp_path / "run" / "best"

    (tmp_path / "in.jsonl").write_text(json.dumps({"text": "A claim\twith a tab."}) + "\n")
    (tmp_path / "in.txt").write_text("First claim.\n\nSecond claim.\n")
    for name, expected in (("train.csv", 48), ("in.jsonl", 1), ("in.txt", 2)):
        counts = predict_file(best, tmp_path / name, tmp_path / f"{name}.out.tsv")
        lines = (tmp_path / f"{name}.out.tsv").read_text().splitlines()
        assert lines[0] == "text\tlabel" and len(lines) == expected + 1 and counts["texts"] == expected
        assert all(line.count("\t") == 1 and line.split("\t")[1] in ("plain", "negation") for line in lines[1:])
    assert (tmp_path / "in.jsonl.out.tsv").read_text().splitlines()[1].startswith("A claim with a tab.\t")
