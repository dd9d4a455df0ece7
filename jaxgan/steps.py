"""The GAN training step: `d_steps` D updates, `g_steps` G updates and the EMA, as one
compiled program.

`train_step` is a pure per-device function `(state, batch) -> (state, metrics)`;
`make_train_step` binds the config's static choices and wraps it in `jax.shard_map` over
the mesh's 'data' axis (each device takes its slice of the batch, gradients and metrics
are averaged over devices) and `jax.jit` with the state donated.

Randomness: every update draws fresh noise from the state's key. Noise and penalty
interpolation weights are drawn for the whole global batch from the replicated key and
each device keeps its own rows, so devices see different noise and the result does not
depend on how many devices share the batch; dropout keys are folded with the device index.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh, PartitionSpec as P

from jaxgan import losses as losses_lib
from jaxgan import regularizers
from jaxgan.sharding import DATA_AXIS
from jaxgan.state import GANState, TrainState

Array = jax.Array
Batch = dict[str, Array]
Metrics = dict[str, Array]


def _local_rows(sample: Callable, key: Array, local_shape: tuple[int, ...],
                axis_name: str | None) -> Array:
  """This device's rows of a global random array drawn by `sample(key, shape)`."""
  if axis_name is None:
    return sample(key, local_shape)
  n, i = jax.lax.axis_size(axis_name), jax.lax.axis_index(axis_name)
  full = sample(key, (n * local_shape[0],) + tuple(local_shape[1:]))
  return jax.lax.dynamic_slice_in_dim(full, i * local_shape[0], local_shape[0])


def _device_key(key: Array, axis_name: str | None) -> Array:
  return key if axis_name is None else jax.random.fold_in(key, jax.lax.axis_index(axis_name))


def _pmean(tree, axis_name: str | None):
  return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def _apply(state: TrainState, params, batch_stats, x: Array, key: Array):
  """Training-mode forward; returns (output, updated batch_stats)."""
  out, mutated = state.apply_fn({"params": params, "batch_stats": batch_stats}, x, train=True,
                                rngs={"dropout": key}, mutable=["batch_stats"])
  return out, mutated.get("batch_stats", batch_stats)


def d_update(d: TrainState, g: TrainState, real: Array, key: Array, *, loss: losses_lib.GANLoss,
             label_smoothing: float, penalty: Callable | None, penalty_weight: float,
             latent_dim: int, axis_name: str | None):
  """One discriminator update on `real` and fresh fakes. Returns (d, g_batch_stats, metrics)."""
  k_z, k_real, k_fake, k_pen, k_pdrop = jax.random.split(key, 5)
  z = _local_rows(jax.random.normal, k_z, (real.shape[0], latent_dim), axis_name)
  fake, g_stats = _apply(g, g.params, g.batch_stats, z, _device_key(k_z, axis_name))
  fake = jax.lax.stop_gradient(fake)

  def loss_fn(params):
    real_logits, stats = _apply(d, params, d.batch_stats, real, _device_key(k_real, axis_name))
    fake_logits, stats = _apply(d, params, stats, fake, _device_key(k_fake, axis_name))
    l_real, l_fake = loss.d(real_logits, fake_logits, label_smoothing)
    total, aux = l_real + l_fake, {}
    if penalty is not None:
      # Per-sample penalty; the BatchNorm/spectral-norm state of this extra pass is discarded.
      critic = lambda x: _apply(d, params, stats, x, _device_key(k_pdrop, axis_name))[0]  # noqa: E731
      uniform = lambda k, shape: _local_rows(jax.random.uniform, k, shape, axis_name)  # noqa: E731
      pen = penalty(critic, real, fake, k_pen, uniform=uniform)
      total, aux = total + penalty_weight * pen, {"penalty": pen}
    metrics = {"loss/d": total, "loss/d_real": l_real, "loss/d_fake": l_fake,
               "d/real": real_logits.mean(), "d/fake": fake_logits.mean(), **aux}
    return total, (stats, metrics)

  grads, (stats, metrics) = jax.grad(loss_fn, has_aux=True)(d.params)
  grads = _pmean(grads, axis_name)
  metrics["grad_norm/d"] = optax.tree.norm(grads)
  return d.apply_gradients(grads=grads, batch_stats=stats), g_stats, metrics


def g_update(g: TrainState, d: TrainState, key: Array, *, loss: losses_lib.GANLoss,
             batch_size: int, latent_dim: int, axis_name: str | None):
  """One generator update through the discriminator. Returns (g, d_batch_stats, metrics)."""
  k_z, k_drop = jax.random.split(key)
  z = _local_rows(jax.random.normal, k_z, (batch_size, latent_dim), axis_name)

  def loss_fn(params):
    fake, g_stats = _apply(g, params, g.batch_stats, z, _device_key(k_z, axis_name))
    logits, d_stats = _apply(d, d.params, d.batch_stats, fake, _device_key(k_drop, axis_name))
    return loss.g(logits), (g_stats, d_stats)

  (l_g, (g_stats, d_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(g.params)
  grads = _pmean(grads, axis_name)
  g = g.apply_gradients(grads=grads, batch_stats=g_stats)
  return g, d_stats, {"loss/g": l_g, "grad_norm/g": optax.tree.norm(grads)}


def train_step(state: GANState, batch: Batch, *, d_steps: int, g_steps: int, ema_decay: float,
               axis_name: str | None = None, **update_kw) -> tuple[GANState, Metrics]:
  """d_steps D updates (one slice of `batch['image']` each), g_steps G updates, the EMA.

  Args:
    state: the replicated GANState.
    batch: {'image': [d_steps * b, H, W, C]}, this device's rows.
    d_steps, g_steps: updates per step.
    ema_decay: EMA decay of the generator's parameters (0: no EMA).
    axis_name: the mesh axis to average over, or None on one device without shard_map.
    **update_kw: loss, label_smoothing, penalty, penalty_weight, latent_dim.

  Returns:
    The new state and a dict of scalar metrics (on device).
  """
  rng, key = jax.random.split(state.rng)
  reals = batch["image"].reshape((d_steps, -1) + batch["image"].shape[1:])
  g, d, metrics = state.g, state.d, {}
  g_kw = {k: update_kw[k] for k in ("loss", "latent_dim")}
  for i in range(d_steps):
    d, g_stats, metrics = d_update(d, g, reals[i], jax.random.fold_in(key, i),
                                   axis_name=axis_name, **update_kw)
    g = g.replace(batch_stats=g_stats)
  for j in range(g_steps):
    g, d_stats, g_metrics = g_update(g, d, jax.random.fold_in(key, d_steps + j),
                                     batch_size=reals.shape[1], axis_name=axis_name, **g_kw)
    d = d.replace(batch_stats=d_stats)
  metrics.update(g_metrics)
  # Per-device BatchNorm statistics differ between devices; keep their mean (replicated).
  g = g.replace(batch_stats=_pmean(g.batch_stats, axis_name))
  d = d.replace(batch_stats=_pmean(d.batch_stats, axis_name))
  g_ema = state.g_ema
  if g_ema is not None:
    g_ema = optax.incremental_update(g.params, g_ema, step_size=1.0 - ema_decay)
  state = GANState(g=g, d=d, g_ema=g_ema, rng=rng, step=state.step + 1)
  return state, _pmean(metrics, axis_name)


def step_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The static keyword arguments of `train_step` for `config`."""
  t = config.train
  return dict(d_steps=t.d_steps, g_steps=t.g_steps, ema_decay=t.ema_decay,
              loss=losses_lib.get_loss(t.loss), label_smoothing=t.label_smoothing,
              penalty=regularizers.PENALTIES[t.penalty], penalty_weight=t.penalty_weight,
              latent_dim=config.model.latent_dim)


def make_train_step(config: ml_collections.ConfigDict, mesh: Mesh, *, donate: bool = True):
  """The compiled step: jit(shard_map(train_step)) over `mesh`'s data axis.

  The state is replicated (P()), the batch split along its first axis (P('data')).
  """
  fn = functools.partial(train_step, axis_name=DATA_AXIS, **step_options(config))
  # check_vma=False: gradients are per-device and averaged explicitly by `_pmean` (with
  # varying-type checking on, grad would psum them implicitly and the custom VJP of
  # models/layers.conv_transpose_col2im would need device-varying annotations).
  sharded = jax.shard_map(fn, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=(P(), P()),
                          check_vma=False)
  return jax.jit(sharded, donate_argnums=(0,) if donate else ())
