"""Helpers for the tests that run real training jobs (worker, Slurm, several processes)."""

from __future__ import annotations

import time
from pathlib import Path


def sentences(path: Path, count: int) -> str:
    """The first `count` sentences of a CoNLL-style file (blank-line separated)."""
    return "\n\n".join(path.read_text().split("\n\n")[:count]).strip() + "\n"


def ner_slice(data_dir: Path, root: Path, train: int, devel: int) -> Path:
    """`root/data/train.tsv` and `devel.tsv`: the first sentences of NCBI-disease; returns `root/data`."""
    ncbi = data_dir / "ner" / "ncbi-disease"
    folder = root / "data"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.tsv").write_text(sentences(ncbi / "train.tsv", train))
    (folder / "devel.tsv").write_text(sentences(ncbi / "devel.tsv", devel))
    return folder


def ner_spec(name: str, *, base_model: str = "default", slurm: str = "", **train) -> str:
    """A token-classification spec on `../data/train.tsv` and `devel.tsv` (as `ner_slice` writes
    them; the spec lives in a sibling folder). `train` becomes the [train] table (batch_size 8 and
    max_length 64 unless given); `slurm` is appended as is (e.g. "[slurm]\ngpus = 1\n")."""
    table = {"batch_size": 8, "max_length": 64, **train}
    return "\n".join([
        'task = "token-classification"', f'base_model = "{base_model}"', f'name = "{name}"',
        "[data]", 'train = "../data/train.tsv"', 'eval = "../data/devel.tsv"', "[train]",
        *(f"{key} = {value!r}" for key, value in table.items()), ""]) + slurm


def wait_for(check, timeout: float = 240.0, every: float = 0.2):
    """Poll `check()` until it returns something truthy; return that (AssertionError on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s")
