"""A real one-node Slurm cluster for tests: munged, slurmctld and slurmd on 127.0.0.1, with every
file (config, key, sockets, state, spool, logs, pid files) under one temporary folder.

Debian's `slurm-wlm` and `munge` packages provide the programs (`make services`, i.e.
tests/setup/install-slurm.sh, installs them when it can); the daemons run as root, as
`SlurmUser=root`. `LocalSlurm.start()` waits until `sinfo` shows the node idle; `env` holds
SLURM_CONF for the client commands (sbatch, squeue, scontrol, scancel).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")
INSTALL_HINT = "install Debian's slurm-wlm and munge (make services)"


def missing() -> str | None:
    """Why a local cluster cannot run here, or None when it can."""
    absent = [p for p in PROGRAMS if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]
    if absent:
        return f"Slurm is not installed ({', '.join(absent)} missing): {INSTALL_HINT}"
    if os.geteuid() != 0:
        return f"the test Slurm cluster runs its daemons as root, and this is not root ({INSTALL_HINT} as root)"
    return None


def _program(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class LocalSlurm:
    """`with LocalSlurm(folder) as cluster:` runs the cluster until the block ends."""

    def __init__(self, folder: Path, *, min_job_age: int = 600, kill_wait: int = 10):
        self.dir = Path(folder)
        self.host = socket.gethostname()
        self.conf = self.dir / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.min_job_age, self.kill_wait = min_job_age, kill_wait
        self.ports = _free_ports(2)  # slurmctld, slurmd: never the ports of a real cluster on this machine
        self.processes: dict[str, subprocess.Popen] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> "LocalSlurm":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        for sub in ("munge", "state", "spool", "log", "run"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir / "munge", 0o755)  # munged wants its socket folder reachable by all
        key = self.dir / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
            os.chmod(key, 0o400)
        self.conf.write_text(self.config())
        munge = self.dir / "munge"
        self._spawn("munged", [_program("munged"), "--foreground", "--force", f"--socket={munge / 'munge.socket'}",
                               f"--key-file={key}", f"--pid-file={munge / 'munged.pid'}",
                               f"--log-file={munge / 'munged.log'}", f"--seed-file={munge / 'munged.seed'}"])
        self._wait(lambda: (munge / "munge.socket").exists(), timeout, "munged did not create its socket")
        self._spawn("slurmctld", [_program("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._wait(lambda: self._run(["scontrol", "ping"]).stdout.count("UP") >= 1, timeout,
                   "slurmctld did not answer `scontrol ping`")
        self._spawn("slurmd", [_program("slurmd"), "-D", "-f", str(self.conf), "-N", self.host])
        self._wait(self._node_idle, timeout, "the node did not become idle in sinfo")

    def stop(self) -> None:
        """Cancel what still runs, then stop the daemons (slurmd, slurmctld, munged)."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            self._run(["scancel", "--full", "--user=root"], timeout=10)
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # -- helpers ---------------------------------------------------------------------------------

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster, e.g. `cluster.run("squeue")`."""
        return self._run(list(args), timeout=timeout)

    def logs(self) -> str:
        """The daemons' logs, for an assertion message."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.dir / "log" / name
            if path.exists():
                parts.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-40:]))
        return "\n".join(parts)

    def config(self) -> str:
        cpus = os.cpu_count() or 1
        memory_mb = max(512, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 - 512)
        d = self.dir
        return f"""\
# A one-node test cluster (tests/slurm.py); everything lives under {d}.
ClusterName=labmate-test
SlurmctldHost={self.host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d / 'munge' / 'munge.socket'}
SlurmctldPort={self.ports[0]}
SlurmdPort={self.ports[1]}
StateSaveLocation={d / 'state'}
SlurmdSpoolDir={d / 'spool'}
SlurmctldPidFile={d / 'run' / 'slurmctld.pid'}
SlurmdPidFile={d / 'run' / 'slurmd.pid'}
SlurmctldLogFile={d / 'log' / 'slurmctld.log'}
SlurmdLogFile={d / 'log' / 'slurmd.log'}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MinJobAge={self.min_job_age}
KillWait={self.kill_wait}
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""

    def _node_idle(self) -> bool:
        states = self._run(["sinfo", "-h", "-N", "-o", "%T"]).stdout.split()
        return bool(states) and all(s.rstrip("*~#") in ("idle", "mixed", "allocated") for s in states)

    def _spawn(self, name: str, command: list[str]) -> None:
        log = (self.dir / "log" / f"{name}.out").open("ab")
        try:
            self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                                    start_new_session=True)
        finally:
            log.close()

    def _run(self, command: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return subprocess.CompletedProcess(command, 1, "", str(exc))

    def _wait(self, check, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {process.returncode}:\n{self._output(name)}"
                                       f"\n{self.logs()}")
            if check():
                return
            time.sleep(0.25)
        raise RuntimeError(f"{what} within {timeout:.0f} s\n{self.logs()}")

    def _output(self, name: str) -> str:
        path = self.dir / "log" / f"{name}.out"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
