#!/usr/bin/env bash
# Debian's slurm-wlm and munge for the Slurm backend's tests (tests/training/test_slurm.py). The
# tests start a one-node cluster themselves (tests/slurm.py) and stop it afterwards.
# Never fails; instant when Slurm is already installed.
set -u
. "$(dirname "$0")/apt.sh"

for tool in slurmctld slurmd munged sbatch; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        apt_install_for "Slurm ($tool)" "the Slurm tests" slurm-wlm munge
        break
    fi
done
exit 0
