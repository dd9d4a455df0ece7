"""The family interface is real: a family defined only here trains, checkpoints and resumes
bit-exactly; the registry and config errors; lazy and G regularizers; config.evals."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxgan import checks
from jaxgan import config as config_lib
from jaxgan import families
from jaxgan import sharding
from jaxgan import workdir as workdir_lib
from jaxgan.training import actions as actions_lib
from jaxgan.training import assemble
from jaxgan.training import loop
from jaxgan.training import regularizers
from jaxgan.training import state as state_lib
from jaxgan.training import step as step_lib
from tests.helpers import tiny_config


# ---- a family defined in this file only --------------------------------------------------

class _ToyG(nn.Module):
  """Dense -> image; counts its training calls in a 'counters' collection."""
  shape: tuple

  @nn.compact
  def __call__(self, z, labels=None, train=True):
    calls = self.variable("counters", "calls", lambda: jnp.zeros((), jnp.int32))
    if train and not self.is_initializing():
      calls.value += 1
    h, w, c = self.shape
    return jnp.tanh(nn.Dense(h * w * c)(z)).reshape(z.shape[0], h, w, c)


class _ToyD(nn.Module):
  """Dense on the flattened image, with a running mean of its input in 'stats'."""

  @nn.compact
  def __call__(self, x, labels=None, train=True):
    mean = self.variable("stats", "mean", lambda: jnp.zeros((), jnp.float32))
    if train and not self.is_initializing():
      mean.value = 0.9 * mean.value + 0.1 * x.mean()
    return nn.Dense(1)(x.reshape(x.shape[0], -1))[:, 0] + 0.0 * mean.value


class _Toy(families.Family):
  name = "toy_test_family"

  def model_config(self):
    m = ml_collections.ConfigDict()
    m.scale = 1.0  # this family's one field
    return m

  def validate(self, config):
    if not config.model.scale > 0:
      checks.fail("model.scale", config.model.scale, "expected > 0")

  def build(self, config):
    h, w = config.data.image_size
    shape = (h, w, config.data.channels)
    return families.GAN(_ToyG(shape), _ToyD(), latent_dim=config.model.latent_dim,
                        num_classes=0, image_shape=shape,
                        extra_init=lambda: {"steps_seen": jnp.zeros((), jnp.int32)},
                        extra_update=lambda e, step: {"steps_seen": e["steps_seen"] + 1})


@pytest.fixture
def toy_config():
  families.register(_Toy())
  c = config_lib.default_config(family="toy_test_family")
  c.data.image_size, c.data.builtin_size = (8, 8), 32
  c.model.latent_dim = 4
  c.train.batch_size, c.train.ema_decay = 4, 0.5
  c.log_every = c.sample_every = 100
  c.num_samples = 4
  yield c
  families.FAMILIES.pop("toy_test_family")


def _arrays(state):
  return [np.asarray(x) for x in jax.tree.leaves(
      (state.g.params, state.d.params, state.g.collections, state.d.collections, state.g_ema,
       state.extra, state.g.opt_state, state.d.opt_state))]


def test_a_family_defined_in_a_test_trains_checkpoints_and_resumes_bit_exactly(
    toy_config, tmp_path):
  toy_config.train.num_steps, toy_config.checkpoint_every = 6, 3
  full = loop.train_and_evaluate(toy_config, str(tmp_path / "full"))
  # Its own collections and extra state were carried: G ran 1 (D update) + 2 (G updates)
  # training calls per step, the extra part counted the steps.
  assert int(full.g.collections["counters"]["calls"]) == 6 * 3
  assert int(full.extra["family"]["steps_seen"]) == 6
  assert float(full.d.collections["stats"]["mean"]) != 0.0
  stopped = toy_config.copy_and_resolve_references()
  stopped.train.num_steps = 3
  loop.train_and_evaluate(stopped, str(tmp_path / "resumed"))
  resumed = loop.train_and_evaluate(toy_config, str(tmp_path / "resumed"))
  assert int(resumed.step) == 6
  for a, b in zip(_arrays(full), _arrays(resumed), strict=True):
    np.testing.assert_array_equal(a, b)
  saved = workdir_lib.load_config(workdir_lib.Workdir(tmp_path / "full"))
  assert saved.model.family == "toy_test_family" and saved.model.scale == 1.0


def test_family_fields_are_validated_by_the_family(toy_config):
  toy_config.model.scale = -1.0
  with pytest.raises(config_lib.ConfigError, match=r"model.scale=-1.0 is invalid: expected > 0"):
    assemble.validate(toy_config)


def test_unknown_family_lists_the_registered_ones():
  config = tiny_config(**{"model.family": "stylegan9"})
  with pytest.raises(config_lib.ConfigError,
                     match=r"config.model.family='stylegan9' is invalid: expected one of 'dcgan'"):
    assemble.validate(config)


def test_a_field_of_another_family_is_rejected(toy_config):
  toy_config.model.generator = ml_collections.ConfigDict({"features": (8,)})
  with pytest.raises(config_lib.ConfigError,
                     match=r"model.generator is not a field of family 'toy_test_family'; its "
                           r"fields are dtype, family, latent_dim, num_classes, scale"):
    assemble.validate(toy_config)


# ---- regularizers: lazy schedule and a G regularizer --------------------------------------

def _run(config, schedule, num_steps=8):
  """num_steps steps on a fixed batch; `schedule(i)` -> the step function of step i."""
  assemble.validate(config)
  mesh = sharding.make_mesh(jax.devices()[:1])
  gan = families.build(config)
  state = state_lib.create_state(config, gan)
  images = jax.random.uniform(jax.random.key(3), (8, 16, 16, 3), jnp.float32, -1, 1)
  batch = {"image": jax.device_put(images, sharding.batch_sharding(mesh))}
  history = []
  for i in range(num_steps):
    state, metrics = schedule(i, mesh, gan)(state, batch)
    history.append(jax.device_get(metrics))
  return state, history


@pytest.mark.slow
def test_lazy_r1_every_4_steps_equals_a_hand_written_schedule():
  # No biases before a norm: their true gradient is zero, so Adam would turn rounding noise
  # (the two schedules compile to different programs) into lr-sized steps.
  no_bias = {"model.generator.use_bias": False, "model.discriminator.use_bias": False}
  config = tiny_config(**{"train.penalty": "r1", "train.penalty_weight": 0.5,
                          "train.penalty_every": 4, "model.discriminator.norm": "layer",
                          **no_bias})
  lazy = step_lib.make_train_step(config, sharding.make_mesh(jax.devices()[:1]))
  lazy_state, lazy_history = _run(config, lambda i, mesh, gan: lazy)

  r1_x4 = (regularizers.Regularizer("penalty", "d", regularizers.r1, 4 * 0.5),)
  compiled = {}

  def by_hand(i, mesh, gan):  # R1 at 4x the weight on steps 0 and 4, nothing on the others.
    on = i % 4 == 0
    if on not in compiled:
      compiled[on] = step_lib.make_train_step(config, mesh, gan=gan,
                                              regularizers=r1_x4 if on else ())
    return compiled[on]
  hand_state, _ = _run(config, by_hand)
  for a, b in zip(jax.tree.leaves((lazy_state.g.params, lazy_state.d.params)),
                  jax.tree.leaves((hand_state.g.params, hand_state.d.params)), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  # The penalty is computed on steps 0 and 4 only.
  assert [h["penalty"] > 0 for h in lazy_history] == [i % 4 == 0 for i in range(8)]
  # The penalty acts: without it (the hand schedule's penalty-free program on every step)
  # the parameters differ.
  plain_state, _ = _run(config, lambda i, mesh, gan: compiled[False])
  assert not np.allclose(plain_state.d.params["Dense_0"]["kernel"],
                         lazy_state.d.params["Dense_0"]["kernel"], rtol=1e-3)


@pytest.mark.slow
def test_a_generator_regularizer_acts_on_g():
  config = tiny_config(**{"optim.g_lr": 1e-2, "optim.d_lr": 1e-12, "train.g_steps": 1})
  # A test-only G term: the mean squared pixel, which pulls G's images to grey.
  grey = regularizers.Regularizer(
      "g/pixel_l2", "g", lambda generate, z, labels, key: jnp.mean(generate(z, labels) ** 2),
      weight=100.0)
  plain_state, _ = _run(config, lambda i, mesh, gan: step_lib.make_train_step(config, mesh, gan=gan), 10)
  reg_state, history = _run(config, lambda i, mesh, gan: step_lib.make_train_step(
      config, mesh, gan=gan, regularizers=(grey,)), 10)
  assert history[-1]["g/pixel_l2"] < 0.5 * history[0]["g/pixel_l2"]
  gan = families.build(config)
  z = jax.random.normal(jax.random.key(0), (8, config.model.latent_dim))
  energy = lambda s: float(jnp.mean(gan.generate(s.g.variables(), z, train=False)[0] ** 2))  # noqa: E731
  assert energy(reg_state) < 0.5 * energy(plain_state)


def test_regularizer_entries_are_checked():
  with pytest.raises(ValueError, match=r"network='x', expected one of \('d', 'g'\)"):
    regularizers.Regularizer("p", "x", regularizers.r1, 1.0)
  with pytest.raises(config_lib.ConfigError, match=r"train.penalty_every=0 is invalid"):
    assemble.validate(tiny_config(**{"train.penalty_every": 0}))


# ---- evaluators from config.evals ----------------------------------------------------------

class _Recorder(actions_lib.Action):
  """A test-only action: the steps it ran on, and the step it finished at."""

  def __init__(self):
    self.schedule, self.ran, self.finished = actions_lib.Schedule(every_steps=3), [], None

  def __call__(self, ctx):
    self.ran.append((ctx.step, int(ctx.state.step)))

  def finish(self, ctx):
    self.finished = ctx.step


def test_config_evals_and_extra_actions_run_on_their_schedules(tmp_path):
  from tests.conftest import load_config  # pylint: disable=g-import-not-at-top
  config = load_config()
  config.train.num_steps, config.checkpoint_every = 7, 7
  config.evals.trunc = ml_collections.ConfigDict({"type": "samples", "every": 2,
                                                  "truncation": 0.5, "num": 4})
  recorder = _Recorder()
  loop.train_and_evaluate(config, str(tmp_path), actions=[lambda ctx: recorder])
  written = sorted(p.name for p in (tmp_path / "samples" / "trunc").iterdir())
  assert written == ["step_0000000.png", "step_0000002.png", "step_0000004.png",
                     "step_0000006.png", "step_0000007.png"]  # and the last step
  assert recorder.ran == [(3, 3), (6, 6)] and recorder.finished == 7


@pytest.mark.parametrize("evals,match", [
    ({"x": {"type": "fid50k", "every": 5}}, r"evals.x.type='fid50k' is invalid: expected one of 'metrics', 'samples'"),
    ({"x": {"type": "samples"}}, r"expected an 'every'"),
    ({"x": {"type": "samples", "every": 5, "colour": 1}}, r"evals.x.colour=1 is invalid: not an option"),
])
def test_bad_evals_are_rejected(evals, match):
  config = tiny_config()
  config.evals = ml_collections.ConfigDict(evals)
  with pytest.raises(config_lib.ConfigError, match=match):
    assemble.validate(config)
