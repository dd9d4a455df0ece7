"""Multi-process start-up: JAX's own multi-controller runtime, and a topology report.

Every process runs the same command. `initialize()` calls `jax.distributed.initialize`
when the job has several processes: with the explicit coordinator address, process
count and process id when given (flags of `jaxgan.main`, or the JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES and JAX_PROCESS_ID environment variables), else by JAX's cluster
auto-detection (SLURM with several tasks, Cloud TPU pod slices, Open MPI, Kubernetes).
A single process with none of these does nothing, so `python -m jaxgan.main` on one
machine needs no flag. On CPU, cross-process collectives use gloo.
"""

from __future__ import annotations

import os

import jax
from jax.sharding import Mesh


def _auto_detected() -> bool:
  """True where JAX's cluster detection will find a multi-process job."""
  if int(os.environ.get("SLURM_NTASKS", "1")) > 1 or int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
    return True
  hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
  return len([h for h in hosts.split(",") if h]) > 1


def initialize(coordinator_address: str = "", num_processes: int = 0, process_id: int = -1) -> bool:
  """Initialises the multi-process runtime if this job has several processes.

  Args:
    coordinator_address: 'host:port' of process 0; '' = from the environment or auto-detect.
    num_processes: total processes; 0 = from the environment or auto-detect.
    process_id: this process's index; -1 = from the environment or auto-detect.

  Returns:
    True if `jax.distributed.initialize` was called.
  """
  coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
  num_processes = num_processes or int(os.environ.get("JAX_NUM_PROCESSES", "0"))
  if process_id < 0:
    process_id = int(os.environ.get("JAX_PROCESS_ID", "-1"))
  explicit = bool(coordinator_address) or num_processes > 1
  if not explicit and not _auto_detected():
    return False
  if explicit and not (coordinator_address and num_processes > 0 and process_id >= 0):
    raise ValueError(
        "a multi-process run needs all three of the coordinator address, the number of "
        f"processes and this process's id; got coordinator_address={coordinator_address!r}, "
        f"num_processes={num_processes}, process_id={process_id}")
  if os.environ.get("JAX_PLATFORMS", "") == "cpu" or jax.config.jax_platforms == "cpu":
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if explicit:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
  else:
    jax.distributed.initialize()
  return True


def topology(mesh: Mesh, global_batch: int) -> str:
  """A one-paragraph report of processes, devices, the mesh and the per-device batch."""
  n = mesh.devices.size
  return (f"process {jax.process_index()} of {jax.process_count()}; "
          f"{jax.local_device_count()} local and {jax.device_count()} global devices "
          f"({jax.devices()[0].platform}, {jax.devices()[0].device_kind}); "
          f"mesh {dict(mesh.shape)}; global batch {global_batch} = {global_batch // n} per device")

