"""The device mesh and the shardings of the state and the batch."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from jaxgan import errors

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh named 'data' over `devices` (default: every device of every process).

  Auto axis types keep jit's automatic partitioning (jax.make_mesh defaults to Explicit,
  which rejects unsharded inputs to shard_map; see PITFALLS.md).
  """
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over the data axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_divides(global_batch: int, mesh: Mesh,
                        what: str = "config.train.batch_size") -> None:
  """ValueError unless the global batch (`what`) splits evenly over the mesh's devices."""
  n = mesh.shape[DATA_AXIS]
  if global_batch % n:
    raise errors.DataError(f"{what}={global_batch} does not divide by the {n} devices "
                           f"of the mesh: choose a multiple of {n}")


def host(tree):
  """Host copy of replicated arrays. In a multi-process run a replicated array spans
  other processes' devices too, so `jax.device_get` cannot read it whole; every replica
  holds the same value, so this process reads its first local one."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array)
                      else x, tree)
