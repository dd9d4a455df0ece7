"""Gradient penalties on the discriminator's input, computed with `jax.grad` inside the step.

Each penalty takes `critic` (images [B, H, W, C] -> logits [B]), the real and fake
batches, a PRNG key and `uniform(key, shape)` (the step passes one that draws the rows of
the global batch, so results do not depend on the device count), and returns a scalar (the step multiplies it by
`config.train.penalty_weight`):
  wgan_gp: E[(||grad D(x_hat)|| - 1)^2], x_hat uniformly between real and fake (Gulrajani et al. 2017).
  r1:      E[||grad D(x)||^2] / 2 on reals (Mescheder et al. 2018); weight = gamma.
  dragan:  E[(||grad D(x_hat)|| - 1)^2], x_hat uniformly between reals and reals perturbed by
           0.5 * std(reals) * U[0, 1] noise (Kodali et al. 2017).

BatchNorm and per-sample penalties: with BatchNorm in training mode, D(x_i) depends on
every x_j of the batch, so grad_x sum_i D(x_i) mixes samples and ||grad D(x_i)|| is no
longer the per-sample gradient the penalty is defined on; the WGAN-GP paper drops
BatchNorm from the critic for this reason. `jaxgan.training.step.validate` rejects the
combination (for a D whose family's `batch_coupled_d` names such a setting) unless
`train.allow_batchnorm_with_penalty` is set (tests/regularizers_test.py shows the
cross-sample gradient).

The step runs a list of `Regularizer` entries (`from_config`), each saying which network
it acts on and how often: `every=N > 1` is lazy regularization (Karras et al. 2020,
StyleGAN2): the term is computed on the steps with `step % N == 0` only, with its weight
multiplied by N, inside the one compiled step (`lax.cond`). A D entry's `fn` is a penalty
as above; a G entry's `fn(generate, z, labels, key)` takes `generate(z, labels) -> images`
with G's parameters under differentiation.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array
Critic = Callable[[Array], Array]


def input_grad_norms(critic: Critic, x: Array) -> Array:
  """Per-sample L2 norms of d(sum_i critic(x)_i)/dx, shape [B]."""
  grads = jax.grad(lambda y: critic(y).sum())(x)
  return jnp.sqrt(jnp.sum(jnp.square(grads.astype(jnp.float32)), axis=tuple(range(1, x.ndim))) + 1e-12)


Uniform = Callable[[Array, tuple[int, ...]], Array]


def _per_sample(uniform: Uniform, key: Array, x: Array) -> Array:
  return uniform(key, (x.shape[0],) + (1,) * (x.ndim - 1)).astype(x.dtype)


def wgan_gp(critic: Critic, real: Array, fake: Array, key: Array,
            uniform: Uniform = jax.random.uniform) -> Array:
  alpha = _per_sample(uniform, key, real)
  x_hat = real + alpha * (fake - real)
  return jnp.mean(jnp.square(input_grad_norms(critic, x_hat) - 1.0))


def r1(critic: Critic, real: Array, fake: Array, key: Array,
       uniform: Uniform = jax.random.uniform) -> Array:
  del fake, key, uniform
  return 0.5 * jnp.mean(jnp.square(input_grad_norms(critic, real)))


def dragan(critic: Critic, real: Array, fake: Array, key: Array,
           uniform: Uniform = jax.random.uniform) -> Array:
  del fake
  k_noise, k_alpha = jax.random.split(key)
  perturbed = real + 0.5 * jnp.std(real) * uniform(k_noise, real.shape).astype(real.dtype)
  alpha = _per_sample(uniform, k_alpha, real)
  x_hat = real + alpha * (perturbed - real)
  return jnp.mean(jnp.square(input_grad_norms(critic, x_hat) - 1.0))


PENALTIES = {"none": None, "wgan_gp": wgan_gp, "r1": r1, "dragan": dragan}
# Penalties defined on per-sample input gradients (all of them today).
PER_SAMPLE_PENALTIES = ("wgan_gp", "r1", "dragan")


NETWORKS = ("d", "g")


@dataclasses.dataclass(frozen=True)
class Regularizer:
  """One regularization term of a network's loss.

  Attributes:
    name: its metric name (the step logs its unweighted value; 0 on skipped steps).
    network: 'd' or 'g', the network whose loss it joins.
    fn: the term (see the module docstring for the two signatures).
    weight: its weight in the loss.
    every: applied on steps where state.step % every == 0, with weight * every.
  """
  name: str
  network: str
  fn: Callable
  weight: float
  every: int = 1

  def __post_init__(self):
    if self.network not in NETWORKS:
      raise ValueError(f"Regularizer {self.name!r}: network={self.network!r}, expected one of "
                       f"{NETWORKS}")
    if not (isinstance(self.every, int) and self.every >= 1):
      raise ValueError(f"Regularizer {self.name!r}: every={self.every!r}, expected an int >= 1")


def from_config(config) -> tuple[Regularizer, ...]:
  """The regularizers of `config.train` (today: at most the one `penalty`, on D)."""
  t = config.train
  if PENALTIES[t.penalty] is None:
    return ()
  return (Regularizer("penalty", "d", PENALTIES[t.penalty], float(t.penalty_weight),
                      int(t.penalty_every)),)
