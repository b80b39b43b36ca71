"""Data parallelism inside one job: `[train] gpus = N` runs the job as N processes under torchrun.

`training.child` starts `python -m torch.distributed.run --standalone --nproc_per_node N -m
training.child ...` when a job asks for more than one process; each of those processes (a
"rank", with LOCAL_RANK, RANK and WORLD_SIZE in its environment) calls `start()` here. With
CUDA each rank takes GPU LOCAL_RANK and the NCCL backend; without CUDA (or with device "cpu")
the ranks run on the CPU with gloo. Rank 0 alone writes the job database, the log, checkpoints
and the best model; the others only train.

The global batch stays the spec's `batch_size`: every rank cuts the same length-grouped batch
order and takes its share of each batch (`shard`), and each rank's loss is weighted by its share
of the batch's targets, so the gradients DDP averages equal those of one process on the whole
batch: same optimizer steps, same learning-rate schedule, comparable metrics.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from datetime import timedelta

IGNORE = -100
# Rank 0 evaluates and saves alone while the others wait in the next collective: long evaluations
# must not time them out. A rank that dies is noticed by torchrun at once, not by this timeout.
TIMEOUT = timedelta(hours=1)


def under_torchrun() -> bool:
    """Whether this process is one rank of a torchrun group."""
    return "LOCAL_RANK" in os.environ


def torchrun_command(processes: int, args: list[str]) -> list[str]:
    """The command that runs `python -m training.child ARGS` as `processes` ranks; `--standalone`
    picks a free port on this machine for the rendezvous."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
            "-m", "training.child", *args]


def rank_threads(threads: int, world: int) -> int:
    """CPU threads per rank: the job's threads (all cores when 0) shared among the ranks, at least 1."""
    return max(1, (threads or os.cpu_count() or 1) // world)


def uses_cuda(device: str) -> bool:
    """Whether ranks of a job with this [training] device run on GPUs ("auto": when CUDA is there)."""
    import torch

    if device in ("", "auto"):
        return torch.cuda.is_available()
    return device.startswith("cuda")


def check_devices(device: str, processes: int) -> str:
    """The backend a job of `processes` ranks will use ("nccl" or "gloo"); ConfigError when it asks
    for more GPUs than are visible."""
    import torch

    from core.errors import ConfigError

    if not uses_cuda(device):
        return "gloo"
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if visible < processes:
        raise ConfigError(f"The job asks for gpus = {processes}, but {visible} CUDA GPU(s) are visible here. "
                          "Lower `gpus` in the spec's [train] table, or run it where there are enough GPUs.")
    return "nccl"


def parent_death_signal(sig: int = signal.SIGKILL):
    """A function that asks Linux to send `sig` to the calling process when its parent dies (prctl
    PR_SET_PDEATHSIG), resolved beforehand so it can run between fork and exec (`preexec_fn`).
    A killed child thus takes torchrun with it, and torchrun its ranks. Elsewhere: a no-op."""
    prctl = None
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            prctl = None

    def arm() -> None:
        if prctl is not None:
            prctl(1, int(sig), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG

    return arm


@dataclass
class Group:
    """This process's place in the job's process group."""

    rank: int
    world: int
    local_rank: int
    device: object  # torch.device
    backend: str
    control: object  # the gloo group for flags (None: the default group, already gloo)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, indices: list[int]) -> list[int]:
        """This rank's share of a global batch: every world-th example from its rank on. The batches
        are sorted by length, so the shares pad alike; together they are the whole batch."""
        return indices[self.rank::self.world]

    def agree(self, *flags: bool) -> list[bool]:
        """Rank 0's `flags`, the same on every rank (one small broadcast on the CPU: no GPU sync)."""
        import torch
        import torch.distributed as dist

        values = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int32)
        dist.broadcast(values, src=0, group=self.control)
        return [bool(v) for v in values.tolist()]

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier(group=self.control)

    def sum(self, tensor):
        """`tensor` summed over the ranks (in place, and returned)."""
        import torch.distributed as dist

        dist.all_reduce(tensor)
        return tensor

    def step_seed(self, seed: int, step: int) -> int:
        """The seed of a rank's random numbers (dropout) at an optimizer step: a function of the
        spec's seed, the step and the rank alone, so a resumed run draws the same numbers."""
        return (seed * 1_000_003 + step * 1_009 + self.rank * 7_919_993) % 2**63


def start(device: str) -> Group:
    """Join the process group torchrun set up: pick this rank's device (GPU LOCAL_RANK with NCCL, or
    the CPU with gloo) and initialise torch.distributed."""
    import torch
    import torch.distributed as dist

    parent_death_signal()()  # torchrun gone (killed with the job's child): this rank goes too
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    backend = check_devices(device, int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    if backend == "nccl":
        chosen = torch.device("cuda", local)
        torch.cuda.set_device(chosen)
        dist.init_process_group("nccl", timeout=TIMEOUT, device_id=chosen)
        control = dist.new_group(backend="gloo", timeout=TIMEOUT)
    else:
        chosen = torch.device("cpu")
        dist.init_process_group("gloo", timeout=TIMEOUT)
        control = None
    return Group(rank, world, local, chosen, backend, control)


def stop() -> None:
    """Leave the process group (each rank, at its end)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def target_count(task: str, feature) -> int:
    """How many targets a training feature adds to its batch's mean loss: labelled tokens (token
    classification), one (text classification), or predicted next tokens (causal LM)."""
    ids, target = feature
    if task == "token-classification":
        return sum(1 for t in target if t != IGNORE)
    if task == "causal-lm":
        return max(0, len(ids) - 1)
    return 1
