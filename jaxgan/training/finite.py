"""The NaN guard: a non-finite value stops the run loudly, and no checkpoint ever holds one.

Every step folds `isfinite` of its metrics into the accumulator on the device
(jaxgan.training.console.accumulate records the first bad step and its metrics). LogMetrics
reads it on logging steps (`raise_if_bad`), and the Checkpoint action runs `check_finite`
before every save, which checks the training state itself too (`state_is_finite`). The
error, jaxgan.errors.NonFiniteError, names the first bad step and the newest checkpoint
that passes its checks.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import checkpointing
from jaxgan import errors
from jaxgan import sharding
from jaxgan.training import actions as actions_lib
from jaxgan.training import state as state_lib


@jax.jit
def state_is_finite(state: state_lib.GANState) -> jax.Array:
  """Whether every floating-point value of `state` is finite (a device bool)."""
  leaves = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def raise_if_bad(acc_host: dict[str, Any] | None, step: int, manager,
                 state_finite: bool = True) -> None:
  """Raises NonFiniteError naming the first bad step and the newest checkpoint that passes
  its checks (read back and verified now: jaxgan.checkpointing.newest_verified)."""
  if acc_host is not None and int(acc_host["bad_step"]) >= 0:
    bad = {k: float(v) for k, v in acc_host["bad"].items() if not np.isfinite(v)}
    what = (f"non-finite metrics at step {int(acc_host['bad_step'])}: "
            + ", ".join(f"{k}={v}" for k, v in sorted(bad.items())))
  elif not state_finite:
    what = f"non-finite values in the training state after step {step}"
  else:
    return
  good = checkpointing.newest_verified(manager)
  last = (f"the last good checkpoint (verified) is step {good} in {manager.directory}"
          if good is not None else "there is no checkpoint that passes its checks")
  raise errors.NonFiniteError(
      f"Training stopped: {what}. No checkpoint of a later step was written; {last}. Lower "
      f"the learning rates or change the config, then resume.")


def check_finite(ctx: actions_lib.Context) -> None:
  """NonFiniteError when the metrics since the last log or the state hold NaN/Inf."""
  acc_host = None if ctx.acc is None else sharding.host(ctx.acc)
  raise_if_bad(acc_host, ctx.step, ctx.manager, bool(sharding.host(state_is_finite(ctx.state))))
