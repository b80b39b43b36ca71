"""`[training] backend = "slurm"`: each job is a Slurm batch job.

The job becomes `RUN_DIR/slurm-job.sh`, an sbatch script whose `#SBATCH` lines come from
`[training.slurm]` and the spec's `[slurm]` table, and which runs the same
`python -m training.child DATABASE JOB_ID RUN_DIR DEVICE THREADS` as the local backend (same
python, same project folder), its output appended to the run's log.txt. It is submitted with
`sbatch --parsable`; its state is followed with `squeue -h -j ID -o %T` and, once the job has
left squeue, `scontrol show -o job ID` (JobState, ExitCode, Reason).

Shared storage: runs_dir, the job database and the project (with its venv) must be on a
filesystem that the submit host and the nodes both see: the child writes progress, metrics
and its own end into the database, and its log, checkpoints and model into the run folder.
That is also what the worker relies on when Slurm no longer knows a job: without slurmdbd
`sacct` has nothing, and slurmctld forgets ended jobs after MinJobAge; the child's own record
in the database, then the slurmstepd line in log.txt ("CANCELLED ... DUE TO TIME LIMIT"), tell
how it ended.

Cancel: `scancel ID` sends SIGTERM (the child checkpoints and records itself cancelled); if it
has not ended within cancel_grace_seconds, `scancel --batch --signal=KILL ID` kills it. Slurm
also sends SIGTERM before a time limit, preemption or an `scancel` from outside; the child then
puts itself back in the queue, and the worker records the job failed with Slurm's reason
instead (`resume` continues it). Jobs keep running when the worker stops; the next worker
follows them (`attach`).
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from training.backends import Exit, Handle, LaunchError, child_command
from training.backends.local import PROJECT, SIGNALS
from training.events import tail
from training.settings import SlurmJobOptions, TrainingSettings
from training.store import Job

log = logging.getLogger("labmate.training")
SCRIPT = "slurm-job.sh"
# squeue states of a job that has not ended yet (COMPLETING: its processes are still stopping).
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_FED",
          "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
RESUME = "`labmate train resume` continues it from its last checkpoint"
# Ended states the scheduler caused: the job fails with this reason even if its child put itself
# back in the queue when Slurm's SIGTERM came.
FORCED = {
    "TIMEOUT": "reached its Slurm time limit{limit}; raise time_limit ([training.slurm] or the spec's [slurm])",
    "PREEMPTED": "was preempted by Slurm (a job of higher priority took its resources)",
    "NODE_FAIL": "was ended by Slurm because its node failed",
    "BOOT_FAIL": "was ended by Slurm because its node failed to boot",
    "OUT_OF_MEMORY": "ran out of memory (Slurm's limit; raise mem in [training.slurm] or the spec's [slurm])",
    "DEADLINE": "reached its Slurm deadline",
    "CANCELLED": "was cancelled in Slurm from outside labmate (scancel by its owner or an administrator)",
}
LOG_REASONS = {"TIME LIMIT": "TIMEOUT", "PREEMPTION": "PREEMPTED", "NODE FAILURE": "NODE_FAIL"}


class SlurmError(Exception):
    """A Slurm command failed (the controller is unreachable, a command is missing)."""


class SlurmBackend:
    name = "slurm"
    outlives_worker = True

    def __init__(self, settings: TrainingSettings, store_path: Path):
        self.settings, self.slurm, self.store_path = settings, settings.slurm, Path(store_path).resolve()
        self._warned = 0.0

    # -- the protocol ----------------------------------------------------------------------------

    def launch(self, job: Job, run_dir: Path) -> Handle:
        run_dir = Path(run_dir).resolve()
        script = run_dir / SCRIPT
        script.write_text(self.script(job, run_dir))
        try:
            done = self._command("sbatch", "--parsable", str(script))
        except SlurmError as exc:
            raise LaunchError(f"Slurm refused job {job.id}: {exc}") from None
        if done.returncode != 0:
            raise LaunchError(f"Slurm refused job {job.id} (sbatch: {_message(done)}). Check [training.slurm] and "
                              f"the spec's [slurm] table; the script is {script}.")
        slurm_id = parse_sbatch(done.stdout)
        return Handle(self.name, slurm_id, job.id, run_dir)

    def poll(self, handle: Handle) -> Exit | None:
        try:
            state = self.squeue(handle.ref)
            if state in ACTIVE:
                return None
            info = self.scontrol(handle.ref)
        except SlurmError as exc:  # the controller may be restarting: the job is not known to have ended
            if time.monotonic() - self._warned > 60:
                self._warned = time.monotonic()
                log.warning("cannot ask Slurm about job %s (%s); trying again", handle.ref, exc)
            return None
        if info and info.get("JobState") in ACTIVE:
            return None
        if info:
            return slurm_exit(handle.ref, info.get("JobState", ""), info.get("ExitCode"), info.get("TimeLimit"))
        if state:  # squeue still showed how it ended
            return slurm_exit(handle.ref, state, None, None)
        from_log = state_from_log(tail(handle.run_dir / "log.txt", lines=256), handle.ref)
        if from_log:
            return slurm_exit(handle.ref, from_log, None, None)
        return Exit(None, f"Slurm job {handle.ref} has ended, and Slurm no longer knows how (it forgets ended jobs "
                          f"after MinJobAge; sacct needs slurmdbd). See its log (`labmate train logs`); {RESUME}.")

    def cancel(self, handle: Handle) -> None:
        self._signal("scancel", handle.ref)

    def interrupt(self, handle: Handle) -> None:
        """Slurm jobs outlive the worker: nothing to do."""

    def kill(self, handle: Handle) -> None:
        self._signal("scancel", "--batch", "--signal=KILL", handle.ref)
        self._signal("scancel", handle.ref)  # and the allocation, had the batch shell already gone

    def describe(self, handle: Handle) -> str:
        return f"Slurm job {handle.ref}"

    def attach(self, job: Job) -> Handle | None:
        parsed = Handle.parse(job.handle)
        if not parsed or parsed[0] != self.name:
            return None
        return Handle(self.name, parsed[1], job.id, self.settings.runs_dir / f"job-{job.id}")

    def alive(self, job: Job) -> bool:
        parsed = Handle.parse(job.handle)
        if not parsed or parsed[0] != self.name:
            return False
        try:
            return self.squeue(parsed[1]) in ACTIVE
        except SlurmError:
            return True  # unknown: leave it alone rather than run it twice

    # -- Slurm commands ----------------------------------------------------------------------------

    def squeue(self, slurm_id: str) -> str | None:
        """The job's state in squeue (e.g. "RUNNING"), None once it has left it."""
        done = self._command("squeue", "-h", "-j", slurm_id, "-o", "%T")
        if done.returncode != 0:
            if "invalid job id" in done.stderr.lower():
                return None
            raise SlurmError(f"squeue: {_message(done)}")
        return parse_squeue(done.stdout)

    def scontrol(self, slurm_id: str) -> dict[str, str] | None:
        """`scontrol show -o job ID` as a dict (JobState, ExitCode, Reason, ...), None once forgotten."""
        done = self._command("scontrol", "show", "-o", "job", slurm_id)
        if done.returncode != 0:
            if "invalid job id" in done.stderr.lower():
                return None
            raise SlurmError(f"scontrol: {_message(done)}")
        return parse_scontrol(done.stdout) or None

    def _command(self, *args: str) -> subprocess.CompletedProcess:
        program = str(self.slurm.bin_dir / args[0]) if self.slurm.bin_dir else args[0]
        try:
            return subprocess.run([program, *args[1:]], capture_output=True, text=True,
                                  timeout=self.slurm.command_timeout, cwd=PROJECT)
        except FileNotFoundError:
            raise SlurmError(f"{program} was not found; install Slurm's client commands on this machine or set "
                             "[training.slurm] bin_dir") from None
        except subprocess.TimeoutExpired:
            raise SlurmError(f"{program} did not answer within {self.slurm.command_timeout:.0f} s") from None

    def _signal(self, *args: str) -> None:
        try:
            done = self._command(*args)
        except SlurmError as exc:
            log.warning("%s", exc)
            return
        if done.returncode != 0 and "already completing or completed" not in done.stderr.lower():
            log.warning("%s: %s", " ".join(args), _message(done))

    # -- the script --------------------------------------------------------------------------------

    def options(self, job: Job) -> dict:
        """[training.slurm] with the spec's [slurm] table over it. A spec's train.gpus (processes)
        above the configured GPU count asks for that many GPUs, when GPUs are configured at all."""
        merged = self.slurm.model_dump(include=set(SlurmJobOptions.model_fields) | {"gpu_option"})
        train_gpus = int((job.spec.get("train") or {}).get("gpus") or 0)
        if merged["gpus"] and train_gpus > merged["gpus"]:
            merged["gpus"] = train_gpus
        overrides = SlurmJobOptions.model_validate(job.spec.get("slurm") or {})
        merged.update(overrides.model_dump(exclude_none=True))
        return merged

    def script(self, job: Job, run_dir: Path) -> str:
        options = self.options(job)
        threads = self.settings.threads or options["cpus"]
        command = child_command(self.slurm.python or sys.executable, self.store_path, job.id, run_dir,
                                self.settings.device, threads)
        return render_script(job.id, job.name, run_dir, options, command,
                             workdir=Path(self.slurm.workdir or PROJECT).resolve(), setup=self.slurm.setup)


def sbatch_lines(options: dict) -> list[str]:
    """The `#SBATCH` options for partition, account, qos, time, cpus, mem, GPUs and the extras."""
    lines = []
    for key, flag in (("partition", "--partition"), ("account", "--account"), ("qos", "--qos"),
                      ("time_limit", "--time")):
        if options.get(key):
            lines.append(f"{flag}={options[key]}")
    if options.get("cpus"):
        lines.append(f"--cpus-per-task={options['cpus']}")
    if options.get("mem"):
        lines.append(f"--mem={options['mem']}")
    gpus = options.get("gpus") or 0
    if gpus:
        kind = f"{options['gpu_type']}:" if options.get("gpu_type") else ""
        lines.append(f"--gpus={kind}{gpus}" if options.get("gpu_option") == "gpus" else f"--gres=gpu:{kind}{gpus}")
    lines.extend(options.get("extra") or [])
    return lines


def render_script(job_id: int, name: str, run_dir: Path, options: dict, command: list[str], *, workdir: Path,
                  setup: list[str] = ()) -> str:
    """The sbatch script of one job."""
    log_path = run_dir / "log.txt"
    fixed = [f"--job-name=labmate-{job_id}", f"--output={_sbatch_value(log_path)}", "--open-mode=append",
             f"--chdir={_sbatch_value(workdir)}", "--no-requeue"]
    header = "\n".join(f"#SBATCH {line}" for line in fixed + sbatch_lines(options))
    title = " ".join(name.split())[:80]
    body = "\n".join(setup)
    return (f"#!/bin/bash\n# labmate training job {job_id} ({title}), written by the Slurm backend and submitted "
            f"with `sbatch --parsable`.\n{header}\n\nexport PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false\n"
            f"{body + chr(10) if body else ''}cd {shlex.quote(str(workdir))}\n"
            f"exec {shlex.join(command)}\n")


def parse_sbatch(output: str) -> str:
    """The job id from `sbatch --parsable` ("17" or "17;cluster")."""
    first = output.strip().splitlines()[-1] if output.strip() else ""
    slurm_id = first.split(";")[0].strip()
    if not re.fullmatch(r"\d+(_\d+)?", slurm_id):
        raise LaunchError(f"sbatch answered {output.strip()!r}, not a job id")
    return slurm_id


def parse_squeue(output: str) -> str | None:
    """`squeue -h -j ID -o %T`: the state, or None when the job is no longer listed."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[0].upper() if lines else None


def parse_scontrol(output: str) -> dict[str, str]:
    """`scontrol show -o job ID` (one line of Key=Value pairs) as a dict; values with spaces (a
    Command or WorkDir) are cut at the first space, which JobState/ExitCode/Reason never have."""
    return dict(re.findall(r"(?:^|\s)([A-Za-z][\w/:]*)=(\S*)", output))


def slurm_exit(slurm_id: str, state: str, exit_code: str | None, time_limit: str | None) -> Exit:
    """An Exit from Slurm's JobState and ExitCode ("CODE:SIGNAL")."""
    state = state.upper().split()[0] if state else "UNKNOWN"
    state = "CANCELLED" if state.startswith("CANCELLED") else state  # sacct says "CANCELLED by 0"
    code = None
    if exit_code and re.fullmatch(r"\d+:\d+", exit_code):
        status, signal_number = (int(x) for x in exit_code.split(":"))
        code = -signal_number if signal_number else status
    if state in FORCED:
        limit = f" ({time_limit})" if time_limit and state == "TIMEOUT" else ""
        return Exit(code, f"Slurm job {slurm_id} {FORCED[state].format(limit=limit)}. {RESUME}.", forced=True)
    if state == "COMPLETED" and code in (0, None):
        return Exit(0, f"Slurm job {slurm_id} completed, but the job did not record its end; see its log "
                       "(`labmate train logs`).")
    if code is not None and code < 0:
        what = SIGNALS.get(-code, f"killed by signal {-code}")
        return Exit(code, f"Slurm job {slurm_id} ended {state}: its process was {what}. {RESUME}.")
    if code is not None:
        return Exit(code, f"Slurm job {slurm_id} ended {state}: its process exited with code {code}; see its log "
                          "(`labmate train logs`).")
    return Exit(None, f"Slurm job {slurm_id} ended {state}; see its log (`labmate train logs`). {RESUME}.")


def state_from_log(text: str, slurm_id: str) -> str | None:
    """What slurmstepd wrote into the job's output when Slurm ended it, e.g.
    `slurmstepd-n1: error: *** JOB 17 ON n1 CANCELLED AT 2024-05-01T10:00:00 DUE TO TIME LIMIT ***`."""
    found = None
    for match in re.finditer(rf"\*\*\* JOB {re.escape(slurm_id)} ON \S+ CANCELLED AT \S+(?: DUE TO ([A-Z ]+?))?"
                             r"\s*\*\*\*", text):
        found = LOG_REASONS.get(match.group(1) or "", "CANCELLED")
    if found is None and re.search(rf"Detected \d+ oom[-_]kill events? in StepId={re.escape(slurm_id)}\b", text):
        found = "OUT_OF_MEMORY"
    return found


def _message(done: subprocess.CompletedProcess) -> str:
    text = " ".join((done.stderr or done.stdout or "").split())
    return text[:400] or f"exit code {done.returncode}"


def _sbatch_value(path: Path) -> str:
    text = str(path)
    return f'"{text}"' if any(c.isspace() for c in text) else text
