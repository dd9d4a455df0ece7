"""Gradient penalties against closed forms, and BatchNorm's effect on per-sample gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import config as config_lib
from jaxgan.training import assemble
from jaxgan.training import regularizers
from tests.helpers import tiny_config

SHAPE = (4, 3, 3, 2)


def linear_critic(w):
  return lambda x: jnp.sum(x * w, axis=(1, 2, 3))  # gradient w for every sample


@pytest.mark.parametrize("penalty", ["wgan_gp", "dragan"])
def test_unit_norm_penalties_of_a_linear_critic(penalty):
  w = jax.random.normal(jax.random.key(0), SHAPE[1:])
  real, fake = jax.random.normal(jax.random.key(1), SHAPE), jax.random.normal(jax.random.key(2), SHAPE)
  got = regularizers.PENALTIES[penalty](linear_critic(w), real, fake, jax.random.key(3))
  np.testing.assert_allclose(got, (jnp.linalg.norm(w) - 1.0) ** 2, rtol=1e-5)


def test_r1_of_a_linear_critic():
  w = jax.random.normal(jax.random.key(0), SHAPE[1:])
  real = jax.random.normal(jax.random.key(1), SHAPE)
  got = regularizers.r1(linear_critic(w), real, real, jax.random.key(3))
  np.testing.assert_allclose(got, 0.5 * jnp.sum(w ** 2), rtol=1e-5)


def test_wgan_gp_interpolates_between_real_and_fake():
  # critic(x) = |x|^2 / 2 has gradient x, so the penalty is E(|x_hat| - 1)^2 at the interpolates.
  critic = lambda x: 0.5 * jnp.sum(x ** 2, axis=(1, 2, 3))
  real, fake = jnp.zeros(SHAPE), jnp.ones(SHAPE)
  key = jax.random.key(5)
  alpha = jax.random.uniform(key, (SHAPE[0], 1, 1, 1))
  want = jnp.mean((jnp.linalg.norm((alpha * fake).reshape(4, -1), axis=1) - 1.0) ** 2)
  np.testing.assert_allclose(regularizers.wgan_gp(critic, real, fake, key), want, rtol=1e-5)


class _Critic(nn.Module):
  norm: str

  @nn.compact
  def __call__(self, x, train=True):
    x = nn.Conv(4, (3, 3))(x)
    if self.norm == "batch":
      x = nn.BatchNorm(use_running_average=not train)(x)
    else:
      x = nn.LayerNorm(reduction_axes=(1, 2, 3))(x)
    return nn.Dense(1)(x.reshape(x.shape[0], -1))[:, 0]


@pytest.mark.parametrize("norm,mixes", [("batch", True), ("layer", False)])
def test_batchnorm_makes_a_samples_output_depend_on_other_samples(norm, mixes):
  # Why WGAN-GP forbids BatchNorm in the critic: d D(x)_0 / d x_1 != 0 in training mode.
  x = jax.random.normal(jax.random.key(0), SHAPE)
  model = _Critic(norm)
  variables = model.init(jax.random.key(1), x)
  out0 = lambda x: model.apply(variables, x, mutable=["batch_stats"])[0][0]
  cross = jnp.abs(jax.grad(out0)(x)[1]).max()
  assert (float(cross) > 1e-6) == mixes


def test_config_rejects_batchnorm_critic_with_a_penalty_unless_allowed():
  config = tiny_config(**{"train.penalty": "wgan_gp", "train.loss": "wasserstein"})
  with pytest.raises(config_lib.ConfigError, match=r"model.discriminator.norm='batch'.*wgan_gp"):
    assemble.validate(config)
  config.train.allow_batchnorm_with_penalty = True
  assemble.validate(config)
  config.train.allow_batchnorm_with_penalty = False
  config.model.discriminator.norm = "layer"
  assemble.validate(config)
