"""Data parallelism (`[train] gpus = 2`) for real on CPU: two gloo ranks under torchrun, started by
`python -m training.child` exactly as the worker starts every job. The same small NCBI-disease job
runs with one process and with two; their results must agree, rank 0 alone must have written
metrics, log and checkpoints, and a cancel must stop both ranks.

The comparison runs the bundled MiniLM with its dropout set to 0 (a model folder with the same
weights and a config that says so): the two runs see the same global batches, steps and schedule,
and each rank's loss is weighted by its share of the batch's labelled tokens, so without dropout's
random masks the only difference left is the order of float sums (gloo adds the ranks' gradients;
one process sums over the whole batch). Their losses must then agree to 1e-3 relative, far tighter
than what a bug in sharding or weighting gives (a rank's half batch alone, or unweighted halves,
moves the step-1 loss by percents). With dropout (the cancel test and bench/train_ddp.py), the
masks differ between the runs and the curves drift apart like two seeds' do.

Plus quick checks of the pieces (sharding, thread split, the torchrun command, the spec key)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from training.distributed import Group, rank_threads, target_count, torchrun_command
from training.runner import checkpoint_step
from training.service import LocalService
from training.settings import TrainingSettings
from training.spec import parse_spec
from training.store import CANCELLED, SUCCEEDED
from training.worker import Worker

from tests.training.jobs import ner_slice, ner_spec

def job_spec(name: str, model, epochs: int, steps: int, eval_every: int, gpus: int) -> str:
    return ner_spec(name, base_model=str(model), epochs=epochs, max_steps=steps, learning_rate=5e-4,
                    eval_every=eval_every, seed=42, gpus=gpus)

STEPS = 40  # 320 sentences / 8 = 40 steps: one epoch, evaluated at steps 20 and 40


# -- the pieces -------------------------------------------------------------------------------

def test_shards_of_a_batch_make_up_the_batch_and_pad_alike():
    batch = [7, 3, 9, 1, 4, 8, 2]  # length-sorted in the runner, longest first
    shards = [Group(rank, 2, rank, None, "gloo", None).shard(batch) for rank in range(2)]
    assert shards == [[7, 9, 4, 2], [3, 1, 8]]
    assert sorted(shards[0] + shards[1]) == sorted(batch)
    assert [Group(r, 3, r, None, "gloo", None).shard([5, 6]) for r in range(3)] == [[5], [6], []]


def test_the_torchrun_command_threads_and_target_counts():
    command = torchrun_command(4, ["db", "7", "run", "auto", "8"])
    assert command[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4",
                           "-m", "training.child", "db", "7", "run", "auto", "8"]
    assert rank_threads(8, 2) == 4 and rank_threads(1, 2) == 1 and rank_threads(0, 1) == (os.cpu_count() or 1)
    assert target_count("token-classification", ([1, 2, 3, 4], [-100, 0, 1, -100])) == 2
    assert target_count("text-classification", ([1, 2, 3], 1)) == 1
    assert target_count("causal-lm", ([1, 2, 3, 4], None)) == 3


def test_gpus_is_a_train_key_of_at_least_one(tmp_path):
    (tmp_path / "t.tsv").write_text("Colon\tB-Disease\ncancer\tI-Disease\n")
    text = 'task = "token-classification"\n[data]\ntrain = "t.tsv"\n[train]\n'
    assert parse_spec(text, base_dir=tmp_path, data_roots=[tmp_path]).train.gpus == 1
    assert parse_spec(text + "gpus = 2\n", base_dir=tmp_path, data_roots=[tmp_path]).train.gpus == 2
    with pytest.raises(Exception, match="gpus"):
        parse_spec(text + "gpus = 0\n", base_dir=tmp_path, data_roots=[tmp_path])


# -- for real: two processes under torchrun ----------------------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory, data_dir) -> TrainingSettings:
    """320 training sentences and 64 for evaluation; jobs get 2 CPU threads (1 per rank with 2)."""
    root = tmp_path_factory.mktemp("ddp")
    ner_slice(data_dir, root, train=320, devel=64)
    specs = root / "specs"
    specs.mkdir()
    model = without_dropout(root / "minilm-no-dropout")
    for gpus in (1, 2):
        (specs / f"gpus{gpus}.toml").write_text(job_spec(name=f"gpus{gpus}", model=model, epochs=2, steps=STEPS,
                                                            eval_every=20, gpus=gpus))
    (specs / "long.toml").write_text(job_spec(name="long", model="default", epochs=50, steps=0, eval_every=0,
                                                 gpus=2))
    return TrainingSettings(data_roots=[root / "data"], specs_dir=specs, runs_dir=root / "runs",
                            database=root / "index" / "training.sqlite", threads=2, poll_seconds=0.2)


def without_dropout(folder: Path) -> Path:
    """The bundled MiniLM (its files linked) with a config whose dropout probabilities are 0."""
    import json

    from core.models import default_encoder

    source = Path(default_encoder())
    folder.mkdir()
    for item in source.iterdir():
        if item.name != "config.json":
            (folder / item.name).symlink_to(item)
    config = json.loads((source / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def run(lab: TrainingSettings, preset: str):
    """Submit a preset and run it in a child process as the worker does; (job, seconds)."""
    service = LocalService(lab)
    job = service.submit_preset(preset)
    began = time.monotonic()
    done = Worker(lab).run_now(job.id)
    return done, time.monotonic() - began


def curve(lab: TrainingSettings, job_id: int, kind: str, name: str) -> list[tuple[int, float]]:
    return [(p.step, p.value) for p in LocalService(lab).metrics(job_id) if p.kind == kind and p.name == name]


@pytest.mark.slow
def test_two_processes_train_like_one(lab):
    one, one_s = run(lab, "gpus1")
    two, two_s = run(lab, "gpus2")
    service = LocalService(lab)
    assert one.state == SUCCEEDED, service.logs(one.id)
    assert two.state == SUCCEEDED, service.logs(two.id, lines=400)
    print(f"\n1 process: {one_s:.1f} s; 2 processes: {two_s:.1f} s")

    # The same steps, evaluations and learning-rate schedule.
    assert one.result["steps"] == two.result["steps"] == STEPS
    assert [h["step"] for h in one.result["history"]] == [h["step"] for h in two.result["history"]] == [20, 40]
    assert curve(lab, one.id, "train", "learning_rate") == curve(lab, two.id, "train", "learning_rate")

    # Training loss, step by step: the same global batches, so the same curve up to float order.
    loss1, loss2 = curve(lab, one.id, "train", "loss"), curve(lab, two.id, "train", "loss")
    assert [s for s, _ in loss1] == [s for s, _ in loss2] == list(range(1, STEPS + 1))
    gaps = [abs(a - b) / a for (_, a), (_, b) in zip(loss1, loss2)]
    print(f"train loss 1 vs 2: step 1 {loss1[0][1]:.6f} / {loss2[0][1]:.6f}, step {STEPS} {loss1[-1][1]:.6f} / "
          f"{loss2[-1][1]:.6f}, largest relative gap {max(gaps):.2e}")
    assert max(gaps) < 1e-3
    assert loss2[-1][1] < 0.5 * loss2[0][1]  # and it learns

    # Final metrics (the last evaluation, on the same 64 devel sentences).
    last1, last2 = one.result["history"][-1], two.result["history"][-1]
    print(f"final eval 1 vs 2: loss {last1['loss']:.6f} / {last2['loss']:.6f}, "
          f"F1 {last1['f1']:.4f} / {last2['f1']:.4f}")
    assert abs(last1["loss"] - last2["loss"]) / last1["loss"] < 1e-3
    assert abs(last1["f1"] - last2["f1"]) <= 0.01  # one entity of the ~70 may flip on a rounding
    assert last2["f1"] > 0.2  # it found entities, so the F1s compare something

    # Rank 0 alone wrote: one point per step and metric, one line per evaluation, one run folder.
    points = service.metrics(two.id)
    keys = [(p.step, p.kind, p.name) for p in points]
    assert len(keys) == len(set(keys))
    assert len([k for k in keys if k[1:] == ("train", "loss")]) == STEPS
    log = service.logs(two.id, lines=1000)
    assert "data parallel: 2 processes under torchrun (gloo" in log
    assert log.count("eval at step 20 ") == 1 and log.count("succeeded") == 1
    run_dir = service.run_dir(two.id)
    assert sorted(p.name for p in run_dir.iterdir()) == ["best", "checkpoint", "log.txt", "metrics.json"]
    assert (run_dir / "best" / "model.safetensors").is_file()
    assert two.result["samples_per_s"] > 0 and two.result["device"] == "cpu"


def ranks_of(run_dir: Path) -> list[int]:
    """Processes that are ranks (LOCAL_RANK set) of the job whose run folder is `run_dir`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(run_dir).encode() in cmdline and any(v.startswith(b"LOCAL_RANK=") for v in environ):
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for(check, timeout: float = 120.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s")


@pytest.mark.slow
def test_a_cancel_stops_both_ranks_and_ends_the_job_cancelled(lab):
    service = LocalService(lab)
    worker = Worker(lab).start()
    try:
        job = service.submit_preset("long")
        run_dir = service.run_dir(job.id)
        wait_for(lambda: (service.get(job.id).progress or {}).get("step", 0) >= 3)
        ranks = ranks_of(run_dir)
        assert len(ranks) == 2, ranks
        service.cancel(job.id)
        done = wait_for(lambda: (j := service.get(job.id)).finished and j, timeout=60)
    finally:
        worker.stop(timeout=30)
    assert done.state == CANCELLED, service.logs(job.id, lines=400)
    assert wait_for(lambda: not any(alive(pid) for pid in ranks), timeout=10)
    log = service.logs(job.id, lines=1000)
    stopped = int(log.split("stopped at step ")[1].split(";")[0])
    assert checkpoint_step(run_dir) == stopped and stopped < 1000
    assert log.count("cancelled") == 1 and "Traceback" not in log
