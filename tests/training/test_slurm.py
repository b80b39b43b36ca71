"""The Slurm backend: the sbatch script, Slurm's answers read right (captured from the test
cluster), and real jobs on a one-node Slurm cluster (tests/slurm.py) through the Worker: a tiny
NER job to `succeeded` (followed by a second worker after the first stops), a cancel (scancel),
a job killed from outside Slurm's way, and jobs Slurm refuses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bot.config import load_settings
from core.errors import ConfigError
from training.backends import EXIT_INTERRUPTED, Handle, LaunchError
from training.backends.slurm import (
    SCRIPT, SlurmBackend, parse_sbatch, parse_scontrol, parse_squeue, slurm_exit, state_from_log)
from training.runner import checkpoint_step
from training.service import LocalService
from training.settings import TrainingSettings
from training.spec import SpecError, parse_spec
from training.store import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Job
from training.worker import Worker

from tests.training.jobs import ner_slice, ner_spec, wait_for

# `scontrol show -o job ID` as the test cluster (slurm-wlm 22.05) printed it, cut after TimeLimit.
SCONTROL = {
    "completed": "JobId=2 JobName=ok UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901758 Nice=0 "
                 "Account=(null) QOS=(null) JobState=COMPLETED Reason=None Dependency=(null) Requeue=1 Restarts=0 "
                 "BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:03 TimeLimit=UNLIMITED",
    "exit 7": "JobId=3 JobName=fail.sh UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901757 Nice=0 "
              "Account=(null) QOS=(null) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) Requeue=1 "
              "Restarts=0 BatchFlag=1 Reboot=0 ExitCode=7:0 RunTime=00:00:00 TimeLimit=UNLIMITED",
    "scancel": "JobId=6 JobName=term.sh UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901754 Nice=0 "
               "Account=(null) QOS=(null) JobState=CANCELLED Reason=None Dependency=(null) Requeue=0 Restarts=0 "
               "BatchFlag=1 Reboot=0 ExitCode=75:0 RunTime=00:00:02 TimeLimit=UNLIMITED",
    "kill": "JobId=9 JobName=k.sh UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901751 Nice=0 "
            "Account=(null) QOS=(null) JobState=FAILED Reason=JobLaunchFailure Dependency=(null) Requeue=0 "
            "Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:9 RunTime=00:00:02 TimeLimit=UNLIMITED",
    "timeout": "JobId=1 JobName=timeout.sh UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901759 "
               "Nice=0 Account=(null) QOS=(null) JobState=TIMEOUT Reason=TimeLimit Dependency=(null) Requeue=1 "
               "Restarts=0 BatchFlag=1 Reboot=0 ExitCode=75:0 RunTime=00:01:21 TimeLimit=00:01:00",
}
# What slurmstepd appended to the job's output file.
STEPD_TIMEOUT = "slurmstepd-vm: error: *** JOB 1 ON vm CANCELLED AT 2026-12-05T04:53:32 DUE TO TIME LIMIT ***\n"
STEPD_CANCEL = "slurmstepd-vm: error: *** JOB 9 ON vm CANCELLED AT 2026-12-05T04:52:46 ***\n"

def job_spec(name: str, epochs: int, max_steps: int, slurm: str) -> str:
    return ner_spec(name, slurm=slurm, epochs=epochs, learning_rate=1e-4, eval_every=5, max_steps=max_steps, seed=7)



def job_with(spec: dict, job_id: int = 12, name: str = "tiny ner") -> Job:
    return Job(id=job_id, name=name, task="token-classification", state=RUNNING, spec=spec, spec_text="",
               created_at=0.0, updated_at=0.0)


# -- the script and the settings (fast) ----------------------------------------------------------

def test_the_script_has_the_configured_options_and_runs_the_child_unchanged(tmp_path):
    settings = TrainingSettings(
        backend="slurm", database=tmp_path / "jobs.sqlite", runs_dir=tmp_path / "runs", threads=0, device="cuda",
        slurm={"partition": "gpu", "account": "nlp-lab", "time_limit": "4:00:00", "gpus": 2, "gpu_type": "a100",
               "cpus": 8, "mem": "32g", "qos": "normal", "extra": ["--constraint=ib", "--exclude=node7"],
               "setup": ["module load cuda/12.4"]})
    backend = SlurmBackend(settings, settings.database)
    run_dir = tmp_path / "runs" / "job-12"
    text = backend.script(job_with({"train": {"gpus": 1}}), run_dir)
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    sbatch = [line.removeprefix("#SBATCH ") for line in lines if line.startswith("#SBATCH ")]
    assert sbatch == ["--job-name=labmate-12", f"--output={run_dir / 'log.txt'}", "--open-mode=append",
                      f"--chdir={Path(__file__).resolve().parents[2]}", "--no-requeue", "--partition=gpu",
                      "--account=nlp-lab", "--qos=normal", "--time=4:00:00", "--cpus-per-task=8", "--mem=32G",
                      "--gres=gpu:a100:2", "--constraint=ib", "--exclude=node7"]
    assert "module load cuda/12.4" in lines
    # the same child as the local backend: this python, the job database, job id, run dir, device, threads
    assert lines[-1] == (f"exec {sys.executable} -m training.child {settings.database.resolve()} 12 {run_dir} "
                         "cuda 8")
    # the spec's [slurm] table wins; gpus = 0 drops the GPU line; --gpus instead of --gres on request
    spec = {"slurm": {"partition": "short", "time_limit": "30", "gpus": 0, "extra": ["--nice=10"]}}
    options = backend.options(job_with(spec))
    assert options["partition"] == "short" and options["account"] == "nlp-lab" and options["extra"] == ["--nice=10"]
    override = [line for line in backend.script(job_with(spec), run_dir).splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --time=30" in override and not any("gpu" in line for line in override)
    settings.slurm.gpu_option = "gpus"
    assert "#SBATCH --gpus=a100:2" in backend.script(job_with({}), run_dir)
    # a data-parallel job (train.gpus = 4, training/child.py runs torchrun) asks for as many GPUs
    assert "#SBATCH --gpus=a100:4" in backend.script(job_with({"train": {"gpus": 4}}), run_dir)


def test_slurm_settings_and_the_spec_table_are_validated(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[training]\nbackend = "slurm"\n[training.slurm]\npartition = "gpu"\ntime_limit = "2:00:00"\n'
                      'gpus = 1\nmem = "16G"\n')
    settings = load_settings(config, env={})
    assert settings.training.backend == "slurm" and settings.training.slurm.partition == "gpu"
    for bad, named in (('partiton = "gpu"', "training.slurm.partiton"), ('time_limit = "2h"', "time_limit"),
                       ('extra = ["constraint=a100"]', "extra"), ('mem = "lots"', "mem")):
        config.write_text(f'[training]\nbackend = "slurm"\n[training.slurm]\n{bad}\n')
        with pytest.raises(ConfigError, match=named):
            load_settings(config, env={})
    config.write_text('[training]\nbackend = "kubernetes"\n')
    with pytest.raises(ConfigError, match="backend"):
        load_settings(config, env={})
    (tmp_path / "train.tsv").write_text("Colon\tB-Disease\n")
    base = job_spec(name="x", epochs=1, max_steps=0, slurm="[slurm]\n").replace("../data/", "").replace(
        'eval = "devel.tsv"\n', "")
    spec = parse_spec(base + 'partition = "short"\ngpus = 2\n', base_dir=tmp_path, data_roots=[tmp_path])
    assert spec.slurm.partition == "short" and spec.slurm.gpus == 2 and spec.slurm.account is None
    with pytest.raises(SpecError, match="slurm.nodes"):
        parse_spec(base + "nodes = 2\n", base_dir=tmp_path, data_roots=[tmp_path])
    with pytest.raises(SpecError, match="slurm.time_limit"):
        parse_spec(base + 'time_limit = "soon"\n', base_dir=tmp_path, data_roots=[tmp_path])


def test_slurms_answers_are_read_right():
    assert parse_sbatch("17\n") == "17" and parse_sbatch("17;cluster\n") == "17"
    with pytest.raises(LaunchError):
        parse_sbatch("Submitted batch job 17\n")
    assert parse_squeue("RUNNING\n") == "RUNNING" and parse_squeue("") is None
    info = parse_scontrol(SCONTROL["timeout"])
    assert (info["JobState"], info["ExitCode"], info["Reason"], info["TimeLimit"]) == \
        ("TIMEOUT", "75:0", "TimeLimit", "00:01:00")
    ok = slurm_exit("2", "COMPLETED", "0:0", None)
    assert ok.code == 0 and not ok.forced
    failed = slurm_exit("3", *(parse_scontrol(SCONTROL["exit 7"])[k] for k in ("JobState", "ExitCode")), None)
    assert failed.code == 7 and "exited with code 7" in failed.error and not failed.forced
    killed = slurm_exit("9", "FAILED", parse_scontrol(SCONTROL["kill"])["ExitCode"], None)
    assert killed.code == -9 and "SIGKILL" in killed.error and "resume" in killed.error
    # Slurm's SIGTERM made the child put itself back in the queue (exit 75): the scheduler's end wins
    timeout = slurm_exit("1", "TIMEOUT", "75:0", "00:01:00")
    assert timeout.forced and timeout.code == EXIT_INTERRUPTED and "time limit (00:01:00)" in timeout.error
    outside = slurm_exit("6", parse_scontrol(SCONTROL["scancel"])["JobState"], "75:0", None)
    assert outside.forced and "cancelled in Slurm from outside labmate" in outside.error
    for state, words in (("PREEMPTED", "preempted"), ("NODE_FAIL", "node failed"), ("OUT_OF_MEMORY", "memory")):
        ended = slurm_exit("5", state, "0:9", None)
        assert ended.forced and words in ended.error and "resume" in ended.error
    # once slurmctld has forgotten the job, slurmstepd's line in the log still tells
    assert state_from_log("step 10\n" + STEPD_TIMEOUT + "got TERM\n", "1") == "TIMEOUT"
    assert state_from_log(STEPD_CANCEL, "9") == "CANCELLED" and state_from_log(STEPD_CANCEL, "8") is None
    assert state_from_log("slurmstepd: error: Detected 1 oom_kill event in StepId=5.batch. Some of the step "
                          "tasks have been OOM Killed.\n", "5") == "OUT_OF_MEMORY"


# -- real jobs on a one-node cluster --------------------------------------------------------------

@pytest.fixture
def lab(tmp_path, data_dir, slurm_cluster) -> TrainingSettings:
    """A lab folder with a slice of NCBI-disease and presets, whose jobs go to the test cluster."""
    ner_slice(data_dir, tmp_path, train=60, devel=10)
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "tiny.toml").write_text(job_spec(name="tiny", epochs=1, max_steps=6, slurm=""))
    (specs / "long.toml").write_text(job_spec(name="long", epochs=20, max_steps=0, slurm=""))
    (specs / "gpu.toml").write_text(job_spec(name="gpu", epochs=1, max_steps=2, slurm="[slurm]\ngpus = 1\n"))
    (specs / "nowhere.toml").write_text(job_spec(name="nowhere", epochs=1, max_steps=2,
                                                    slurm='[slurm]\npartition = "nowhere"\n'))
    return TrainingSettings(
        backend="slurm", data_roots=[tmp_path / "data"], specs_dir=specs, runs_dir=tmp_path / "runs",
        database=tmp_path / "index" / "training.sqlite", threads=1, device="cpu", poll_seconds=0.2,
        cancel_grace_seconds=20, slurm={"partition": "debug", "account": "nlp-lab", "time_limit": "15:00"})


def slurm_state(cluster, job: Job) -> str:
    return parse_scontrol(cluster.run("scontrol", "show", "-o", "job", Handle.parse(job.handle)[1]).stdout)["JobState"]


def running_in_slurm(cluster, service, job_id) -> Job | None:
    job = service.get(job_id)
    if job.handle and cluster.run("squeue", "-h", "-j", Handle.parse(job.handle)[1], "-o", "%T").stdout.strip() \
            == "RUNNING" and job.progress.get("step"):
        return job
    return None


@pytest.mark.slow
def test_a_tiny_job_runs_on_slurm_and_a_restarted_worker_follows_it(lab, slurm_cluster):
    service = LocalService(lab)
    first = Worker(lab).start()
    job = service.submit_preset("tiny")
    try:
        started = wait_for(lambda: (j := service.get(job.id)).handle and j, timeout=60)
        assert started.handle.startswith("slurm:") and started.pid is None
    finally:
        first.stop()  # a bot restart: the Slurm job runs on, and the next worker takes it over
    changes = []
    second = Worker(lab, on_change=changes.append).start()
    try:
        done = wait_for(lambda: (j := service.get(job.id)).finished and j)
        wait_for(lambda: job.id not in second.running, timeout=30)
    finally:
        second.stop()
    assert done.state == SUCCEEDED, service.logs(job.id) + slurm_cluster.logs()
    assert done.attempts == 1 and done.handle == started.handle
    assert done.worker == second.name  # the second worker adopted the running Slurm job
    assert slurm_state(slurm_cluster, done) == "COMPLETED"
    assert 0.0 <= done.result["best"]["f1"] <= 1.0 and done.result["steps"] == 6
    assert [p.step for p in service.metrics(job.id) if p.kind == "eval" and p.name == "f1"] == [5, 6]
    run_dir = service.run_dir(job.id)
    assert (run_dir / "best").is_dir() and (run_dir / "metrics.json").is_file()
    script = (run_dir / SCRIPT).read_text()
    for line in ("#SBATCH --partition=debug", "#SBATCH --account=nlp-lab", "#SBATCH --time=15:00",
                 f"#SBATCH --output={run_dir.resolve() / 'log.txt'}"):
        assert line in script
    assert "gpu" not in script  # the test node has none
    assert "succeeded" in service.logs(job.id)


@pytest.mark.slow
def test_cancel_scancels_the_job_and_it_ends_cancelled(lab, slurm_cluster):
    service = LocalService(lab)
    worker = Worker(lab).start()
    try:
        job = service.submit_preset("long")
        wait_for(lambda: (checkpoint_step(service.run_dir(job.id)) or 0) >= 5, timeout=180)
        service.cancel(job.id)
        cancelled = wait_for(lambda: (j := service.get(job.id)).finished and j, timeout=60)
        wait_for(lambda: job.id not in worker.running, timeout=30)
    finally:
        worker.stop()
    assert cancelled.state == CANCELLED and cancelled.error is None, service.logs(job.id)
    assert slurm_state(slurm_cluster, cancelled) == "CANCELLED"  # scancel, not the child alone
    assert "cancelled" in service.logs(job.id)


@pytest.mark.slow
def test_a_job_slurm_kills_or_refuses_ends_failed_with_slurms_reason(lab, slurm_cluster):
    service = LocalService(lab)
    worker = Worker(lab).start()
    try:
        # killed outright (what an administrator or a node's OOM killer does): nobody records its end but us
        killed = service.submit_preset("long")
        slurm_id = Handle.parse(wait_for(lambda: running_in_slurm(slurm_cluster, service, killed.id)).handle)[1]
        assert slurm_cluster.run("scancel", "--batch", "--signal=KILL", slurm_id).returncode == 0
        failed = wait_for(lambda: (j := service.get(killed.id)).finished and j, timeout=60)
        assert failed.state == FAILED and f"Slurm job {slurm_id}" in failed.error and "SIGKILL" in failed.error
        # cancelled in Slurm, not in labmate: the child checkpoints and queues itself, but the job fails
        outside = service.submit_preset("long")
        slurm_id = Handle.parse(wait_for(lambda: running_in_slurm(slurm_cluster, service, outside.id)).handle)[1]
        slurm_cluster.run("scancel", slurm_id)
        failed = wait_for(lambda: (j := service.get(outside.id)).state == FAILED and j, timeout=60)
        assert "cancelled in Slurm from outside labmate" in failed.error and "resume" in failed.error
        assert "interrupted" in service.logs(outside.id)  # the child saved a checkpoint first
        # resume continues it from that checkpoint, on Slurm again
        service.resume(outside.id)
        again = wait_for(lambda: (j := service.get(outside.id)).state == RUNNING and j.handle and j, timeout=30)
        assert again.attempts == 2 and Handle.parse(again.handle)[1] != slurm_id
        service.cancel(outside.id)
        assert wait_for(lambda: (j := service.get(outside.id)).finished and j, timeout=90).state == CANCELLED
        # refused at submission: the sbatch error is the job's error, and the worker goes on
        for preset, words in (("gpu", "Invalid generic resource"), ("nowhere", "invalid partition")):
            refused = service.submit_preset(preset)
            failed = wait_for(lambda: (j := service.get(refused.id)).finished and j, timeout=30)
            assert failed.state == FAILED and words.lower() in failed.error.lower(), failed.error
            assert failed.handle is None and (service.run_dir(refused.id) / SCRIPT).is_file()
    finally:
        worker.stop()
    assert not [j for j in service.list() if j.state in (QUEUED, RUNNING)]
