"""The compiled GAN step: update counts, learning direction, determinism, EMA, penalties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import config as config_lib
from jaxgan import families, sharding
from jaxgan.training import assemble
from jaxgan.training import state as state_lib
from jaxgan.training import step as steps
from tests.helpers import tiny_config


def run(config, num_steps, images=None):
  """num_steps compiled steps on a fixed toy batch; returns (state, list of host metrics)."""
  assemble.validate(config)
  mesh = sharding.make_mesh(jax.devices()[:1])
  gan = families.build(config)
  state = state_lib.create_state(config, gan)
  if images is None:
    n = config_lib.images_per_step(config)
    # A toy "dataset": smooth bright blobs, easy to tell from random generator output.
    grid = jnp.linspace(-1.0, 1.0, 16)
    blob = jnp.exp(-4.0 * (grid[:, None] ** 2 + grid[None, :] ** 2))
    images = jnp.broadcast_to((2.0 * blob - 1.0)[None, :, :, None], (n, 16, 16, config.data.channels))
  batch = {"image": jax.device_put(images, sharding.batch_sharding(mesh))}
  step = steps.make_train_step(config, mesh)
  history = []
  for _ in range(num_steps):
    state, metrics = step(state, batch)
    history.append(jax.device_get(metrics))
  return state, history


def test_update_counts_follow_d_steps_and_g_steps():
  state, history = run(tiny_config(**{"train.d_steps": 3, "train.g_steps": 2}), 2)
  assert int(state.step) == 2
  assert int(state.d.step) == 6 and int(state.g.step) == 4
  # Adam's own counters advanced as often.
  assert int(state.d.opt_state[0].count) == 6 and int(state.g.opt_state[0].count) == 4
  assert set(history[-1]) >= {"loss/d", "loss/d_real", "loss/d_fake", "loss/g", "d/real", "d/fake",
                              "grad_norm/d", "grad_norm/g"}


def test_discriminator_learns_to_separate_real_from_fake():
  # G barely moves (tiny lr), D learns: its loss falls and real logits rise above fake ones.
  config = tiny_config(**{"optim.g_lr": 1e-12, "optim.d_lr": 2e-3, "train.g_steps": 1})
  _, history = run(config, 15)
  assert history[-1]["loss/d"] < 0.5 * history[0]["loss/d"]
  assert history[-1]["d/real"] > history[-1]["d/fake"] + 1.0


def test_generator_learns_to_fool_a_fixed_discriminator():
  config = tiny_config(**{"optim.d_lr": 1e-12, "optim.g_lr": 5e-3, "train.g_steps": 1})
  _, history = run(config, 15)
  assert history[-1]["loss/g"] < 0.7 * history[0]["loss/g"]


def test_same_seed_gives_bit_identical_parameters():
  config = tiny_config(**{"model.discriminator.dropout": 0.3})
  a, _ = run(config, 3)
  b, _ = run(config, 3)
  for x, y in zip(jax.tree.leaves((a.g.params, a.d.params, a.d.collections)),
                  jax.tree.leaves((b.g.params, b.d.params, b.d.collections))):
    assert np.array_equal(x, y)
  c, _ = run(tiny_config(**{"model.discriminator.dropout": 0.3, "seed": 1}), 3)
  assert not np.array_equal(a.g.params["Dense_0"]["kernel"], c.g.params["Dense_0"]["kernel"])


def test_ema_of_generator_parameters():
  config = tiny_config(**{"train.ema_decay": 0.75})
  gan = families.build(config)
  init = state_lib.create_state(config, gan)
  before = jax.device_get(init.g.params)
  state, _ = run(config, 1)
  after, ema = jax.device_get(state.g.params), jax.device_get(state.g_ema)
  for b, a, e in zip(jax.tree.leaves(before), jax.tree.leaves(after), jax.tree.leaves(ema)):
    np.testing.assert_allclose(e, 0.75 * b + 0.25 * a, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("penalty", ["wgan_gp", "r1", "dragan"])
def test_penalties_inside_the_step(penalty):
  config = tiny_config(**{"train.penalty": penalty, "train.loss": "wasserstein",
                          "model.discriminator.norm": "layer", "train.d_steps": 2,
                          "train.g_steps": 1})
  _, history = run(config, 2)
  assert history[-1]["penalty"] > 0 and np.isfinite(history[-1]["loss/d"])


@pytest.mark.parametrize("loss", ["minimax", "hinge", "least_squares"])
def test_other_losses_train(loss):
  _, history = run(tiny_config(**{"train.loss": loss, "train.label_smoothing": 0.1}), 2)
  assert all(np.isfinite(v) for v in history[-1].values())


def test_bfloat16_step_is_finite_and_tracks_float32():
  _, f32 = run(tiny_config(), 5)
  _, b16 = run(tiny_config(**{"model.dtype": "bfloat16"}), 5)
  for key in ("loss/d", "loss/g"):
    assert np.isfinite(b16[-1][key])
    np.testing.assert_allclose(b16[-1][key], f32[-1][key], rtol=0.15)


def test_state_is_donated():
  config = tiny_config()
  mesh = sharding.make_mesh(jax.devices()[:1])
  gan = families.build(config)
  state = state_lib.create_state(config, gan)
  batch = {"image": jnp.zeros((8, 16, 16, 3))}
  new_state, _ = steps.make_train_step(config, mesh)(state, batch)
  assert state.g.params["Dense_0"]["kernel"].is_deleted()
  assert not new_state.g.params["Dense_0"]["kernel"].is_deleted()
