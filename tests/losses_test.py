"""Each GAN loss against values computed by hand."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.training import losses

REAL = jnp.array([2.0, -1.0])
FAKE = jnp.array([0.5, -3.0])


def sp(x):  # softplus(x) = -log(sigmoid(-x))
  return math.log1p(math.exp(x))


def mean(*xs):
  return sum(xs) / len(xs)


CASES = {
    # name: (d real term, d fake term, g loss)
    "non_saturating": (mean(sp(-2.0), sp(1.0)), mean(sp(0.5), sp(-3.0)), mean(sp(-0.5), sp(3.0))),
    "minimax": (mean(sp(-2.0), sp(1.0)), mean(sp(0.5), sp(-3.0)), -mean(sp(0.5), sp(-3.0))),
    "hinge": (mean(0.0, 2.0), mean(1.5, 0.0), -mean(0.5, -3.0)),
    "least_squares": (0.5 * mean(1.0, 4.0), 0.5 * mean(0.25, 9.0), 0.5 * mean(0.25, 16.0)),
    "wasserstein": (-mean(2.0, -1.0), mean(0.5, -3.0), -mean(0.5, -3.0)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_values(name):
  loss = losses.get_loss(name)
  d_real, d_fake, g = CASES[name]
  got_real, got_fake = loss.d(REAL, FAKE, 0.0)
  np.testing.assert_allclose([got_real, got_fake, loss.g(FAKE)], [d_real, d_fake, g], rtol=1e-6)


def test_one_sided_label_smoothing():
  # Real target 0.9: BCE = 0.9 * softplus(-x) + 0.1 * softplus(x); fakes keep target 0.
  real, fake = losses.cross_entropy_d(REAL, FAKE, 0.1)
  want = mean(*(0.9 * sp(-x) + 0.1 * sp(x) for x in (2.0, -1.0)))
  np.testing.assert_allclose(real, want, rtol=1e-6)
  np.testing.assert_allclose(fake, CASES["non_saturating"][1], rtol=1e-6)


def test_unknown_loss_names_the_choices():
  with pytest.raises(ValueError, match=r"train.loss='vanilla'.*hinge.*wasserstein"):
    losses.get_loss("vanilla")
