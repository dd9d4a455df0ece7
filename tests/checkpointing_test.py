"""Tests of jaxgan.checkpointing: exact round trip, retention, shape check, generator-only load."""

import functools
import json

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxgan import checkpointing
from jaxgan.training import state as state_lib
from jaxgan import families
from tests.conftest import load_config


def make_state(config, seed):
  gan = families.build(config)
  init = jax.jit(functools.partial(state_lib.create_state, config, gan))
  return init(rng=jax.random.key(seed))  # The key is an argument: one compilation per config.


@pytest.fixture(scope="module")
def ema_config():
  config = load_config()
  config.train.ema_decay = 0.9
  return config


@pytest.fixture(scope="module")
def saved(ema_config, tmp_path_factory):
  """A checkpoint of step 7 (pipeline position 7) of a state from seed 1."""
  directory = tmp_path_factory.mktemp("ckpt") / "checkpoints"
  state = make_state(ema_config, seed=1)
  state = state.replace(step=state.step + 7)
  manager = checkpointing.create_manager(directory, max_to_keep=2)
  assert checkpointing.save(manager, 7, state, 7, ema_config)
  manager.wait_until_finished()
  manager.close()
  return directory, state


def flat(state):
  return {jax.tree_util.keystr(p): np.asarray(v) for p, v in
          jax.tree_util.tree_flatten_with_path(checkpointing.state_to_tree(state, 0))[0]}


def test_restore_gives_back_every_array_bit_exactly(ema_config, saved):
  directory, state = saved
  like = make_state(ema_config, seed=2)  # Other values, same shapes.
  manager = checkpointing.create_manager(directory, read_only=True)
  restored, data_step, step = checkpointing.restore(manager, like)
  manager.close()
  assert (step, data_step, int(restored.step)) == (7, 7, 7)
  expected, got = flat(state), flat(restored)
  assert expected.keys() == got.keys()
  assert {"['g_ema']", "['rng']", "['data_step']"} <= {k[:k.index("]") + 1] for k in got}
  for key in expected:
    assert np.array_equal(expected[key], got[key]), key
  # The key comes back as a typed key of the same implementation, usable as before.
  assert jax.random.key_impl(restored.rng) == jax.random.key_impl(state.rng)
  np.testing.assert_array_equal(jax.random.normal(restored.rng, (3,)),
                                jax.random.normal(state.rng, (3,)))
  # The optimizer state is the optax structure again, with the trained values.
  assert jax.tree.structure(restored.g.opt_state) == jax.tree.structure(state.g.opt_state)


def test_max_to_keep_and_an_existing_step_is_not_saved_again(ema_config, tmp_path):
  state = make_state(ema_config, seed=0)
  manager = checkpointing.create_manager(tmp_path, max_to_keep=2)
  for step in (1, 2, 3):
    assert checkpointing.save(manager, step, state, step, ema_config)
  assert not checkpointing.save(manager, 3, state, 3, ema_config)
  manager.wait_until_finished()
  assert list(manager.all_steps()) == [2, 3]
  manager.close()


def test_a_different_model_is_named_entry_by_entry(saved):
  directory, _ = saved
  config = load_config()  # No EMA, and a wider D.
  config.model.discriminator.features = (16,)
  manager = checkpointing.create_manager(directory, read_only=True)
  with pytest.raises(checkpointing.CheckpointMismatchError) as e:
    checkpointing.restore(manager, make_state(config, seed=0))
  manager.close()
  message = str(e.value)
  assert "checkpoint at step 7 in" in message and "(" in message
  assert "g_ema is in the checkpoint but not in this config" in message
  assert "d/params/Conv_0/kernel is (3, 3, 3, 8) float32 there but (3, 3, 3, 16) float32" in message


def test_restore_generator_reads_only_the_generator(ema_config, saved):
  directory, state = saved
  arrays, config, step = checkpointing.restore_generator(directory)
  assert step == 7 and config == json.loads(json.dumps(ema_config.to_dict()))
  assert set(arrays) == {"params", "collections", "g_ema"}
  for name, expected in (("params", state.g.params), ("collections", state.g.collections),
                         ("g_ema", state.g_ema)):
    jax.tree.map(np.testing.assert_array_equal, arrays[name], expected)


def test_restore_generator_without_checkpoints_says_so(tmp_path, saved):
  with pytest.raises(FileNotFoundError, match="no checkpoints folder"):
    checkpointing.restore_generator(tmp_path / "missing")
  with pytest.raises(FileNotFoundError, match=r"no checkpoint 3 in .* \(it has \[7\]\)"):
    checkpointing.restore_generator(saved[0], step=3)


def test_checkpoints_of_the_layout_before_families_are_read(ema_config, tmp_path):
  # The layout before the family interface: G's and D's state under 'batch_stats', no
  # 'extra', and a config that names the family 'model.name'.
  state = make_state(ema_config, seed=3)
  legacy = checkpointing._to_legacy(checkpointing.state_to_tree(state, 5))  # pylint: disable=protected-access
  assert "batch_stats" in legacy["g"] and "extra" not in legacy
  old_config = ema_config.to_dict()
  old_config["model"]["name"] = old_config["model"].pop("family")
  manager = checkpointing.create_manager(tmp_path / "checkpoints", max_to_keep=2)
  manager.save(5, args=ocp.args.Composite(state=ocp.args.PyTreeSave(legacy),
                                          config=ocp.args.JsonSave(old_config)))
  manager.wait_until_finished()
  restored, data_step, _ = checkpointing.restore(manager, make_state(ema_config, seed=4))
  manager.close()
  assert data_step == 5
  expected, got = flat(state), flat(restored)
  assert expected.keys() == got.keys()
  for key in expected:
    assert np.array_equal(expected[key], got[key]), key
  arrays, config, _ = checkpointing.restore_generator(tmp_path / "checkpoints")
  assert set(arrays) == {"params", "collections", "g_ema"}
  assert config["model"]["name"] == "dcgan"
  for a, b in zip(jax.tree.leaves(arrays["collections"]), jax.tree.leaves(state.g.collections),
                  strict=True):
    assert np.array_equal(a, b)
  from jaxgan import sampling  # pylint: disable=g-import-not-at-top
  gen = sampling.load_generator(tmp_path)
  assert gen.config.model.family == "dcgan" and gen.config.model.num_classes == 0
  assert sampling.sample(gen, [0, 1]).shape == (2, 16, 16, 3)
