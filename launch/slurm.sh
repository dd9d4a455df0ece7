#!/usr/bin/env bash
# Several hosts under SLURM: one task per host, each driving its local GPUs. JAX detects
# the coordinator, the process count and the process id from SLURM's environment.
#   sbatch --nodes=4 --ntasks-per-node=1 --gpus-per-node=8 launch/slurm.sh configs/dcgan128.py /shared/runs/x
#SBATCH --job-name=jaxgan
#SBATCH --ntasks-per-node=1
set -euo pipefail
config=$1; workdir=$2; shift 2
srun python -m jaxgan.main --config "$config" --workdir "$workdir" "$@"
