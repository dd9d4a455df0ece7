"""train.g_update_fakes: 'reuse' runs one G forward fewer and equals a hand-written update."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import config as config_lib
from jaxgan import families
from jaxgan.training import assemble
from jaxgan.training import regularizers as regs
from jaxgan.training import state as state_lib
from jaxgan.training import step as steps
from tests.helpers import tiny_config


def _traced_g_forwards(config):
  """(G calls seen while tracing one step, tanh equations in its jaxpr): G's output layer
  is the step's only tanh, so each G forward pass leaves exactly one in the program."""
  gan = families.build(config)
  state = state_lib.create_state(config, gan)
  n = config_lib.images_per_step(config)
  batch = {"image": jnp.zeros((n, 16, 16, 3))}
  calls = steps.make_calls(gan, None, state.extra.get("family"))
  count = [0]

  def g(*args):
    count[0] += 1
    return calls.g(*args)
  step = lambda s, b: steps.train_step(  # noqa: E731
      s, b, **steps.step_options(config, gan), calls=calls._replace(g=g))
  jaxpr = jax.make_jaxpr(step)(state, batch)

  def tanhs(jaxpr):
    total = 0
    for eqn in jaxpr.eqns:
      total += eqn.primitive.name == "tanh"
      for sub in jax.extend.core.jaxprs_in_params(eqn.params):
        total += tanhs(sub)
    return total
  return count[0], tanhs(jaxpr.jaxpr)


@pytest.mark.parametrize("d_steps,g_steps", [(1, 1), (1, 2), (3, 1), (2, 3)])
def test_reuse_runs_one_g_forward_fewer(d_steps, g_steps):
  counts = {}
  for mode in ("fresh", "reuse"):
    config = tiny_config(**{"train.d_steps": d_steps, "train.g_steps": g_steps,
                            "train.g_update_fakes": mode})
    counts[mode] = _traced_g_forwards(config)
  # Fresh: one G forward per D update (its fakes) and one per G update; reuse: the first
  # G update takes the last D update's forward pass and its pullback.
  assert counts["fresh"] == (d_steps + g_steps,) * 2
  assert counts["reuse"] == (d_steps + g_steps - 1,) * 2


def _g_l2(generate, z, labels, key):
  """A G regularizer for the tests: the mean squared pixel of G(z)."""
  del key
  return jnp.mean(jnp.square(generate(z, labels)))


def _reference_step(config, state, g_l2_weight=0.0):
  """One 1 D + 1 G step written out by hand: BCE losses, the D update's noise for both
  updates, a second G forward for the G update (same parameters and noise as the first),
  plus g_l2_weight * mean(G(z)^2) in G's loss."""
  gan = families.build(config)
  g, d = state.g, state.d
  key = jax.random.split(state.rng)[1]
  k_z, k_real, k_fake, _, _ = jax.random.split(jax.random.fold_in(key, 0), 5)
  k_drop = jax.random.split(jax.random.fold_in(key, 1))[1]
  z = jax.random.normal(k_z, (config.train.batch_size, config.model.latent_dim))
  real = state_reals(config)
  fake, g_colls = gan.generate(g.variables(), z, train=True, rng=k_z)

  def bce(logits, target):  # -target log s(x) - (1 - target) log(1 - s(x))
    return jnp.mean(target * jax.nn.softplus(-logits) + (1 - target) * jax.nn.softplus(logits))

  def d_loss(params):
    r, colls = gan.discriminate({"params": params, **d.collections}, real, train=True, rng=k_real)
    f, colls = gan.discriminate({"params": params, **colls}, fake, train=True, rng=k_fake)
    return bce(r, 1.0) + bce(f, 0.0), colls
  d_grads, d_colls = jax.grad(d_loss, has_aux=True)(d.params)
  d = d.apply_gradients(grads=d_grads, collections=d_colls)

  def g_loss(params):
    again, _ = gan.generate({"params": params, **g.collections}, z, train=True, rng=k_z)
    logits, colls = gan.discriminate(d.variables(), again, train=True, rng=k_drop)
    return bce(logits, 1.0) + g_l2_weight * jnp.mean(jnp.square(again)), colls
  g_grads, d_colls = jax.grad(g_loss, has_aux=True)(g.params)
  g = g.apply_gradients(grads=g_grads, collections=g_colls)
  return g, d.replace(collections=d_colls)


def state_reals(config):
  return jnp.linspace(-1.0, 1.0, config.train.batch_size * 16 * 16 * 3).reshape(
      config.train.batch_size, 16, 16, 3)


def _assert_trees_close(got, want):
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _max_change(a, b):
  return [float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]


@pytest.mark.parametrize("g_l2_weight", [0.0, 0.5])
def test_reuse_equals_a_hand_written_update(g_l2_weight):
  # No biases: a bias before BatchNorm has a zero gradient up to rounding, which Adam
  # scales to lr-sized steps of either sign (docs/pitfalls.md).
  config = tiny_config(**{"train.g_steps": 1, "train.g_update_fakes": "reuse",
                          "optim.g_lr": 1e-2, "optim.d_lr": 1e-2,
                          "model.generator.use_bias": False,
                          "model.discriminator.use_bias": False})
  assemble.validate(config)
  gan = families.build(config)
  state = state_lib.create_state(config, gan)
  batch = {"image": state_reals(config)}
  options = steps.step_options(config, gan)
  if g_l2_weight:  # A G regularizer's gradient joins the pulled-back one.
    options["regularizers"] = (regs.Regularizer("g_l2", "g", _g_l2, g_l2_weight),)
  new, metrics = jax.jit(lambda s, b: steps.train_step(s, b, **options))(state, batch)
  ref_g, ref_d = jax.jit(lambda s: _reference_step(config, s, g_l2_weight))(state)
  _assert_trees_close((new.g.params, new.g.collections), (ref_g.params, ref_g.collections))
  _assert_trees_close((new.d.params, new.d.collections), (ref_d.params, ref_d.collections))
  if g_l2_weight:
    assert float(metrics["g_l2"]) > 0
  # The update moved G, and differently from the fresh schedule's (other noise).
  fresh_options = {**options, "g_update_fakes": "fresh"}
  fresh, _ = jax.jit(lambda s, b: steps.train_step(s, b, **fresh_options))(state, batch)
  assert min(_max_change(new.g.params, state.g.params)) > 1e-4
  assert max(_max_change(new.g.params, fresh.g.params)) > 1e-4


def test_unknown_schedule_is_a_config_error():
  config = tiny_config(**{"train.g_update_fakes": "recycle"})
  with pytest.raises(Exception, match="train.g_update_fakes.*'recycle'.*fresh.*reuse"):
    assemble.validate(config)
