"""GAN losses as pure functions of discriminator logits.

Each entry of LOSSES is a `GANLoss(d, g)`:
  d(real_logits, fake_logits, label_smoothing) -> (real_term, fake_term); the D loss is their sum.
  g(fake_logits) -> the G loss.
All are means over the batch. `label_smoothing` is one-sided (real target 1 - s, Salimans
et al. 2016) and applies to the cross-entropy losses; the others ignore it.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

Array = jax.Array


class GANLoss(NamedTuple):
  d: Callable[[Array, Array, float], tuple[Array, Array]]
  g: Callable[[Array], Array]


def _bce(logits: Array, target: float) -> Array:
  return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)).mean()


def cross_entropy_d(real: Array, fake: Array, label_smoothing: float = 0.0):
  """-log D(x) - log(1 - D(G(z))), with real target 1 - label_smoothing."""
  return _bce(real, 1.0 - label_smoothing), _bce(fake, 0.0)


def non_saturating_g(fake: Array) -> Array:
  """-log D(G(z)) (Goodfellow et al. 2014, the usual choice)."""
  return _bce(fake, 1.0)


def minimax_g(fake: Array) -> Array:
  """log(1 - D(G(z))): the original minimax objective, which saturates early in training."""
  return -_bce(fake, 0.0)


def hinge_d(real: Array, fake: Array, label_smoothing: float = 0.0):
  del label_smoothing
  return jax.nn.relu(1.0 - real).mean(), jax.nn.relu(1.0 + fake).mean()


def hinge_g(fake: Array) -> Array:
  return -fake.mean()


def least_squares_d(real: Array, fake: Array, label_smoothing: float = 0.0):
  """LSGAN (Mao et al. 2017) with targets a=0, b=1, c=1."""
  del label_smoothing
  return 0.5 * jnp.square(real - 1.0).mean(), 0.5 * jnp.square(fake).mean()


def least_squares_g(fake: Array) -> Array:
  return 0.5 * jnp.square(fake - 1.0).mean()


def wasserstein_d(real: Array, fake: Array, label_smoothing: float = 0.0):
  """The critic's loss E[D(G(z))] - E[D(x)]; pair it with a Lipschitz constraint."""
  del label_smoothing
  return -real.mean(), fake.mean()


def wasserstein_g(fake: Array) -> Array:
  return -fake.mean()


LOSSES = {
    "non_saturating": GANLoss(cross_entropy_d, non_saturating_g),
    "minimax": GANLoss(cross_entropy_d, minimax_g),
    "hinge": GANLoss(hinge_d, hinge_g),
    "least_squares": GANLoss(least_squares_d, least_squares_g),
    "wasserstein": GANLoss(wasserstein_d, wasserstein_g),
}


def get_loss(name: str) -> GANLoss:
  if name not in LOSSES:
    raise ValueError(f"config.train.loss={name!r} is invalid: expected one of {sorted(LOSSES)}")
  return LOSSES[name]
