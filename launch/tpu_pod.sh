#!/usr/bin/env bash
# A Cloud TPU VM pod slice: the same command on every worker; JAX finds the pod's
# coordinator itself. The workdir must be shared storage (a gs:// bucket) for checkpoints.
#   bash launch/tpu_pod.sh TPU_NAME ZONE configs/dcgan128.py gs://bucket/runs/x [--config.x=...]
set -euo pipefail
tpu=$1; zone=$2; config=$3; workdir=$4; shift 4
gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all --command \
  "cd ~/jaxgan && python -m jaxgan.main --config $config --workdir $workdir $*"
