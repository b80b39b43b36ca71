"""The runner end to end on CPU with the real MiniLM and slices of real NCBI-disease: the result's
shape, the best model on disk, reporting, cancel and an exact resume, early stopping, data
errors, text classification, and (slow) LoRA on the SmolLM2 GGUF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import UserError
from training.events import JobCancelled, MemoryReporter
from training.runner import checkpoint_step, run_job
from training.spec import parse_spec

NER = """
task = "token-classification"
[data]
train = "train.tsv"
eval = "devel.tsv"
{extra_data}
[train]
batch_size = 8
learning_rate = 1e-4
max_length = 64
{extra_train}
"""


def sentences(path: Path, start: int, count: int) -> str:
    return "\n\n".join(path.read_text().split("\n\n")[start:start + count]).strip() + "\n"


@pytest.fixture(scope="module")
def lab(data_dir, tmp_path_factory) -> Path:
    """64 training sentences, 32 for evaluation and 16 others as a test file."""
    ncbi = data_dir / "ner" / "ncbi-disease"
    folder = tmp_path_factory.mktemp("lab")
    (folder / "train.tsv").write_text(sentences(ncbi / "train.tsv", 0, 64))
    (folder / "devel.tsv").write_text(sentences(ncbi / "devel.tsv", 0, 32))
    (folder / "test.tsv").write_text(sentences(ncbi / "devel.tsv", 32, 16))
    return folder


def ner_spec(lab: Path, extra_train: str = "", extra_data: str = ""):
    text = NER.format(extra_train=extra_train, extra_data=extra_data)
    return parse_spec(text, base_dir=lab, data_roots=[lab], source="tiny.toml")


def weights(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(run_dir / "best" / "model.safetensors")


def test_a_tiny_ner_job_runs_end_to_end(lab, tmp_path):
    reporter = MemoryReporter()
    spec = ner_spec(lab, "max_steps = 8\neval_every = 4", 'test = "test.tsv"')
    result = run_job(spec, tmp_path / "run", reporter, threads=2)

    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == json.loads(json.dumps(result))
    assert result["task"] == "token-classification" and result["dataset"] == "train.tsv"
    assert [h["step"] for h in result["history"]] == [4, 8] and result["steps"] == 8
    assert set(result["final"]) >= {"precision", "recall", "f1", "loss", "accuracy"}
    assert result["best"]["step"] in (4, 8) and result["best"]["f1"] == result["final"]["f1"]
    assert set(result["per_type"]["Disease"]) == {"precision", "recall", "f1", "support"}
    assert result["test"]["per_type"]["Disease"]["support"] > 0 and 0 <= result["test"]["f1"] <= 1
    assert result["device"] == "cpu" and result["stopped_early"] is False and result["samples_per_s"] > 0
    config = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert config["id2label"] == {"0": "O", "1": "B-Disease", "2": "I-Disease"}
    assert result["model_dir"] == str(tmp_path / "run" / "best")
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoint").iterdir()) == ["state.json"]  # finished

    kinds = [kind for _step, _epoch, kind, _values in reporter.points]
    assert kinds.count("eval") == 2 and kinds.count("test") == 1 and kinds.count("train") == 8
    train = next(values for _s, _e, kind, values in reporter.points if kind == "train")
    assert set(train) == {"loss", "learning_rate", "samples_per_s"}
    phases = [state["phase"] for state in reporter.states]
    assert phases[0] == "loading" and phases[-1] == "done" and {"training", "evaluating", "saving"} <= set(phases)
    assert set(reporter.states[-1]) >= {"step", "total_steps", "epoch", "epochs", "loss", "samples_per_s", "eta_s",
                                        "device", "gpu_memory_mb", "best", "eval"}
    assert reporter.states[-1]["gpu_memory_mb"] is None and reporter.states[-1]["eval"]["f1"] >= 0
    log = "\n".join(reporter.lines)
    assert "device cpu" in log and "64 training examples" in log and "eval at step 8" in log and "done" in log


def test_a_cancelled_job_resumes_and_ends_with_the_uninterrupted_weights(lab, tmp_path):
    import torch

    spec = ner_spec(lab, "max_steps = 6")
    run_job(spec, tmp_path / "whole", MemoryReporter())

    stopping = MemoryReporter(stop_after_step=3)
    stopping.progress_seconds = 0  # report every step, so the stop lands exactly at step 3
    with pytest.raises(JobCancelled):
        run_job(spec, tmp_path / "parts", stopping)
    assert checkpoint_step(tmp_path / "parts") == 3
    assert not (tmp_path / "parts" / "metrics.json").exists()

    resumed = MemoryReporter()
    result = run_job(spec, tmp_path / "parts", resumed)
    assert "resuming from step 3 of 6" in "\n".join(resumed.lines)
    assert [step for step, _e, kind, _v in resumed.points if kind == "train"] == [4, 5, 6]
    assert result["steps"] == 6 and [h["step"] for h in result["history"]] == [6]
    whole, parts = weights(tmp_path / "whole"), weights(tmp_path / "parts")
    assert whole.keys() == parts.keys() and all(torch.equal(whole[k], parts[k]) for k in whole)


def test_early_stopping_ends_the_run_after_evaluations_without_progress(lab, tmp_path):
    # A warmup of 10^9 steps keeps every update far below float32 resolution: each evaluation
    # sees the same weights, so none improves on the first.
    spec = ner_spec(lab, "max_steps = 10\neval_every = 1\nearly_stopping = 2\nwarmup_steps = 1000000000")
    reporter = MemoryReporter()
    result = run_job(spec, tmp_path / "run", reporter)
    assert result["stopped_early"] is True and result["steps"] == 3 and result["best"]["step"] == 1
    assert [h["step"] for h in result["history"]] == [1, 2, 3]
    assert any("early stopping" in line for line in reporter.lines)


def test_bad_data_fails_before_any_training_with_file_and_line(lab, tmp_path):
    (tmp_path / "train.tsv").write_text((lab / "train.tsv").read_text())
    (tmp_path / "devel.tsv").write_text("BRCA1\tB-Gene\nmutations\tO\n")
    spec = parse_spec(NER.format(extra_train="", extra_data=""), base_dir=tmp_path, data_roots=[tmp_path])
    with pytest.raises(UserError, match=r"devel.tsv line 1: label 'B-Gene' is not in the training data"):
        run_job(spec, tmp_path / "run", MemoryReporter())
    assert checkpoint_step(tmp_path / "run") is None


def test_a_tiny_text_classification_job(lab, tmp_path):
    import csv

    from training.data import read_conll

    rows = [(" ".join(s.tokens), "disease" if "B-Disease" in s.labels else "none")
            for s in read_conll(lab / "train.tsv") + read_conll(lab / "devel.tsv")]
    for name, part in (("train.csv", rows[:64]), ("devel.csv", rows[64:])):
        with (tmp_path / name).open("w", newline="") as handle:
            csv.writer(handle).writerows([("text", "label"), *part])
    spec = parse_spec('task = "text-classification"\n[data]\ntrain = "train.csv"\neval = "devel.csv"\n'
                      "[train]\nbatch_size = 16\nmax_steps = 4\nlearning_rate = 1e-4\nmax_length = 64\n",
                      base_dir=tmp_path, data_roots=[tmp_path])
    result = run_job(spec, tmp_path / "run", MemoryReporter())
    assert set(result["final"]) == {"loss", "accuracy", "macro_f1"} and 0 <= result["final"]["accuracy"] <= 1
    assert set(result["per_type"]) <= {"disease", "none"} and result["per_type"]
    config = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert config["id2label"] == {"0": "disease", "1": "none"}


@pytest.mark.slow
def test_causal_lm_lora_trains_two_steps_on_the_smollm2_gguf(data_dir, tmp_path):
    from training.predict import predict_file

    lines = (data_dir / "scifact" / "corpus.jsonl").read_text().splitlines()[:10]
    (tmp_path / "abstracts.jsonl").write_text("\n".join(lines) + "\n")
    spec = parse_spec('task = "causal-lm"\n[data]\ntrain = "abstracts.jsonl"\n[train]\nbatch_size = 2\n'
                      "max_steps = 2\nmax_length = 48\nlearning_rate = 1e-3\n[lora]\nr = 4\n",
                      base_dir=tmp_path, data_roots=[tmp_path])
    result = run_job(spec, tmp_path / "run", MemoryReporter())
    assert result["steps"] == 2 and set(result["final"]) == {"loss", "perplexity"}
    assert result["final"]["perplexity"] > 1 and result["per_type"] == {}
    best = tmp_path / "run" / "best"
    assert (best / "adapter_config.json").is_file() and json.loads((best / "labmate.json").read_text())["lora"]
    with pytest.raises(UserError, match="classifier"):
        predict_file(best, tmp_path / "abstracts.jsonl", tmp_path / "out.tsv")


@pytest.mark.gpu
def test_a_tiny_ner_job_on_cuda_uses_bf16_and_reports_gpu_memory(lab, tmp_path):
    reporter = MemoryReporter()
    result = run_job(ner_spec(lab, "max_steps = 6\neval_every = 3"), tmp_path / "run", reporter, device="cuda")
    assert result["device"].startswith("cuda:0") and result["steps"] == 6
    assert max(s["gpu_memory_mb"] or 0 for s in reporter.states) > 0
    assert 0 <= result["final"]["f1"] <= 1
