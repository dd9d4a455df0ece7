#!/usr/bin/env bash
# Two processes on this machine, on CPU, talking through a coordinator on 127.0.0.1: try
# multi-host code paths without a cluster. Process 0 writes summaries and samples.
#   bash launch/local_two_process.sh configs/tiny.py /tmp/runs/two [--config.x=...]
set -euo pipefail
config=$1; workdir=$2; shift 2
port=${PORT:-12355}
for id in 0 1; do
  JAX_PLATFORMS=cpu python -m jaxgan.main --config "$config" --workdir "$workdir" \
    --coordinator_address "127.0.0.1:$port" --num_processes 2 --process_id "$id" "$@" &
done
wait
