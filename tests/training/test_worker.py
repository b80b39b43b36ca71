"""The worker with real jobs: a tiny NER run on a slice of NCBI-disease, end to end on CPU, in
child processes; cancel; a child killed mid-run; a worker killed mid-run; a crashing job that
leaves the worker running; the CLI (`submit --wait`, `status`, `logs`, `predict`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from bot.cli import main
from training.runner import checkpoint_step
from training.service import LocalService
from training.settings import TrainingSettings
from training.store import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED
from training.worker import Worker

from tests.training.jobs import ner_slice, ner_spec, wait_for

pytestmark = pytest.mark.slow

def job_spec(name: str, epochs: int, eval_every: int) -> str:
    return ner_spec(name, epochs=epochs, learning_rate=1e-4, eval_every=eval_every, seed=7)



@pytest.fixture
def lab(tmp_path, data_dir):
    """A lab folder: config.toml, data/ (a slice of NCBI-disease) and specs/ (presets)."""
    ner_slice(data_dir, tmp_path, train=120, devel=20)
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "tiny.toml").write_text(job_spec(name="tiny", epochs=1, eval_every=5))
    (specs / "long.toml").write_text(job_spec(name="long", epochs=4, eval_every=5))
    (specs / "broken.toml").write_text(job_spec(name="broken", epochs=1, eval_every=5)
                                       .replace("../data/devel.tsv", "../data/unknown-labels.tsv"))
    (tmp_path / "data" / "unknown-labels.tsv").write_text("Colon\tB-Gene\ncancer\tI-Gene\n")
    (tmp_path / "config.toml").write_text('[training]\nthreads = 1\npoll_seconds = 0.2\n')
    settings = TrainingSettings(data_roots=[tmp_path / "data"], specs_dir=specs, runs_dir=tmp_path / "runs",
                                database=tmp_path / "index" / "training.sqlite", threads=1, poll_seconds=0.2)
    return settings


def until_checkpoint(service: LocalService, job_id: int, step: int = 5) -> int:
    """Wait until the job has saved a checkpoint at `step` or later; returns its step."""
    run_dir = service.run_dir(job_id)
    return wait_for(lambda: (checkpoint_step(run_dir) or 0) >= step and checkpoint_step(run_dir))


@pytest.fixture
def worker(lab):
    changes = []
    running = Worker(lab, on_change=changes.append).start()
    running.changes = changes
    yield running
    running.stop(timeout=30)


def test_a_tiny_ner_job_runs_end_to_end_in_a_child_process(lab, worker):
    service = LocalService(lab)
    job = service.submit_preset("tiny")
    done = wait_for(lambda: (j := service.get(job.id)).finished and j)
    assert done.state == SUCCEEDED, service.logs(job.id)
    assert done.pid is None and done.attempts == 1
    assert 0.0 <= done.result["best"]["f1"] <= 1.0 and "Disease" in done.result["per_type"]
    assert json.loads((service.run_dir(job.id) / "metrics.json").read_text())["best"] == done.result["best"]
    points = service.metrics(job.id)
    assert {p.name for p in points if p.kind == "train"} >= {"loss"}
    assert [p.step for p in points if p.kind == "eval" and p.name == "f1"] == [5, 10, 15]
    # the child records its success; the worker reports the change when it reaps the child
    wait_for(lambda: SUCCEEDED in {c.state for c in worker.changes if c.id == job.id}, timeout=10)
    assert {c.state for c in worker.changes if c.id == job.id} == {RUNNING, SUCCEEDED}
    assert "succeeded" in service.logs(job.id)
    assert (service.run_dir(job.id) / "best").is_dir()


def test_cancel_stops_a_running_job_and_the_worker_goes_on(lab, worker):
    service = LocalService(lab)
    long = service.submit_preset("long")
    until_checkpoint(service, long.id)
    service.cancel(long.id)
    cancelled = wait_for(lambda: (j := service.get(long.id)).finished and j, timeout=60)
    assert cancelled.state == CANCELLED and cancelled.progress["step"] < 90
    broken = service.submit_preset("broken")  # fails inside its child: the worker must survive it
    failed = wait_for(lambda: (j := service.get(broken.id)).finished and j)
    assert failed.state == FAILED and "B-Gene" in failed.error, failed.error
    assert "B-Gene" in service.logs(broken.id)
    tiny = service.submit_preset("tiny")
    assert wait_for(lambda: (j := service.get(tiny.id)).finished and j).state == SUCCEEDED


def test_a_child_killed_mid_run_fails_clearly_and_resumes_from_its_checkpoint(lab, worker):
    service = LocalService(lab)
    job = service.submit_preset("long")
    saved = until_checkpoint(service, job.id, step=10)
    os.kill(service.get(job.id).pid, signal.SIGKILL)  # what the out-of-memory killer does
    failed = wait_for(lambda: (j := service.get(job.id)).finished and j, timeout=30)
    assert failed.state == FAILED and "SIGKILL" in failed.error and "resume" in failed.error
    service.resume(job.id)
    done = wait_for(lambda: (j := service.get(job.id)).finished and j)
    assert done.state == SUCCEEDED and done.attempts == 2, service.logs(job.id)
    assert f"from step {saved}" in service.logs(job.id, lines=1000) or f"at step {saved}" in service.logs(job.id, 1000)
    steps = [p.step for p in service.metrics(job.id) if p.kind == "eval" and p.name == "f1"]
    assert steps == sorted(set(steps)) and steps[-1] == done.result["steps"]  # no step reported twice


def test_a_worker_killed_mid_run_leaves_a_job_the_next_worker_resumes(lab):
    """`labmate train submit --wait` runs the job under the CLI's process; kill it and its child
    (a crash of the whole machine), then start a worker: it requeues the job, which resumes."""
    service = LocalService(lab)
    env = {**os.environ, "LABMATE_TRAINING__DATA_ROOTS": json.dumps([str(p) for p in lab.data_roots]),
           "LABMATE_TRAINING__DATABASE": str(lab.database), "LABMATE_TRAINING__RUNS_DIR": str(lab.runs_dir),
           "LABMATE_TRAINING__SPECS_DIR": str(lab.specs_dir)}
    cli = subprocess.Popen([sys.executable, "-m", "bot.cli", "--config", str(lab.specs_dir.parent / "config.toml"),
                            "train", "submit", "long", "--wait"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, start_new_session=True)
    try:
        job_id = wait_for(lambda: service.list() and service.list()[0].id, timeout=60)
        until_checkpoint(service, job_id, step=5)
        child = service.get(job_id).pid
        os.killpg(cli.pid, signal.SIGKILL)
        os.kill(child, signal.SIGKILL)
        cli.wait()
        assert service.get(job_id).state == RUNNING  # nobody was left to record anything
        worker = Worker(lab).start()
        try:
            assert service.get(job_id).state in (QUEUED, RUNNING)
            done = wait_for(lambda: (j := service.get(job_id)).finished and j)
        finally:
            worker.stop(timeout=30)
        assert done.state == SUCCEEDED and done.attempts == 2, service.logs(job_id)
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)


def test_cli_submit_wait_status_logs_predict(lab, tmp_path, data_dir):
    runner = CliRunner()
    env = {"LABMATE_TRAINING__DATA_ROOTS": json.dumps([str(p) for p in lab.data_roots]),
           "LABMATE_TRAINING__DATABASE": str(lab.database), "LABMATE_TRAINING__RUNS_DIR": str(lab.runs_dir),
           "LABMATE_TRAINING__SPECS_DIR": str(lab.specs_dir)}
    config = ["--config", str(tmp_path / "config.toml")]
    result = runner.invoke(main, [*config, "train", "submit", str(lab.specs_dir / "tiny.toml"), "--wait", "--json"],
                           env=env)
    assert result.exit_code == 0, result.output
    job = json.loads(result.output)
    assert job["state"] == SUCCEEDED and job["result"]["final"]["f1"] >= 0
    status = runner.invoke(main, [*config, "train", "status", "--all"], env=env)
    assert f"{job['id']:>4}  succeeded" in status.output
    logs = runner.invoke(main, [*config, "train", "logs", str(job["id"])], env=env)
    assert "succeeded" in logs.output
    devel = lab.data_roots[0] / "devel.tsv"
    out = tmp_path / "predicted.tsv"
    predicted = runner.invoke(main, [*config, "train", "predict", str(job["id"]), str(devel), "--output", str(out)],
                              env=env)
    assert predicted.exit_code == 0, predicted.output
    gold = devel.read_text().splitlines()
    lines = out.read_text().splitlines()
    assert len(lines) == len(gold)
    for given, written in zip(gold, lines):
        assert (given == "") == (written == "")
        if given:
            token, label = written.split("\t")
            assert token == given.split("\t")[0] and label in ("O", "B-Disease", "I-Disease")
    bad = runner.invoke(main, [*config, "train", "submit", str(data_dir / "README.md")], env=env)
    assert bad.exit_code == 1 and "not valid TOML" in bad.output
