"""DiffAugment / ADA ops on hand-made images, gradients through them, ADA's controller, and
the augmentation inside the compiled step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import config as config_lib
from jaxgan import families, sharding
from jaxgan.training import assemble
from jaxgan.training import augment
from jaxgan.training import loop
from jaxgan.training import step as steps
from tests.helpers import tiny_config

KEY = jax.random.key(5)


def dot(h=16, w=12, c=3, n=4, at=(5, 7)):
  """n images, zero but one bright pixel at `at` (not square: 16x12)."""
  x = np.zeros((n, h, w, c), np.float32)
  x[:, at[0], at[1], :] = 1.0
  return jnp.asarray(x)


@pytest.mark.parametrize("op", augment.OPS)
def test_every_op_is_the_identity_at_p0(op):
  x = jax.random.uniform(KEY, (4, 16, 12, 3), minval=-1, maxval=1)
  out = augment.augment(x, jax.random.key(1), 0.0, (op,))
  np.testing.assert_array_equal(np.asarray(out), np.asarray(x))


def test_translation_moves_a_pixel_by_the_drawn_offset():
  x = dot()
  params = augment.draw(jax.random.key(2), x.shape, ("translation",), 1.0)
  out = np.asarray(augment.apply(x, params, ("translation",)))
  dy, dx = np.asarray(params["translation/dy"]), np.asarray(params["translation/dx"])
  assert np.all(np.abs(dy) <= 2) and np.all(np.abs(dx) <= 2)  # 1/8 of 16 and of 12, rounded
  assert len({(a, b) for a, b in zip(dy, dx)}) > 1  # drawn per image
  for i in range(len(x)):
    expected = np.zeros(x.shape[1:], np.float32)
    expected[5 + dy[i], 7 + dx[i], :] = 1.0
    np.testing.assert_array_equal(out[i], expected)


def test_translation_pads_with_zeros():
  x = jnp.ones((1, 8, 8, 1))
  params = {"translation/apply": jnp.array([True]), "translation/dy": jnp.array([1]),
            "translation/dx": jnp.array([-1])}
  out = np.asarray(augment.apply(x, params, ("translation",)))[0, :, :, 0]
  assert out[0].sum() == 0 and out[:, -1].sum() == 0 and out[1:, :-1].min() == 1


def test_cutout_zeroes_the_drawn_square():
  x = jnp.ones((3, 16, 12, 1))
  params = augment.draw(jax.random.key(3), x.shape, ("cutout",), 1.0)
  out = np.asarray(augment.apply(x, params, ("cutout",)))
  for i in range(3):
    cy, cx = int(params["cutout/cy"][i]), int(params["cutout/cx"][i])
    expected = np.ones((16, 12), np.float32)
    expected[max(cy - 4, 0):cy + 4, max(cx - 3, 0):cx + 3] = 0  # 8 x 6: half of each side
    np.testing.assert_array_equal(out[i, :, :, 0], expected)


def test_color_shifts_and_scales_as_specified():
  x = jax.random.uniform(KEY, (4, 8, 8, 3), minval=-0.5, maxval=0.5)
  params = augment.draw(jax.random.key(4), x.shape, ("color",), 1.0)
  only = lambda name: {**params, **{f"{o}/apply": jnp.full((4,), o == name)  # noqa: E731
                                    for o in ("brightness", "saturation", "contrast")}}
  ub, us, uc = (np.asarray(params[f"{n}/u"]) for n in ("brightness", "saturation", "contrast"))
  xn = np.asarray(x)
  bright = np.asarray(augment.apply(x, only("brightness"), ("color",)))
  np.testing.assert_allclose(bright.mean(axis=(1, 2, 3)), xn.mean(axis=(1, 2, 3)) + ub - 0.5,
                             atol=1e-6)
  sat = np.asarray(augment.apply(x, only("saturation"), ("color",)))
  grey = xn.mean(axis=3, keepdims=True)
  np.testing.assert_allclose(sat, (xn - grey) * 2 * us[:, None, None, None] + grey, atol=1e-6)
  con = np.asarray(augment.apply(x, only("contrast"), ("color",)))
  mean = xn.mean(axis=(1, 2, 3), keepdims=True)
  np.testing.assert_allclose(con.std(axis=(1, 2, 3)), xn.std(axis=(1, 2, 3)) * (uc + 0.5),
                             rtol=1e-5)
  np.testing.assert_allclose(con.mean(axis=(1, 2, 3), keepdims=True), mean, atol=1e-6)


def test_flip_and_rotations():
  x = dot(h=8, w=8, n=3, at=(1, 2))
  params = {"rotate90/apply": jnp.array([True, True, True]), "rotate90/k": jnp.array([1, 2, 3])}
  out = np.asarray(augment.apply(x, params, ("rotate90",)))[..., 0]
  assert [tuple(np.argwhere(o)[0]) for o in out] == [(5, 1), (6, 5), (2, 6)]
  flipped = np.asarray(augment.apply(x, {"flip/apply": jnp.array([True, False, True])},
                                     ("flip",)))[..., 0]
  assert [tuple(np.argwhere(o)[0]) for o in flipped] == [(1, 5), (1, 2), (1, 5)]
  # Non-square images rotate by 180 degrees only, keeping their shape.
  tall = dot(h=8, w=6, n=2, at=(1, 2))
  params = augment.draw(jax.random.key(0), tall.shape, ("rotate90",), 1.0)
  assert set(np.asarray(params["rotate90/k"])) == {2}
  out = np.asarray(augment.apply(tall, params, ("rotate90",)))
  assert out.shape == tall.shape and tuple(np.argwhere(out[0, ..., 0])[0]) == (6, 3)


@pytest.mark.parametrize("op", augment.OPS)
def test_gradients_flow_through_every_op(op):
  x = jax.random.uniform(KEY, (4, 8, 8, 1), minval=-1, maxval=1)  # grayscale
  weights = jax.random.normal(jax.random.key(9), x.shape)
  grad = jax.grad(lambda x: jnp.sum(augment.augment(x, jax.random.key(6), 1.0, (op,)) * weights))(x)
  grad = np.asarray(grad)
  assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0.1


def test_ada_moves_p_at_the_specified_rate():
  """D always says 'real' (sign +1 > target): p rises by batch * interval / 500k per
  interval; a D at chance (sign -1 on average here) lowers it, never below 0."""
  state = {"p": jnp.float32(0.0), "rt_sum": jnp.float32(0.0), "rt_count": jnp.int32(0)}
  update = jax.jit(lambda s, sign: augment.ada_update(s, sign, 64, target=0.6, interval=4,
                                                       kimg=500, p_max=0.5))
  ps = []
  for _ in range(40):
    state, rt = update(state, jnp.float32(1.0))
    ps.append(float(state["p"]))
  assert float(rt) == 1.0
  step = 64 * 4 / 500_000
  np.testing.assert_allclose(ps[3::4], step * np.arange(1, 11), rtol=1e-5)
  assert ps[0] == ps[1] == ps[2] == 0.0  # adjusted once per interval
  for _ in range(4 * 7):
    state, _ = update(state, jnp.float32(-1.0))
  np.testing.assert_allclose(float(state["p"]), 3 * step, rtol=1e-4)
  capped = {**state, "p": jnp.float32(0.4999)}
  for _ in range(8):
    capped, _ = update(capped, jnp.float32(1.0))
  assert float(capped["p"]) == pytest.approx(0.5)  # ada_max


def test_bad_augment_fields_are_config_errors():
  for field, value, message in [("policy", "color,zoom", "comma-separated list of flip"),
                                ("probability", 1.5, r"\[0, 1\]"), ("ada_max", 0.0, r"\(0, 1\]")]:
    config = tiny_config(**{f"augment.{field}": value})
    with pytest.raises(config_lib.ConfigError, match=f"config.augment.{field}=.*{message}"):
      assemble.validate(config)
  with pytest.raises(config_lib.ConfigError, match="augment.ada=True.*needs ops"):
    assemble.validate(tiny_config(**{"augment.ada": True}))


ADA_CONFIG = {"augment.policy": "flip,rotate90,translation,color,cutout", "augment.ada": True,
              "augment.ada_interval": 3, "augment.ada_kimg": 0.1, "train.g_steps": 1}


def _ada_step():
  """The ADA config, its networks, its compiled step and a fresh state of that step's types
  (strong, as a restored one: the step compiles once)."""
  config = tiny_config(**ADA_CONFIG)
  gan = families.build(config)
  mesh = sharding.make_mesh(jax.devices()[:1])
  step = steps.make_train_step(config, mesh, donate=False)
  return config, gan, step, lambda: loop.init_state(config, gan, mesh)


def test_the_step_augments_what_d_sees_and_adapts_p():
  """At p=1 D's losses differ from p=0 (where the augmentation is the identity); with ADA,
  p and r_t are in the metrics and the state's extra part, and p moves after an interval
  by the specified amount in the direction r_t says."""
  _, _, step, fresh = _ada_step()
  batch = {"image": jax.random.uniform(KEY, (8, 16, 16, 3), minval=-1, maxval=1)}
  state = fresh()
  assert float(state.extra["augment"]["p"]) == 0.0  # ADA starts at 0
  placed = state.extra["augment"]["p"].sharding  # the same shardings: one compilation
  at = lambda p: state.replace(extra={**state.extra, "augment": {  # noqa: E731
      **state.extra["augment"], "p": jax.device_put(jnp.float32(p), placed)}})
  _, m0 = step(at(0.0), batch)
  _, m1 = step(at(1.0), batch)
  assert float(m0["loss/d"]) != float(m1["loss/d"])
  s = at(0.0)
  for _ in range(3):
    s, metrics = step(s, batch)
  # One interval of 3 steps at batch 8: p moved by 8 * 3 / 100 images from 0, up if r_t
  # of the interval was above the target 0.6, else it stayed at 0 (clipped).
  rt = float(metrics["augment/rt"])
  assert -1.0 <= rt <= 1.0
  assert float(s.extra["augment"]["p"]) == pytest.approx(0.24 if rt > 0.6 else 0.0)
  assert float(metrics["augment/p"]) == float(s.extra["augment"]["p"])
  assert int(s.extra["augment"]["rt_count"]) == 0


def test_resume_with_ada_is_bit_exact(tmp_path):
  """4 steps straight equal 2 steps, an Orbax save and restore (p and the interval's r_t
  sum in the checkpoint), and 2 more: every array, p included."""
  from jaxgan import checkpointing  # pylint: disable=g-import-not-at-top
  config, _, step, fresh = _ada_step()  # ADA's interval of 3 steps: resumed mid-interval
  batch = {"image": jax.random.uniform(KEY, (8, 16, 16, 3), minval=-1, maxval=1)}
  straight = fresh()
  for _ in range(4):
    straight, _ = step(straight, batch)
  state = fresh()
  for _ in range(2):
    state, _ = step(state, batch)
  manager = checkpointing.create_manager(tmp_path, max_to_keep=2)
  checkpointing.save(manager, 2, state, 2, config)
  manager.wait_until_finished()
  state, _, _ = checkpointing.restore(manager, fresh())
  manager.close()
  assert int(state.extra["augment"]["rt_count"]) == 2
  for _ in range(2):
    state, _ = step(state, batch)
  for a, b in zip(jax.tree.leaves(checkpointing.state_to_tree(straight, 0)),
                  jax.tree.leaves(checkpointing.state_to_tree(state, 0)), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

