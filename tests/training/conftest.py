"""Fixtures of the training tests: the local service on a test's `settings`, and a real one-node
Slurm cluster (tests/slurm.py)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def service(settings):
    """A LocalService on the test module's `settings` fixture, closed afterwards."""
    from training.service import LocalService

    local = LocalService(settings)
    yield local
    local.close()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """munged + slurmctld + slurmd on 127.0.0.1 for the whole session, with SLURM_CONF in the
    environment (the Slurm backend's sbatch/squeue/scontrol/scancel read it); skips, saying why,
    where Debian's slurm-wlm and munge are not installed."""
    from tests.slurm import LocalSlurm, missing

    reason = missing()
    if reason:
        pytest.skip(reason)
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except Exception as exc:  # noqa: BLE001 - the daemons' logs say what went wrong
        cluster.stop()
        pytest.fail(f"the test Slurm cluster did not start: {exc}")
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        cluster.stop()
