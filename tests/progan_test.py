"""The ProGAN family: its layers against hand-computed values, the fade-in, the schedule,
the growing pipeline, and a tiny run through every phase that resumes bit-exactly."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from jaxgan import config as config_lib
from jaxgan import families
from jaxgan import sampling
from jaxgan import sharding
from jaxgan import workdir as workdir_lib
from jaxgan.data import order
from jaxgan.families import progan
from jaxgan.training import assemble
from jaxgan.training import loop
from jaxgan.training import step as step_lib
from tests.helpers import load_config


@pytest.fixture
def config():
  """configs/progan_tiny.py: 4x4 -> 16x16, 64 images per phase, batch 8, 8, 4."""
  return load_config("progan_tiny")


def _variables(config, seed=0):
  gan = families.build(config)
  return gan, *jax.jit(gan.init)(jax.random.key(seed))  # jitted: eager init takes ~15 s


# ---- layers ------------------------------------------------------------------------------

def test_pixel_norm_against_hand_computed_values():
  x = np.array([[[[3.0, 4.0], [0.0, 2.0]]]], np.float32)  # [1, 1, 2, 2]: two pixels
  expected = np.array([[[[3.0, 4.0] / np.sqrt(12.5 + 1e-8), [0.0, 2.0] / np.sqrt(2.0 + 1e-8)]]])
  np.testing.assert_allclose(progan.pixel_norm(jnp.asarray(x)), expected, rtol=1e-6)


def test_minibatch_stddev_against_hand_computed_values():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 2, 3, 5)).astype(np.float32)
  out = np.asarray(progan.minibatch_stddev(jnp.asarray(x), group=4))
  assert out.shape == (8, 2, 3, 6)
  np.testing.assert_array_equal(out[..., :5], x)
  # Groups of 4 images: image i is in group i % 2; per group the biased std of every
  # feature over its images, averaged over features and pixels.
  for i in range(8):
    members = x[i % 2::2]
    std = np.sqrt(((members - members.mean(0)) ** 2).mean(0) + 1e-8).mean()
    np.testing.assert_allclose(out[i, ..., 5], np.full((2, 3), std), rtol=1e-5)
  # A batch of 6 with groups of at most 4: the largest divisor, 3.
  assert progan.group_size(6, 4) == 3 and progan.group_size(14, 4) == 2
  six = np.asarray(progan.minibatch_stddev(jnp.asarray(x[:6]), group=4))
  members = x[:6][0::2]
  np.testing.assert_allclose(six[0, 0, 0, 5],
                             np.sqrt(((members - members.mean(0)) ** 2).mean(0) + 1e-8).mean(),
                             rtol=1e-5)


def test_equalized_learning_rate_scales_each_layer_by_its_he_constant():
  # Every weight is N(0, 1) at initialisation (the scale is applied at run time).
  v = progan.EqualDense(512).init(jax.random.key(0), jnp.zeros((1, 64)))
  kernel = np.asarray(v["params"]["kernel"])
  assert abs(kernel.std() - 1.0) < 0.02 and abs(kernel.mean()) < 0.02
  assert not np.asarray(v["params"]["bias"]).any()
  # A 3x3 conv of 16 -> 16 channels computes conv(x, w * sqrt(2 / (3 * 3 * 16))) + b.
  x = jax.random.normal(jax.random.key(1), (2, 4, 4, 16))
  conv = progan.EqualConv(16, 3)
  v = conv.init(jax.random.key(2), x)
  w = np.asarray(v["params"]["kernel"])
  expected = jax.lax.conv_general_dilated(x, w * math.sqrt(2 / (3 * 3 * 16)), (1, 1), "SAME",
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(conv.apply(v, x), expected, rtol=1e-5, atol=1e-6)
  # toRGB: gain 1, a 1x1 conv of 16 channels: scale 1 / sqrt(16).
  rgb = progan.EqualConv(3, 1, gain=1.0)
  v = rgb.init(jax.random.key(3), x)
  expected = np.einsum("bhwc,cd->bhwd", x, np.asarray(v["params"]["kernel"])[0, 0] / 4.0)
  np.testing.assert_allclose(rgb.apply(v, x), expected, rtol=1e-5, atol=1e-6)
  # G's first layer is a 4x4 conv on the 1x1 latent: fan_in = 16 * latent_dim.
  z = jax.random.normal(jax.random.key(4), (2, 16))
  dense = progan.EqualDense(64, fan_in=16 * 16)
  v = dense.init(jax.random.key(5), z)
  expected = z @ (np.asarray(v["params"]["kernel"]) * math.sqrt(2.0) / math.sqrt(256))
  np.testing.assert_allclose(dense.apply(v, z), expected, rtol=1e-5, atol=1e-6)
  assert progan.he_scale(256) == pytest.approx(math.sqrt(2 / 256))


# ---- fade-in -----------------------------------------------------------------------------

def _at(gan, config, level):
  return gan.at(families.stages(config)[level])


def _perturb(variables, *names):
  params = dict(variables["params"])
  for name in names:
    params[name] = jax.tree.map(lambda p: p + 1.0, params[name])
  return {**variables, "params": params}


@pytest.mark.parametrize("level", [1, 2])
def test_generator_fade_in_at_alpha_0_is_the_previous_level_upsampled(config, level):
  gan, g_vars, _ = _variables(config)
  z = jax.random.normal(jax.random.key(1), (4, config.model.latent_dim))
  new = lambda v, a: _at(gan, config, level).generate(v, z, train=False,  # noqa: E731
                                                      extra={"alpha": jnp.float32(a)})[0]
  previous = _at(gan, config, level - 1).generate(g_vars, z, train=False)[0]  # alpha 1
  np.testing.assert_allclose(new(g_vars, 0.0), progan.upsample(previous), atol=1e-6)
  r = 4 * 2 ** level
  # alpha 0 ignores the new block; alpha 1 is the new block alone (the old toRGB is unused).
  np.testing.assert_allclose(new(_perturb(g_vars, f"conv0_{r}x{r}", f"to_rgb_{level}"), 0.0),
                             new(g_vars, 0.0), atol=1e-6)
  one = new(g_vars, 1.0)
  np.testing.assert_allclose(new(_perturb(g_vars, f"to_rgb_{level - 1}"), 1.0), one, atol=1e-5)
  assert one.shape == (4, r, r, 3)
  half = new(g_vars, 0.5)
  np.testing.assert_allclose(half, 0.5 * (new(g_vars, 0.0) + one), atol=1e-5)


@pytest.mark.parametrize("level", [1, 2])
def test_discriminator_fade_in_at_alpha_0_is_the_previous_level_on_downsampled_images(
    config, level):
  gan, _, d_vars = _variables(config)
  r = 4 * 2 ** level
  x = jax.random.uniform(jax.random.key(2), (4, r, r, 3), minval=-1, maxval=1)
  new = lambda v, a: _at(gan, config, level).discriminate(v, x, train=False,  # noqa: E731
                                                          extra={"alpha": jnp.float32(a)})[0]
  previous = _at(gan, config, level - 1).discriminate(d_vars, progan.downsample(x), train=False)[0]
  np.testing.assert_allclose(new(d_vars, 0.0), previous, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new(_perturb(d_vars, f"conv0_{r}x{r}", f"from_rgb_{level}"), 0.0),
                             new(d_vars, 0.0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new(_perturb(d_vars, f"from_rgb_{level - 1}"), 1.0),
                             new(d_vars, 1.0), rtol=1e-5, atol=1e-5)


def test_reals_are_blended_during_a_fade_as_the_paper_does(config):
  gan = _at(families.build(config), config, 1)
  x = jax.random.uniform(jax.random.key(3), (2, 8, 8, 3))
  blurred = np.repeat(np.repeat(np.asarray(x).reshape(2, 4, 2, 4, 2, 3).mean((2, 4)), 2, 1), 2, 2)
  np.testing.assert_allclose(gan.reals(x, {"alpha": jnp.float32(0.25)}),
                             0.75 * blurred + 0.25 * np.asarray(x), atol=1e-6)
  np.testing.assert_array_equal(gan.reals(x, {"alpha": jnp.float32(1.0)}), x)
  np.testing.assert_array_equal(_at(families.build(config), config, 0).reals(x[:, :4, :4]),
                                x[:, :4, :4])


# ---- the schedule ------------------------------------------------------------------------

def test_schedule_as_a_function_of_images_shown_matches_the_table(config):
  # 64 images per phase; batch 8 at 4x4 and 8x8, 4 at 16x16.
  table = [  # images shown -> (resolution, alpha, batch)
      (0, (4, 1.0, 8)), (56, (4, 1.0, 8)),
      (64, (8, 0.0, 8)), (72, (8, 0.125, 8)), (120, (8, 0.875, 8)),
      (128, (8, 1.0, 8)), (184, (8, 1.0, 8)),
      (192, (16, 0.0, 4)), (196, (16, 1 / 16, 4)), (224, (16, 0.5, 4)), (252, (16, 15 / 16, 4)),
      (256, (16, 1.0, 4)), (1000, (16, 1.0, 4)),
  ]
  phases = progan.phases(config)
  step, shown, got = 0, 0, {}
  while shown <= 1000:
    phase, alpha, images = progan.schedule_at(phases, step)
    assert images == shown
    got[shown] = (phase.resolution, alpha, phase.batch_size)
    shown, step = shown + phase.per_step, step + 1
  for images, expected in table:
    assert got[images] == pytest.approx(expected), images
  # The stages (one compiled program each) start where each level's fade starts.
  assert [(s.start, s.batch_size, s.image_shape, s.name) for s in families.stages(config)] == [
      (0, 8, (4, 4, 3), "4x4"), (8, 8, (8, 8, 3), "8x8"), (24, 4, (16, 16, 3), "16x16")]
  assert progan.schedule_steps(config) == 56
  # The growth state inside the step agrees with the host's schedule at every step.
  growth = families.build(config)
  for s in range(0, 60):
    extra = jax.device_get(growth.extra_update(None, jnp.int32(s - 1)) if s else growth.extra_init())
    phase, alpha, images = progan.schedule_at(phases, s)
    assert (int(extra["level"]), int(extra["images"])) == (phase.level, images)
    assert float(extra["alpha"]) == alpha


def test_the_paper_schedule_of_progan256():
  c = load_config("progan256")
  assemble.validate(c)
  phases = progan.phases(c)
  assert len(phases) == 13 and phases[0].resolution == 4 and phases[-1].resolution == 256
  assert all(p.images == 800_000 for p in phases)
  assert [p.batch_size for p in phases] == [16] * 11 + [14, 14]
  assert phases[11].start == 550_000 and phases[11].steps == 57_143
  assert c.train.num_steps == progan.schedule_steps(c) == 664_286


def test_growing_pipeline_follows_the_stages(config):
  import dataclasses  # pylint: disable=g-import-not-at-top
  from jaxgan.data import batches, spec as spec_lib  # pylint: disable=g-import-not-at-top
  config.data.flip = False
  data_stages = tuple((s.start, s.batch_size * config.train.d_steps, tuple(s.image_shape[:2]))
                      for s in families.stages(config))
  spec = spec_lib.from_config(config, stages=data_stages)
  stages = ((0, 8, (4, 4)), (8, 8, (8, 8)), (24, 4, (16, 16)))
  assert spec.stages == stages
  assert order.span(7, stages) == (56, 8, 0)
  assert order.span(8, stages) == (64, 8, 1)
  assert order.span(25, stages) == (196, 4, 2)
  # The reference: the same stream of 16x16 images, one per step.
  one = dataclasses.replace(spec, batch_size=1, stages=((0, 1, (16, 16)),))
  ref = batches.host_batches(one, 0, 0, 1)
  stream = np.concatenate([next(ref)["image"] for _ in range(220)])
  it = batches.host_batches(spec, 6, 0, 1)  # resumed at step 6
  for step in range(6, 27):
    first, size, index = order.span(step, stages)
    batch = next(it)["image"]
    h = stages[index][2][0]
    assert batch.shape == (size, h, h, 3), step
    expected = stream[first:first + size].reshape(size, h, 16 // h, h, 16 // h, 3).mean((2, 4))
    np.testing.assert_allclose(batch, expected, atol=1e-6)


def test_progan_fields_are_validated(config):
  bad = config.copy_and_resolve_references()
  bad.data.image_size = (16, 32)
  with pytest.raises(config_lib.ConfigError, match=r"data.image_size=\(16, 32\) is invalid: the "
                     r"progan family grows square images"):
    assemble.validate(bad)
  bad = config.copy_and_resolve_references()
  bad.model.batch_sizes = (8, 8)
  with pytest.raises(config_lib.ConfigError, match=r"model.batch_sizes=\(8, 8\) is invalid: "
                     r"expected a positive batch size for each of the 3 levels"):
    assemble.validate(bad)
  bad = config.copy_and_resolve_references()
  bad.train.batch_size = 8
  with pytest.raises(config_lib.ConfigError, match=r"train.batch_size=8 is invalid: .* expected "
                     r"train.batch_size = the last level's, 4"):
    assemble.validate(bad)
  bad = config.copy_and_resolve_references()
  bad.model.generator = {"features": (8,)}
  with pytest.raises(config_lib.ConfigError, match=r"not a field of family 'progan'"):
    assemble.validate(bad)


def test_the_drift_term_is_in_the_critic_loss_of_a_conditional_progan(config):
  config.model.num_classes = 3  # and the class-conditional networks train
  gan = families.build(config)
  stage = families.stages(config)[0]  # 4x4: the smallest program
  mesh = sharding.make_mesh()
  state = loop.init_state(config, gan, mesh)
  batch = {"image": jax.random.uniform(jax.random.key(0), (8, 4, 4, 3), minval=-1, maxval=1),
           "label": jnp.arange(8, dtype=jnp.int32) % 3}
  batch = jax.device_put(batch, sharding.batch_sharding(mesh))
  metrics = {}
  for drift in (0.0, 0.001):
    fn = step_lib.make_train_step(config, mesh, gan=gan.at(stage), donate=False, drift=drift)
    new, metrics[drift] = jax.device_get(fn(state, batch))
    assert int(new.step) == 1
  assert "drift" not in metrics[0.0]
  assert metrics[0.001]["drift"] > 0 and np.isfinite(metrics[0.001]["loss/g"])
  np.testing.assert_allclose(metrics[0.001]["loss/d"],
                             metrics[0.0]["loss/d"] + 0.001 * metrics[0.001]["drift"], rtol=1e-6)


# ---- a run through every phase -----------------------------------------------------------

def _arrays(state):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(
      (state.g.params, state.d.params, state.g_ema, state.extra, state.g.opt_state,
       state.d.opt_state, jax.random.key_data(state.rng))))]


@pytest.mark.slow
def test_tiny_progan_runs_every_phase_and_resumes_mid_fade_bit_exactly(config, tmp_path,
                                                                       monkeypatch):
  compiled = []
  original = loop._compile_step  # pylint: disable=protected-access

  def counting(cfg, gan, mesh, state, stage):
    compiled.append(stage.name)
    return original(cfg, gan, mesh, state, stage)
  monkeypatch.setattr(loop, "_compile_step", counting)
  full = loop.train_and_evaluate(config, str(tmp_path / "full"))
  assert compiled == ["4x4", "8x8", "16x16"]  # one program per resolution
  extra = jax.device_get(full.extra["family"])
  assert (int(extra["level"]), float(extra["alpha"]), int(extra["images"])) == (2, 1.0, 288)
  # The optimizers restarted at the last phase (the 16x16 stabilisation, step 40).
  assert int(full.g.opt_state[0].count) == int(full.d.opt_state[0].count) == 8

  stopped = config.copy_and_resolve_references()
  stopped.train.num_steps = 28  # 16x16 fade-in, alpha 0.25
  loop.train_and_evaluate(stopped, str(tmp_path / "resumed"))
  compiled.clear()
  resumed = loop.train_and_evaluate(config, str(tmp_path / "resumed"))
  assert compiled == ["16x16"]
  for a, b in zip(_arrays(full), _arrays(resumed), strict=True):
    np.testing.assert_array_equal(a, b)

  # Every grid has the final size (the GIF's frames line up), whatever the resolution.
  wd = workdir_lib.Workdir(tmp_path / "full")
  sizes = set()
  for _, path in wd.sample_grids():
    with Image.open(path) as im:
      sizes.add(im.size)
  assert len(wd.sample_grids()) == 7 and len(sizes) == 1
  # The generator of a mid-fade checkpoint samples at its resolution, with its alpha.
  gen = sampling.load_generator(tmp_path / "full", step=32)
  assert gen.gan.image_shape == (16, 16, 3) and float(gen.extra["alpha"]) == 0.5
  assert sampling.sample(gen, range(2)).shape == (2, 16, 16, 3)
  gen = sampling.load_generator(tmp_path / "full", step=16)
  assert sampling.sample(gen, range(2)).shape == (2, 8, 8, 3)

  # A changed schedule does not silently resume in another phase.
  changed = config.copy_and_resolve_references()
  changed.model.fade_images, changed.train.num_steps = 32, 60  # 16x16 stable from step 28
  with pytest.raises(config_lib.ConfigError, match=r"the checkpoint of step 48 is at 16x16, "
                     r"alpha 1.0000, after 288 images shown, but this config's schedule puts "
                     r"step 48 at 16x16, alpha 1.0000, after 272 images: model.fade_images"):
    loop.train_and_evaluate(changed, str(tmp_path / "full"))
