"""Training speed of labmate's runner against a plain Hugging Face `Trainer`, side by side.

Usage:  .venv/bin/python bench/train_speed.py [--sentences N] [--rounds R] [--batch-size B]
                                              [--threads N] [--no-group]

Both train the bundled MiniLM for token classification on the same first N (default 1,000)
sentences of NCBI-disease train.tsv, tokenized once by labmate's code so the inputs are
identical, for one epoch: batch 16, lr 1e-4, weight decay 0.01, 10% linear warmup, gradient
clipping at 1.0, max length 128, seed 42, length-grouped batches for labmate (--no-group turns
them off), fused AdamW (the Trainer's default optimizer), on the CPU.

- labmate: `training.runner.run_job` with reporting switched on, as a queued job runs: a
  `StoreReporter` writing the log, metrics and progress into a real `JobStore` (SQLite) in a
  temporary folder. Timed from the first "training" progress to the first "evaluating" (the
  end-of-epoch evaluation, on 8 devel sentences, is not timed), so the time includes batching,
  reporting and cancellation polling.
- Trainer: `Trainer.train()` with `DataCollatorForTokenClassification` (dynamic padding too),
  `report_to=[]`, no evaluation, no saving; its own `train_samples_per_second` (which also covers
  its whole loop). Twice per round: as it comes (random batches, the Trainer's default) and with
  `train_sampling_strategy="group_by_length"` (the like-for-like comparison of the loops alone).
An untimed warm-up run comes first (the first run in a process pays for building the CPU
kernels of each new sequence length). Rounds alternate which one goes first (the machine may be
shared); figures are medians, and the verdict uses the median of the per-round ratios (the two
runs of a round see the same load). ratio = labmate / Trainer in samples per second; goal >= 1.0.
The last line printed is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("LABMATE_TEST_DATA", REPO.parent / "shared" / "data"))
NCBI = DATA / "ner" / "ncbi-disease"
SPEC = """
task = "token-classification"
[data]
train = "train.tsv"
eval = "devel.tsv"
[train]
epochs = 1
learning_rate = 1e-4
batch_size = {batch}
weight_decay = 0.01
warmup_ratio = 0.1
max_grad_norm = 1.0
max_length = 128
seed = 42
group_by_length = {group}
"""


class Timed:
    """Forwards to the real reporter; notes when training starts and when evaluation starts."""

    def __init__(self, inner):
        self.inner = inner
        self.began = self.ended = None

    def log(self, message):
        self.inner.log(message)

    def metrics(self, step, epoch, kind, values):
        self.inner.metrics(step, epoch, kind, values)

    def progress(self, state):
        now = time.perf_counter()
        if state["phase"] == "training" and self.began is None:
            self.began = now
        if state["phase"] == "evaluating" and self.ended is None:
            self.ended = now
        self.inner.progress(state)

    def should_stop(self):
        return self.inner.should_stop()


def blocks(path: Path, count: int) -> str:
    return "\n\n".join(path.read_text().split("\n\n")[:count]).strip() + "\n"


def run_labmate(folder: Path, args, round_no: int) -> float:
    """Samples per second of run_job, reporting into a fresh JobStore, from training to evaluation."""
    from training.events import StoreReporter
    from training.runner import run_job
    from training.spec import parse_spec
    from training.store import JobStore

    spec = parse_spec(SPEC.format(batch=args.batch_size, group=str(not args.no_group).lower()),
                      base_dir=folder, data_roots=[folder])
    store = JobStore(folder / f"jobs-{round_no}.sqlite")
    job = store.submit(name="speed", task=spec.task, spec=spec.model_dump(mode="json"), spec_text="", origin=None)
    run_dir = folder / f"run-{round_no}"
    reporter = Timed(StoreReporter(store, job.id, run_dir / "log.txt"))
    try:
        result = run_job(spec, run_dir, reporter, device="cpu", threads=args.threads)
    finally:
        reporter.inner.close()
        store.close()
    assert result["steps"] > 0
    return args.sentences / (reporter.ended - reporter.began)


def run_trainer(folder: Path, args, features: list, labels: list[str], grouped: bool) -> float:
    """The Trainer's own train_samples_per_second on the same features; `grouped` switches on its
    length-grouped sampler (off is the Trainer's default: random batches)."""
    import torch
    from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments

    from training.models import load_base, resolve_base

    torch.manual_seed(42)
    model, tokenizer = load_base("token-classification", resolve_base("token-classification", "default"), labels)
    dataset = [{"input_ids": ids, "labels": targets} for ids, targets in features]
    training_args = TrainingArguments(
        output_dir=str(folder / "trainer"), per_device_train_batch_size=args.batch_size, learning_rate=1e-4,
        num_train_epochs=1, weight_decay=0.01, warmup_steps=0.1, max_grad_norm=1.0, lr_scheduler_type="linear",
        seed=42, report_to=[], save_strategy="no", eval_strategy="no", logging_strategy="no", disable_tqdm=True,
        use_cpu=True, dataloader_pin_memory=False,
        train_sampling_strategy="group_by_length" if grouped else "random")
    trainer = Trainer(model=model, args=training_args, train_dataset=dataset,
                      data_collator=DataCollatorForTokenClassification(tokenizer), processing_class=tokenizer)
    output = trainer.train()
    return float(output.metrics["train_samples_per_second"])


def features_for(folder: Path, labels: list[str]) -> list:
    """The training features exactly as labmate's runner builds them."""
    from training.data import read_conll
    from training.models import load_base, resolve_base
    from training.tasks import get_task

    task = get_task("token-classification")
    _model, tokenizer = load_base(task.name, resolve_base(task.name, "default"), labels)
    return task.train_features(read_conll(folder / "train.tsv"), tokenizer, labels, 128)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-group", action="store_true", help="random batches for labmate too (the Trainer runs both ways anyway)")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    labels = ["O", "B-Disease", "I-Disease"]
    sides = ["labmate", "trainer"] + ([] if args.no_group else ["trainer-grouped"])
    rates: dict[str, list[float]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        (folder / "train.tsv").write_text(blocks(NCBI / "train.tsv", args.sentences))
        (folder / "devel.tsv").write_text(blocks(NCBI / "devel.tsv", 8))
        features = features_for(folder, labels)
        warm = argparse.Namespace(**{**vars(args), "sentences": min(args.sentences, 96)})
        (folder / "warm").mkdir()
        (folder / "warm" / "train.tsv").write_text(blocks(NCBI / "train.tsv", warm.sentences))
        (folder / "warm" / "devel.tsv").write_text(blocks(NCBI / "devel.tsv", 8))
        run_labmate(folder / "warm", warm, 0)
        for round_no in range(args.rounds):
            shift = round_no % len(sides)  # each side goes first in turn (the machine may be shared)
            for side in sides[shift:] + sides[:shift]:
                rate = run_labmate(folder, args, round_no) if side == "labmate" else \
                    run_trainer(folder, args, features, labels, grouped=side == "trainer-grouped")
                rates[side].append(rate)
                print(f"round {round_no + 1}: {side:15s} {rate:6.1f} samples/s", flush=True)
    report(rates, args)
    return 0


def report(rates: dict[str, list[float]], args) -> None:
    ours = rates["labmate"]
    print(f"\n{args.sentences} NCBI sentences, 1 epoch, batch {args.batch_size}, labmate with "
          f"{'random' if args.no_group else 'length-grouped'} batches, {torch_threads()} CPU threads")
    print(f"labmate run_job (StoreReporter on):       {statistics.median(ours):.1f} samples/s (median of {len(ours)})")
    summary = {"labmate_samples_per_s": round(statistics.median(ours), 2), "labmate_runs": [round(x, 2) for x in ours]}
    for side in [s for s in rates if s != "labmate"]:
        what = ("Trainer, length-grouped sampler" if side == "trainer-grouped"
                else "Trainer, its default (random batches)")
        ratio = statistics.median(a / b for a, b in zip(ours, rates[side]))
        print(f"{what:40s}: {statistics.median(rates[side]):.1f} samples/s; labmate / Trainer "
              f"{ratio:.2f}x (median of per-round ratios; goal >= 1.0x: {'met' if ratio >= 1.0 else 'not met'})")
        key = side.replace("-", "_")
        summary.update({f"{key}_samples_per_s": round(statistics.median(rates[side]), 2),
                        f"{key}_runs": [round(x, 2) for x in rates[side]], f"ratio_vs_{key}": round(ratio, 3)})
    summary.update(sentences=args.sentences, batch_size=args.batch_size, grouped=not args.no_group,
                   threads=torch_threads())
    print(json.dumps(summary))


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    sys.exit(main())
