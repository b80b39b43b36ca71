"""Data-parallel training (`[train] gpus = N`) against one process: speed and final metrics.

Usage:  .venv/bin/python bench/train_ddp.py [--sentences N] [--eval-sentences N] [--processes 1,2]
                                            [--threads T] [--batch-size B] [--epochs E] [--device D]

The same job, one per entry of --processes: the bundled MiniLM (dropout as shipped) fine-tuned for
token classification on the first N (default 640) sentences of NCBI-disease train.tsv, evaluated
on the first 200 of devel.tsv; batch 16 (the global batch: with 2 processes each takes 8), lr 3e-4,
10% warmup, max length 128, seed 42, one epoch. Each job runs as the worker runs it: submitted to a
real JobStore in a temporary folder and started as `python -m training.child`, which starts
torchrun when gpus > 1 (gloo on the CPU; NCCL, one GPU per process, with CUDA and --device auto).
`--threads` is the job's CPU threads, shared among its processes.

Printed per run: wall time of the whole job (start-up, torchrun, loading, training, evaluation),
training samples/s (the runner's own figure: examples of the global batch per second of training
steps), final eval loss and entity F1, and the mean training loss. On a CPU with few cores
several processes are not faster (they share the same cores); the point is that the same code
runs one process per GPU. The last line printed is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
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
name = "ddp-{gpus}"
[data]
train = "train.tsv"
eval = "devel.tsv"
[train]
epochs = {epochs}
learning_rate = 3e-4
batch_size = {batch}
warmup_ratio = 0.1
max_length = 128
seed = 42
gpus = {gpus}
"""


def first_sentences(path: Path, count: int) -> str:
    return "\n\n".join(path.read_text().split("\n\n")[:count]).strip() + "\n"


def run(folder: Path, gpus: int, args) -> dict:
    from training.service import LocalService
    from training.settings import TrainingSettings
    from training.store import SUCCEEDED
    from training.worker import Worker

    settings = TrainingSettings(data_roots=[folder], specs_dir=folder, runs_dir=folder / f"runs-{gpus}",
                                database=folder / f"jobs-{gpus}.sqlite", threads=args.threads,
                                device=args.device, poll_seconds=0.2)
    service = LocalService(settings)
    job = service.submit(SPEC.format(gpus=gpus, batch=args.batch_size, epochs=args.epochs), base_dir=str(folder))
    began = time.perf_counter()
    done = Worker(settings).run_now(job.id)
    wall = time.perf_counter() - began
    if done.state != SUCCEEDED:
        raise SystemExit(f"the job with gpus = {gpus} ended {done.state}:\n{service.logs(job.id, lines=60)}")
    losses = [p.value for p in service.metrics(job.id) if p.kind == "train" and p.name == "loss"]
    final = done.result["history"][-1]
    return {"processes": gpus, "wall_s": round(wall, 1), "samples_per_s": done.result["samples_per_s"],
            "steps": done.result["steps"], "eval_loss": round(final["loss"], 4), "f1": round(final["f1"], 4),
            "mean_train_loss": round(sum(losses) / len(losses), 4), "device": done.result["device"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=640)
    parser.add_argument("--eval-sentences", type=int, default=200)
    parser.add_argument("--processes", default="1,2", help="comma-separated gpus values to run")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="labmate-ddp-") as temp:
        folder = Path(temp)
        (folder / "train.tsv").write_text(first_sentences(NCBI / "train.tsv", args.sentences))
        (folder / "devel.tsv").write_text(first_sentences(NCBI / "devel.tsv", args.eval_sentences))
        rows = []
        for gpus in (int(x) for x in args.processes.split(",")):
            row = run(folder, gpus, args)
            rows.append(row)
            print(f"{gpus} process(es) on {row['device']}: {row['wall_s']:6.1f} s wall, "
                  f"{row['samples_per_s']:6.1f} samples/s in training steps, {row['steps']} steps; "
                  f"final eval loss {row['eval_loss']:.4f}, F1 {row['f1']:.4f}; mean train loss "
                  f"{row['mean_train_loss']:.4f}", flush=True)
    print(json.dumps({"sentences": args.sentences, "eval_sentences": args.eval_sentences,
                      "threads": args.threads, "batch_size": args.batch_size, "runs": rows}))


if __name__ == "__main__":
    main()
