#!/usr/bin/env bash
# One host, all its GPUs: one process drives every local device (the mesh spans them all).
#   bash launch/local_gpus.sh configs/dcgan128.py runs/dcgan128 [--config.x=...]
set -euo pipefail
config=$1; workdir=$2; shift 2
exec python -m jaxgan.main --config "$config" --workdir "$workdir" "$@"
