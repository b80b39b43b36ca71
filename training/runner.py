"""The training loop: `run_job(spec, run_dir, reporter)` fine-tunes a model and keeps the best.

Run folder: `checkpoint/` (resumable state, replaced atomically), `best/` (the best model so far,
for predict), `metrics.json` (the result). A job killed at any moment and started again resumes
from its last checkpoint and lands on the same batches and random numbers, so its final weights
equal those of an uninterrupted run (on CPU; GPU kernels may differ in the last bits).

Speed: dynamic padding per batch, length-grouped batches, fused AdamW, and no host-device
synchronisation per step (the loss is read about 50 times per epoch, not at every step).

Several processes (`[train] gpus = N`, under torchrun; see training/distributed.py): the model is
wrapped in DistributedDataParallel, every rank takes its share of each global batch, rank 0 alone
evaluates, reports and saves, and rank 0's stop and early-stopping decisions reach every rank at
the same step.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from training.events import JobCancelled, RunReporter
from training.optim import fit_length, gpu_memory_mb, make_optimizer, steps_per_epoch
from training.spec import JobSpec

CHECKPOINT, BEST, METRICS = "checkpoint", "best", "metrics.json"
TRAIN_POINTS_PER_EPOCH = 50


@dataclass
class State:
    """Everything about a run's progress that a checkpoint keeps (besides tensors)."""

    step: int = 0
    epoch: int = 0  # epochs completed
    position: int = 0  # optimizer steps done in the current epoch
    epochs_done: float = 0.0
    best: float | None = None
    best_step: int = 0
    bad_evals: int = 0  # evaluations since the best one (early stopping)
    history: list = field(default_factory=list)
    per_type: dict = field(default_factory=dict)  # of the best evaluation
    labels: list = field(default_factory=list)
    train_seconds: float = 0.0  # wall time of training and evaluation, over all attempts
    step_seconds: float = 0.0  # time in training steps alone
    samples: int = 0
    stopped_early: bool = False
    finished: bool = False


def checkpoint_step(run_dir: Path) -> int | None:
    """The step of the run's last checkpoint (None without one). Only reads, so another process
    may call it while the job runs."""
    for name in (CHECKPOINT, CHECKPOINT + ".old"):
        try:
            return int(json.loads((Path(run_dir) / name / "state.json").read_text())["step"])
        except (OSError, ValueError, KeyError):
            continue
    return None


def run_job(spec: JobSpec, run_dir: Path, reporter: RunReporter, *, device: str = "auto", threads: int = 0,
            group=None) -> dict:
    """Train `spec` in `run_dir` (resuming from `run_dir/checkpoint/` when there is one), report
    through `reporter`, and return the result that is also written to `run_dir/metrics.json`.
    Raises JobCancelled, after saving a checkpoint, when `reporter.should_stop()` turns true.
    `threads > 0` sets torch's CPU threads. A reporter attribute `progress_seconds` (default
    1.0) sets how often progress is reported; tests set 0 to see every step. `group` (a
    `training.distributed.Group`) runs this process as one rank of a data-parallel job: its device
    replaces `device`, and ranks other than 0 return {} and write nothing."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return _Run(spec, run_dir, reporter, device, group).execute()


def write_json(path: Path, data: dict) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(temp, path)


class _Run:
    """One attempt at a job: read data, build or restore the model, train, evaluate, save."""

    def __init__(self, spec: JobSpec, run_dir: Path, reporter: RunReporter, device: str, group=None):
        from training.models import describe_device, pick_device
        from training.tasks import get_task

        self.spec, self.hp, self.run_dir, self.reporter = spec, spec.train, run_dir, reporter
        self.task = get_task(spec.task)
        self.group, self.main = group, group is None or group.main
        self.device = group.device if group else pick_device(device)
        self.device_name = describe_device(self.device)
        self.state = State()
        self.total_steps = self.per_epoch = 0
        self.last_loss, self.latest_eval = None, None
        self.every = float(getattr(reporter, "progress_seconds", 1.0))
        self.last_progress = -math.inf
        self.session = {"began": time.monotonic(), "steps": 0, "samples": 0, "seconds": 0.0}
        self.mark = time.monotonic()  # since when wall time is not yet in state.train_seconds
        self.window = {"loss": None, "batches": 0, "samples": 0, "seconds": 0.0}

    def execute(self) -> dict:
        """The whole attempt; a checkpoint of a finished run only has its result written again."""
        from training.models import read_checkpoint, recover_dir

        self._progress("loading", force=True)
        if self.main:
            recover_dir(self.run_dir / BEST)  # a kill between the two renames of a save leaves best.old
            recover_dir(self.run_dir / CHECKPOINT)
        self.data = self.task.read(self.spec)
        if self.group:
            self.group.barrier()  # rank 0 has repaired the folders before the others read them
        saved = read_checkpoint(self.run_dir / CHECKPOINT)
        if saved and saved.get("finished"):
            self.state = State(**saved)
            self.total_steps = self.state.step
            self.log(f"the run already finished at step {self.state.step}; writing its result again")
            return self._finish()
        self._build()
        if saved:
            self._restore(State(**saved))
        self.net = self._parallel() if self.group else self.model
        self._train()
        return self._finish()

    def log(self, message: str) -> None:
        self.reporter.log(message)

    # -- setup -------------------------------------------------------------------------------

    def _build(self) -> None:
        import torch

        from training.models import load_base, resolve_base

        spec, hp, data = self.spec, self.hp, self.data
        random.seed(hp.seed)
        torch.manual_seed(hp.seed)  # the new head's initialisation, then dropout
        self.base = resolve_base(spec.task, spec.base_model)
        self.log(f"{spec.task} job {spec.name!r}: base model {self.base.describe()}; device {self.device_name}, "
                 f"{torch.get_num_threads()} CPU threads")
        self.log(f"data: {len(data.train)} training examples ({spec.data.train.name}), {len(data.eval)} for "
                 f"evaluation ({data.eval_source})" + (f", {len(data.test)} test" if data.test else "")
                 + (f"; labels {', '.join(data.labels)}" if data.labels else ""))
        model, self.tokenizer = load_base(spec.task, self.base, data.labels, spec.lora if self.task.lora else None)
        self.model = model.to(self.device)
        self.max_length = fit_length(model, hp.max_length, self.log)
        self.features = self.task.train_features(data.train, self.tokenizer, data.labels, self.max_length)
        self.lengths = [len(f[0]) for f in self.features]
        self.per_epoch = steps_per_epoch(len(self.features), hp.batch_size, hp.gradient_accumulation)
        total = math.ceil(hp.epochs * self.per_epoch)
        self.total_steps = max(1, min(total, hp.max_steps) if hp.max_steps else total)
        self.log_every = max(1, self.per_epoch // TRAIN_POINTS_PER_EPOCH)
        self.optimizer, self.scheduler = make_optimizer(self.model, hp, self.total_steps)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.state.labels = list(data.labels)
        if self.group:
            group = self.group
            self.log(f"data parallel: {group.world} processes ({group.backend}), each with about "
                     f"{hp.batch_size / group.world:g} of every batch of {hp.batch_size}")
            if hp.batch_size < group.world:
                self.log(f"warning: batch_size {hp.batch_size} is smaller than gpus = {group.world}; "
                         "some processes get no examples")
        self.log(f"training {self.total_steps} steps ({self.per_epoch} per epoch; batch {hp.batch_size}"
                 f"{f' x {hp.gradient_accumulation} accumulated' if hp.gradient_accumulation > 1 else ''}, "
                 f"learning rate {hp.learning_rate:g}, max length {self.max_length})")

    def _restore(self, saved: State) -> None:
        from core.errors import UserError
        from training.models import restore_checkpoint

        if saved.labels != self.state.labels:
            raise UserError("The checkpoint of this run was trained with other labels (the data changed since). "
                            f"Delete {self.run_dir / CHECKPOINT} to start again, or submit a new job.")
        restore_checkpoint(self.run_dir / CHECKPOINT, self.model, self.optimizer, self.scheduler, self.device)
        self.state = saved
        self.latest_eval = next((h for h in reversed(saved.history)), None)
        self.log(f"resuming from step {saved.step} of {self.total_steps} (epoch {saved.epochs_done:.2f})")

    def _parallel(self):
        """The model wrapped in DistributedDataParallel (after a restore: DDP checks that every rank
        starts from rank 0's weights)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        # Buffers (position ids) are constants in these models: synced once at start, not per step.
        try:
            return DistributedDataParallel(self.model, device_ids=ids, forward_sync_buffers=False)
        except TypeError:  # torch before 2.13
            return DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)

    # -- training ----------------------------------------------------------------------------

    def _train(self) -> None:
        from training.data import epoch_batches

        st, hp = self.state, self.hp
        self.model.train()
        self.session["began"] = self.mark = time.monotonic()
        self._progress("training", force=True)
        while st.step < self.total_steps and not st.stopped_early:
            batches = epoch_batches(self.lengths, hp.batch_size, seed=hp.seed, epoch=st.epoch,
                                    group=hp.group_by_length)
            accumulate = hp.gradient_accumulation
            groups = [batches[i:i + accumulate] for i in range(0, len(batches), accumulate)]
            while st.position < len(groups) and st.step < self.total_steps and not st.stopped_early:
                (self._step_parallel if self.group else self._step)(groups[st.position])
                st.position += 1
                st.step += 1
                st.epochs_done = st.epoch + st.position / len(groups)
                self._after_step(epoch_end=st.position == len(groups))
            if st.position >= len(groups):
                st.epoch, st.position = st.epoch + 1, 0
        if self.main and (not st.history or st.history[-1]["step"] != st.step):  # e.g. a lower max_steps
            self._evaluate()
            self._checkpoint()

    def _step(self, group: list[list[int]]) -> None:
        from training.models import autocast

        started = time.perf_counter()
        for indices in group:
            batch = self.task.collate([self.features[i] for i in indices], self.tokenizer.pad_token_id)
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            with autocast(self.device):
                loss = self.model(**batch).loss
            (loss / len(group)).backward()
            self._tally(loss.detach(), len(indices))
        self._optimizer_step(group, started)

    def _tally(self, loss, samples: int) -> None:
        # Summed on the device: reading it here would wait for the GPU at every step.
        total = self.window["loss"]
        self.window["loss"] = loss if total is None else total + loss
        self.window["batches"] += 1
        self.window["samples"] += samples

    def _optimizer_step(self, group: list[list[int]], started: float) -> None:
        import torch

        if self.hp.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.trainable, self.hp.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._stepped(group, started)

    def _stepped(self, group: list[list[int]], started: float) -> None:
        elapsed = time.perf_counter() - started
        self.window["seconds"] += elapsed
        samples = sum(len(indices) for indices in group)
        self.state.step_seconds += elapsed
        self.state.samples += samples
        self.session["steps"] += 1
        self.session["samples"] += samples
        self.session["seconds"] += elapsed

    def _step_parallel(self, group: list[list[int]]) -> None:
        """`_step` as one rank: its share of each global batch, the loss weighted by the share of the
        batch's targets it holds (times the ranks, as DDP averages gradients), so the averaged
        gradient is the one process's on the whole batch. Gradients are exchanged once per
        optimizer step (no_sync on the accumulated batches before the last). A rank without
        examples in a batch (a batch smaller than the ranks) runs one with weight 0: DDP needs
        every rank in every exchange. Samples counted are the global batch's."""
        import contextlib

        import torch

        from training.distributed import target_count
        from training.models import autocast

        ranks, task = self.group, self.spec.task
        torch.manual_seed(ranks.step_seed(self.hp.seed, self.state.step))  # dropout: resumable per rank
        started = time.perf_counter()
        for number, indices in enumerate(group):
            mine = ranks.shard(indices)
            chosen = [self.features[i] for i in (mine or indices[:1])]
            total = sum(target_count(task, self.features[i]) for i in indices)
            share = sum(target_count(task, f) for f in chosen) / max(total, 1) if mine else 0.0
            batch = self.task.collate(chosen, self.tokenizer.pad_token_id)
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            last = number == len(group) - 1
            with contextlib.nullcontext() if last else self.net.no_sync():
                with autocast(self.device):
                    loss = self.net(**batch).loss
                (loss * (share * ranks.world / len(group))).backward()
            # Each rank's share; summed over the ranks at the next point, it is the batch's loss.
            self._tally(loss.detach() * share, len(indices))
        self._optimizer_step(group, started)

    def _after_step(self, epoch_end: bool) -> None:
        st, hp = self.state, self.hp
        if st.step % self.log_every == 0 or epoch_end:
            self._train_point()
        evaluate = (st.step % hp.eval_every == 0 if hp.eval_every else epoch_end) or st.step == self.total_steps
        if evaluate and self.main:
            self._evaluate()
        saved = evaluate or bool(hp.save_every and st.step % hp.save_every == 0)
        if saved and self.main:
            self._checkpoint()
            if not evaluate:
                self.log(f"checkpoint saved at step {st.step}")
        self._progress("training")
        stop = self.reporter.should_stop() if self.main else False
        if self.group:  # rank 0 decides for all, at this step: no rank waits alone in an exchange
            stop, st.stopped_early = self.group.agree(stop, st.stopped_early)
        if stop:
            if not saved and self.main:
                self._checkpoint()
            self.log(f"stopped at step {st.step}; the checkpoint lets the job resume from here")
            raise JobCancelled(f"stopped at step {self.state.step}")

    def _train_point(self) -> None:
        window = self.window
        if self.group and window["loss"] is not None:  # every rank comes here at the same steps
            self.group.sum(window["loss"])
        loss = (window["loss"] / window["batches"]).item() if window["batches"] else float("nan")
        self.last_loss = loss
        values = {"loss": loss, "learning_rate": self.scheduler.get_last_lr()[0],
                  "samples_per_s": window["samples"] / max(window["seconds"], 1e-9)}
        self.reporter.metrics(self.state.step, round(self.state.epochs_done, 4), "train", values)
        self.window = {"loss": None, "batches": 0, "samples": 0, "seconds": 0.0}

    def _evaluate(self) -> None:
        from training.metrics import improved

        st, hp = self.state, self.hp
        self._progress("evaluating", force=True)
        metrics, per_type = self.task.evaluate(self.model, self.tokenizer, self.data.eval, self.data.labels,
                                               max_length=self.max_length, batch_size=hp.eval_batch_size,
                                               device=self.device)
        metrics = {k: float(v) for k, v in metrics.items() if v is not None}
        epoch = round(st.epochs_done, 4)
        st.history.append({"step": st.step, "epoch": epoch, **metrics})
        self.latest_eval = metrics
        self.reporter.metrics(st.step, epoch, "eval", metrics)
        value, better = metrics[self.task.main], improved(metrics[self.task.main], st.best, self.task.higher)
        if value == st.best and "loss" in metrics:  # a tie (e.g. F1 0 early on): the lower loss wins
            better = metrics["loss"] < next(h for h in st.history if h["step"] == st.best_step).get("loss", math.inf)
        if better:
            st.best, st.best_step, st.bad_evals, st.per_type = value, st.step, 0, per_type
            self._save_best()
        else:
            st.bad_evals += 1
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self.log(f"eval at step {st.step} (epoch {epoch:.2f}): {shown}"
                 + (" - new best, saved to best/" if better else f" - best is still step {st.best_step}"))
        if hp.early_stopping and st.bad_evals >= hp.early_stopping:
            st.stopped_early = True
            self.log(f"early stopping: {st.bad_evals} evaluations without a better {self.task.main}")

    def _save_best(self) -> None:
        from training.models import save_model

        self._progress("saving", force=True)
        meta = {"task": self.spec.task, "labels": self.data.labels, "max_length": self.max_length,
                "text_field": self.spec.data.text_field, "label_field": self.spec.data.label_field,
                "base_model": self.spec.base_model, "lora": self.task.lora, "step": self.state.step,
                "base": {"folder": str(self.base.folder), "gguf": self.base.gguf}}
        save_model(self.model, self.tokenizer, self.run_dir / BEST, meta)

    def _checkpoint(self) -> None:
        from training.models import save_checkpoint

        self._progress("saving", force=True)
        self._account()
        save_checkpoint(self.run_dir / CHECKPOINT, asdict(self.state), self.model, self.optimizer, self.scheduler)

    # -- reporting and the end -----------------------------------------------------------------

    def _account(self) -> None:
        now = time.monotonic()
        self.state.train_seconds += now - self.mark
        self.mark = now

    def _progress(self, phase: str, force: bool = False) -> None:
        now = time.monotonic()
        if not self.main or (not force and now - self.last_progress < self.every):
            return
        self.last_progress = now
        st, session = self.state, self.session
        rate = session["samples"] / session["seconds"] if session["seconds"] else None
        per_step = (now - session["began"]) / session["steps"] if session["steps"] else None
        eta = None if per_step is None else round(per_step * max(0, self.total_steps - st.step), 1)
        self.reporter.progress({
            "phase": phase, "step": st.step, "total_steps": self.total_steps, "epoch": round(st.epochs_done, 3),
            "epochs": self.hp.epochs, "loss": self.last_loss, "samples_per_s": rate, "eta_s": eta,
            "device": self.device_name, "gpu_memory_mb": gpu_memory_mb(self.device), "best": st.best,
            "eval": self.latest_eval})

    def _finish(self) -> dict:
        from training.models import save_checkpoint

        st, spec = self.state, self.spec
        if not self.main:
            return {}
        if not st.finished:
            self._account()
        best = next(h for h in st.history if h["step"] == st.best_step)
        final = {k: v for k, v in best.items() if k not in ("step", "epoch")}
        result = {"id": None, "name": spec.name, "task": spec.task, "base_model": spec.base_model,
                  "dataset": spec.data.train.name, "final": final, "best": {**final, "step": st.best_step},
                  "history": st.history, "per_type": st.per_type, "steps": st.step,
                  "epochs": round(st.epochs_done, 4), "train_seconds": round(st.train_seconds, 1),
                  "samples_per_s": round(st.samples / st.step_seconds, 2) if st.step_seconds else None,
                  "stopped_early": st.stopped_early, "device": self.device_name,
                  "model_dir": str(self.run_dir / BEST)}
        if self.data.test is not None:
            result["test"] = self._test()
        write_json(self.run_dir / METRICS, result)
        # The finished state alone: the weights and optimizer are no longer needed (best/ stays).
        st.finished = True
        save_checkpoint(self.run_dir / CHECKPOINT, asdict(st))
        self._progress("done", force=True)
        self.log(f"done: {st.step} steps in {st.train_seconds:.0f} s; best {self.task.main} "
                 f"{st.best:.4f} at step {st.best_step}; model in {self.run_dir / BEST}")
        return result

    def _test(self) -> dict:
        from training.models import load_trained

        self._progress("evaluating", force=True)
        self.model = None  # the best model is reloaded from disk, exactly as predict will see it
        model, tokenizer, meta = load_trained(self.run_dir / BEST, self.device)
        metrics, per_type = self.task.evaluate(model, tokenizer, self.data.test, self.data.labels,
                                               max_length=meta["max_length"], batch_size=self.hp.eval_batch_size,
                                               device=self.device)
        metrics = {k: float(v) for k, v in metrics.items() if v is not None}
        self.reporter.metrics(self.state.step, round(self.state.epochs_done, 4), "test", metrics)
        self.log("test (" + self.spec.data.test.name + "): " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        return {**metrics, "per_type": per_type} if per_type else metrics
