"""NCBI-disease NER with labmate's own runner: entity F1 on devel.tsv and wall time on this machine.

Usage:  .venv/bin/python bench/train_ner.py [--spec bench/specs/ncbi.toml] [--epochs N] [--lr X]
                                            [--out DIR] [--limit N] [--max-minutes M]
                                            [--threads N] [--device auto|cpu|cuda] [--resume]

What it does:
1. Trains the preset spec (default bench/specs/ncbi.toml: the bundled MiniLM encoder, 5 epochs,
   lr 1e-4, batch 16, length-grouped batches) with `training.runner.run_job`, the code a queued
   job runs, into DIR (default bench/results/ncbi-run; emptied first unless --resume). The best
   model (by devel F1, evaluated each epoch) is kept in DIR/best.
2. Labels devel.tsv with `training.predict.predict_file` (the path `labmate train predict` takes)
   and scores that file against the gold labels with seqeval (conlleval rules), to show that
   predict reproduces the runner's evaluation.
Goal: devel entity F1 >= 0.80 within 30 minutes of wall time on a 2-core CPU (published BERT-base
on the test split: 86.88; this project has no test split, and devel is used only to pick the best
epoch, so the figure is mildly optimistic).

Trials: --limit N trains on the first N sentences; --max-minutes M stops training at M minutes
(the runner checkpoints, and a second run_job with max_steps set to that step evaluates and
saves the model). The last line printed is a JSON object with all figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("LABMATE_TEST_DATA", REPO.parent / "shared" / "data"))


class ConsoleReporter:
    """Prints the log and, every `every` seconds, a progress line; stops at `deadline`."""

    def __init__(self, started: float, deadline: float | None = None, every: float = 30.0):
        self.started, self.deadline, self.every = started, deadline, every
        self.printed = 0.0
        self.step = 0
        self.stopped_at: int | None = None

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {message}", flush=True)

    def metrics(self, step: int, epoch: float, kind: str, values: dict) -> None:
        pass  # the log already shows each evaluation

    def progress(self, state: dict) -> None:
        self.step = state.get("step", 0)
        now = time.monotonic()
        if state.get("phase") == "training" and self.step and now - self.printed >= self.every:
            self.printed = now
            eta = state.get("eta_s")
            self.log(f"step {state['step']}/{state['total_steps']} epoch {state['epoch']:.2f} loss "
                     f"{state['loss'] if state['loss'] is None else round(state['loss'], 4)} "
                     f"{state['samples_per_s'] or 0:.1f} samples/s, eta {eta or 0:.0f} s")

    def should_stop(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.stopped_at = self.step
            return True
        return False


def load(args):
    """The preset spec with the command line's overrides."""
    from training.spec import load_spec

    spec, _text = load_spec(Path(args.spec), data_roots=[DATA, REPO])
    if args.epochs is not None:
        spec.train.epochs = args.epochs
    if args.lr is not None:
        spec.train.learning_rate = args.lr
    if args.limit:
        spec.train.max_examples = args.limit
    return spec


def train(spec, run_dir: Path, args) -> tuple[dict, ConsoleReporter]:
    """run_job, and when --max-minutes stops it: once more with max_steps = the step it reached."""
    from training.events import JobCancelled
    from training.runner import checkpoint_step, run_job

    started = time.monotonic()
    deadline = started + args.max_minutes * 60 if args.max_minutes else None
    reporter = ConsoleReporter(started, deadline)
    try:
        result = run_job(spec, run_dir, reporter, device=args.device, threads=args.threads)
    except JobCancelled:
        spec.train.max_steps = reporter.stopped_at = checkpoint_step(run_dir)
        reporter.log(f"--max-minutes reached: evaluating the model of step {spec.train.max_steps}")
        reporter.deadline = None
        result = run_job(spec, run_dir, reporter, device=args.device, threads=args.threads)
    return result, reporter


def score_predict(run_dir: Path, devel: Path, args) -> dict:
    """predict_file on devel.tsv, then seqeval on its output against devel's gold labels."""
    from training.data import read_conll
    from training.metrics import entity_scores
    from training.predict import predict_file

    started = time.monotonic()
    output = run_dir / "devel.predicted.tsv"
    counts = predict_file(run_dir / "best", devel, output, device=args.device)
    seconds = time.monotonic() - started
    gold = read_conll(devel)
    predicted = read_conll(output)
    assert [s.tokens for s in gold] == [s.tokens for s in predicted], "predict changed the tokens"
    scores, per_type = entity_scores([s.labels for s in gold], [s.labels for s in predicted])
    return {**scores, "per_type": per_type, "seconds": round(seconds, 1), "sentences": counts["sentences"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(REPO / "bench" / "specs" / "ncbi.toml"))
    parser.add_argument("--epochs", type=float)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "ncbi-run"))
    parser.add_argument("--limit", type=int, default=0, help="train on the first N sentences only (trials)")
    parser.add_argument("--max-minutes", type=float, default=0, help="stop training after M minutes (trials)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out instead of restarting")
    args = parser.parse_args(argv)

    spec = load(args)
    run_dir = Path(args.out)
    if not args.resume:
        shutil.rmtree(run_dir, ignore_errors=True)
    wall = time.monotonic()
    result, reporter = train(spec, run_dir, args)
    train_wall = time.monotonic() - wall
    predicted = score_predict(run_dir, spec.data.eval, args)
    total_wall = time.monotonic() - wall
    report(spec, result, predicted, train_wall, total_wall, reporter, args)
    return 0


def report(spec, result: dict, predicted: dict, train_wall: float, total_wall: float, reporter, args) -> None:
    best = result["best"]
    agree = abs(predicted["f1"] - best["f1"]) < 1e-9
    goal = best["f1"] >= 0.80 and total_wall <= 30 * 60
    trial = bool(args.limit or reporter.stopped_at)
    print()
    print(f"NCBI-disease NER, base model {spec.base_model} ({result['device']}), "
          f"{spec.train.epochs:g} epochs at lr {spec.train.learning_rate:g}, batch {spec.train.batch_size}"
          + (f", first {args.limit} sentences" if args.limit else "")
          + (f", stopped by --max-minutes at step {reporter.stopped_at}" if reporter.stopped_at else ""))
    print(f"devel entity F1 {best['f1']:.4f} (P {best['precision']:.4f}, R {best['recall']:.4f}) "
          f"at step {best['step']} of {result['steps']} (epoch {result['epochs']:.2f})"
          + (", stopped early" if result["stopped_early"] else ""))
    print(f"predict_file on devel.tsv, scored with seqeval: F1 {predicted['f1']:.4f} (P {predicted['precision']:.4f}, "
          f"R {predicted['recall']:.4f}); {'agrees' if agree else 'DIFFERS'} with the runner's evaluation")
    print(f"wall time: training {train_wall:.0f} s (of which steps {result['steps']} at "
          f"{result['samples_per_s']} samples/s), with predict {total_wall:.0f} s")
    print(f"goal F1 >= 0.80 within 30 min: {'met' if goal else 'not met'}" + (" (trial run)" if trial else ""))
    summary = {"f1": best["f1"], "precision": best["precision"], "recall": best["recall"], "best_step": best["step"],
               "steps": result["steps"], "epochs": result["epochs"], "samples_per_s": result["samples_per_s"],
               "train_wall_s": round(train_wall, 1), "total_wall_s": round(total_wall, 1),
               "predict_f1": predicted["f1"], "predict_agrees": agree, "goal_met": goal, "trial": trial,
               "learning_rate": spec.train.learning_rate, "epochs_planned": spec.train.epochs,
               "limit": args.limit, "history": [{k: h[k] for k in ("step", "epoch", "f1", "loss")}
                                                for h in result["history"]]}
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
