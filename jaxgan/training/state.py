"""GANState: both networks' TrainStates, the EMA generator, the RNG key, the step, and a
generic `extra` part for state that a family, an augmentation or a regularizer keeps.

Everything in it is a pytree of arrays, so `jaxgan.checkpointing` saves and restores the
whole state with no field list, and the compiled step carries every part through.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from jaxgan.families import GAN
from jaxgan.training import augment

PRNGKey = jax.Array


class TrainState(train_state.TrainState):
  """A Flax TrainState that also carries the network's non-parameter collections.

  Attributes:
    collections: {name: value} of every Flax collection other than 'params' (BatchNorm
      statistics and spectral-norm vectors in 'batch_stats', anything else a family's
      modules declare); updated by each training-mode call.
  """
  collections: Any = None

  def variables(self, params=None) -> dict[str, Any]:
    """Flax variables: `params` (default: this state's) and every collection."""
    return {"params": self.params if params is None else params, **self.collections}


@flax.struct.dataclass
class GANState:
  g: TrainState
  d: TrainState
  g_ema: Any  # EMA of g.params; None when config.train.ema_decay == 0
  rng: PRNGKey
  step: jax.Array  # training steps done (each = d_steps D and g_steps G updates)
  # {owner: pytree}: 'family' (GAN.extra_init), and whatever augmentations or regularizers
  # add; checkpointed and restored like every other part.
  extra: Any = flax.struct.field(default_factory=dict)


def make_optimizers(config: ml_collections.ConfigDict):
  """Adam per network with its own learning rate (the DCGAN recipe: beta1 = 0.5)."""
  o = config.optim
  adam = lambda lr: optax.adam(lr, b1=o.b1, b2=o.b2, eps=o.eps)  # noqa: E731
  return adam(o.g_lr), adam(o.d_lr)


def init_extra(gan: GAN, config: ml_collections.ConfigDict | None = None) -> dict[str, Any]:
  """The initial `extra` part of the state: the family's (GAN.extra_init) and, when
  config.augment has a policy, the augmentation's p (jaxgan.training.augment)."""
  extra = {} if gan.extra_init is None else {"family": gan.extra_init()}
  aug = None if config is None else augment.init_state(config)
  if aug is not None:
    extra["augment"] = aug
  return extra


def create_state(config: ml_collections.ConfigDict, gan: GAN,
                 rng: PRNGKey | None = None) -> GANState:
  """A fresh GANState from `config.seed` (or `rng`)."""
  rng = jax.random.key(config.seed) if rng is None else rng
  rng, init_rng = jax.random.split(rng)
  g_vars, d_vars = gan.init(init_rng)
  g_tx, d_tx = make_optimizers(config)

  def train_state_of(module, variables, tx):
    rest = {k: v for k, v in variables.items() if k != "params"}
    return TrainState.create(apply_fn=module.apply, params=variables["params"], tx=tx,
                             collections=rest)

  g = train_state_of(gan.generator, g_vars, g_tx)
  d = train_state_of(gan.discriminator, d_vars, d_tx)
  g_ema = jax.tree.map(jnp.copy, g.params) if config.train.ema_decay > 0 else None
  return GANState(g=g, d=d, g_ema=g_ema, rng=rng, step=jnp.zeros((), jnp.int32),
                  extra=init_extra(gan, config))
