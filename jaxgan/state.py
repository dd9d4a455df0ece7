"""GANState: both networks' TrainStates, the EMA generator, the RNG key and the step."""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

PRNGKey = jax.Array


class TrainState(train_state.TrainState):
  """A Flax TrainState that also carries BatchNorm / spectral-norm state."""
  batch_stats: Any = None


@flax.struct.dataclass
class GANState:
  g: TrainState
  d: TrainState
  g_ema: Any  # EMA of g.params; None when config.train.ema_decay == 0
  rng: PRNGKey
  step: jax.Array  # training steps done (each = d_steps D and g_steps G updates)


def make_optimizers(config: ml_collections.ConfigDict):
  """Adam per network with its own learning rate (the DCGAN recipe: beta1 = 0.5)."""
  o = config.optim
  adam = lambda lr: optax.adam(lr, b1=o.b1, b2=o.b2, eps=o.eps)  # noqa: E731
  return adam(o.g_lr), adam(o.d_lr)


def init_variables(config, generator, discriminator, rng: PRNGKey):
  """Initialises both networks' variables on a batch of one; returns (g_vars, d_vars)."""
  h, w = config.data.image_size
  kg, kd, kdrop = jax.random.split(rng, 3)
  z = jnp.zeros((1, config.model.latent_dim), jnp.float32)
  x = jnp.zeros((1, h, w, config.data.channels), jnp.float32)
  g_vars = generator.init({"params": kg, "dropout": kdrop}, z, train=False)
  d_vars = discriminator.init({"params": kd, "dropout": kdrop}, x, train=False)
  return g_vars, d_vars


def create_state(config: ml_collections.ConfigDict, generator, discriminator,
                 rng: PRNGKey | None = None) -> GANState:
  """A fresh GANState from `config.seed` (or `rng`)."""
  rng = jax.random.key(config.seed) if rng is None else rng
  rng, init_rng = jax.random.split(rng)
  g_vars, d_vars = init_variables(config, generator, discriminator, init_rng)
  g_tx, d_tx = make_optimizers(config)
  g = TrainState.create(apply_fn=generator.apply, params=g_vars["params"], tx=g_tx,
                        batch_stats=g_vars.get("batch_stats", {}))
  d = TrainState.create(apply_fn=discriminator.apply, params=d_vars["params"], tx=d_tx,
                        batch_stats=d_vars.get("batch_stats", {}))
  g_ema = jax.tree.map(jnp.copy, g.params) if config.train.ema_decay > 0 else None
  return GANState(g=g, d=d, g_ema=g_ema, rng=rng, step=jnp.zeros((), jnp.int32))
