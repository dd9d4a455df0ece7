"""Tests of the main job: entry point artifacts, exact resume, SIGTERM, NaN stop, configs."""

import functools
import json
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from jaxgan import checkpointing
from jaxgan import config as config_lib
from jaxgan import families
from jaxgan import images
from jaxgan import workdir as workdir_lib
from jaxgan.training import assemble
from jaxgan.training import console
from jaxgan.training import loop as train
from jaxgan.training import state as state_lib
from jaxgan.training import step as steps
from tests.conftest import (REPO, TINY_CONFIG, TRAINED_OVERRIDES, TRAINED_STEPS, load_config,
                            run_main, subprocess_env)


def grid_size(config, num=None):
  """(width, height) of a sample grid of the config's images, upscaled to >= 512 pixels."""
  num = num or config.num_samples
  rows, cols = images.grid_shape(num)
  k = images.display_factor(num, tuple(config.data.image_size))
  h, w = (k * s for s in config.data.image_size)
  return cols * (w + 2) + 2, rows * (h + 2) + 2


def leaves_with_paths(state):
  tree = checkpointing.state_to_tree(state, 0)
  return {jax.tree_util.keystr(p): np.asarray(v)
          for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def checkpoint_steps(wd):
  return sorted(int(p.name) for p in wd.checkpoints.iterdir() if p.name.isdigit())


def restore_state(wd, config, step=None):
  gan = families.build(config)
  like = jax.jit(functools.partial(state_lib.create_state, config, gan))()
  manager = checkpointing.create_manager(wd.checkpoints, read_only=True)
  try:
    return checkpointing.restore(manager, like, step)
  finally:
    manager.close()


# ---- the entry point, end to end ----------------------------------------------------------

def test_entry_point_writes_every_artifact(trained_workdir):
  wd = workdir_lib.Workdir(trained_workdir)
  config = load_config()
  config.train.num_steps, config.train.ema_decay = TRAINED_STEPS, 0.9
  config.sample_every, config.checkpoint_every, config.log_every = 2, 4, 2

  # The resolved config, as JSON and as a config file that gives the same config back.
  saved = json.loads(wd.config_json.read_text())
  assert saved == json.loads(json.dumps(config.to_dict()))
  assert json.loads(json.dumps(load_config(wd.config_py).to_dict())) == saved

  # Checkpoints every 4 steps and at the end; the last one restores to step 6 with EMA.
  assert checkpoint_steps(wd) == [4, 6]
  state, data_step, step = restore_state(wd, config)
  assert (step, data_step, int(state.step)) == (6, 6, 6)
  assert state.g_ema is not None

  # Metrics: the first steps, every log_every steps; every line parses with the losses.
  records = [json.loads(line) for line in wd.metrics.read_text().splitlines()]
  assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
  for r in records:
    for key in ("loss/d", "loss/d_real", "loss/d_fake", "loss/g", "d/real", "d/fake",
                "grad_norm/d", "grad_norm/g", "perf/steps_per_sec", "perf/images_per_sec"):
      assert np.isfinite(r[key]), (key, r)

  # TensorBoard event files with the scalars and the sample grids.
  events = list(wd.tensorboard.glob("events.out.tfevents.*"))
  assert events and all(e.stat().st_size > 0 for e in events)
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  acc = event_accumulator.EventAccumulator(str(wd.tensorboard), size_guidance={"tensors": 0})
  acc.Reload()
  assert {"loss/d", "loss/g", "perf/steps_per_sec", "samples", "real"} <= set(
      acc.Tags()["tensors"])
  for tag in ("samples", "real"):  # Images as [width, height, PNG], upscaled like the PNGs.
    width, height = (int(b) for b in acc.Tensors(tag)[0].tensor_proto.string_val[:2])
    assert (width, height) == grid_size(config) and max(width, height) >= 512
  # The config as hparams: the run's batch size and loss are columns of the HParams tab.
  from tensorboard.plugins.hparams import plugin_data_pb2  # pylint: disable=g-import-not-at-top
  content = acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
  session = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
  assert session.hparams["train.batch_size"].number_value == config.train.batch_size
  assert session.hparams["train.loss"].string_value == config.train.loss
  assert session.hparams["data.image_size"].string_value == repr(list(config.data.image_size))

  # Sample grids at 0, 2, 4, 6 and the real grid, all of the grid's size.
  assert [s for s, _ in wd.sample_grids()] == [0, 2, 4, 6]
  for path in [p for _, p in wd.sample_grids()] + [wd.real_grid]:
    with Image.open(path) as im:
      assert (im.format, im.size, im.mode) == ("PNG", grid_size(config), "RGB")
  with Image.open(wd.real_grid) as real, Image.open(wd.sample_grid(0)) as fake:
    assert np.asarray(real).std() > 10 and np.asarray(fake).std() > 1  # Not blank.

  # The GIF has one frame per grid; the loss plot is a PNG of two columns of panels (losses,
  # D logits, gradient norms).
  with Image.open(wd.gif) as gif:
    assert gif.format == "GIF" and gif.n_frames == 4
  with Image.open(wd.loss_plot) as plot:
    assert plot.format == "PNG" and plot.size[0] >= 1200 and plot.size[1] >= 700


def test_the_sample_grid_uses_the_ema_generator_on_fixed_seeds(trained_workdir):
  from jaxgan import sampling  # pylint: disable=g-import-not-at-top
  wd = workdir_lib.Workdir(trained_workdir)
  gen = sampling.load_generator(trained_workdir, step=4)
  assert gen.ema
  grid = images.make_grid(sampling.sample(gen, range(gen.config.num_samples)))
  np.testing.assert_array_equal(grid, np.asarray(Image.open(wd.sample_grid(4))))


# ---- resume, preemption, NaN --------------------------------------------------------------

def test_resume_is_bit_exact(trained_workdir, tmp_path):
  """Stopped at step 3 (in this process), resumed to 6 by the entry point (a new process):
  every array equals those of the uninterrupted 6-step run of `trained_workdir`."""
  config = load_config()
  config.train.ema_decay, config.train.num_steps = 0.9, 3
  config.sample_every, config.checkpoint_every, config.log_every = 2, 4, 2
  first = train.train_and_evaluate(config, str(tmp_path))
  assert int(first.step) == 3
  proc = run_main(tmp_path, *TRAINED_OVERRIDES)
  assert proc.returncode == 0, proc.stderr[-5000:]
  assert "Resuming from the checkpoint of step 3" in proc.stderr

  config.train.num_steps = TRAINED_STEPS
  full, _, _ = restore_state(workdir_lib.Workdir(trained_workdir), config)
  resumed, data_step, step = restore_state(workdir_lib.Workdir(tmp_path), config)
  assert (step, data_step) == (TRAINED_STEPS, TRAINED_STEPS)
  expected, got = leaves_with_paths(full), leaves_with_paths(resumed)
  assert expected.keys() == got.keys() and any("g_ema" in k for k in got)
  for key in expected:
    assert np.array_equal(expected[key], got[key]), key
  # The same sample grids and losses after the resume; each logged step appears once.
  a, b = workdir_lib.Workdir(trained_workdir), workdir_lib.Workdir(tmp_path)
  for step in (4, 6):
    assert a.sample_grid(step).read_bytes() == b.sample_grid(step).read_bytes(), step
  losses = lambda wd: [{k: v for k, v in r.items() if not k.startswith("perf/")}  # noqa: E731
                       for r in workdir_lib.read_metrics(wd.metrics)]
  assert losses(a) == losses(b)
  raw = [json.loads(line)["step"] for line in b.metrics.read_text().splitlines()]
  assert raw == [1, 2, 3, 4, 5, 6]


def test_sigterm_saves_the_current_step_and_exits_cleanly(tmp_path):
  workdir = tmp_path / "run"
  wd = workdir_lib.Workdir(workdir)
  cmd = [sys.executable, "-m", "jaxgan.main", f"--config={TINY_CONFIG}", f"--workdir={workdir}",
         "--config.train.ema_decay=0.9",  # As the trained_workdir run: its compilation is cached.
         "--config.train.num_steps=1000000", "--config.log_every=10",
         "--config.checkpoint_every=1000000", "--config.sample_every=1000000"]
  proc = subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  try:
    deadline = time.monotonic() + 240
    while not (wd.metrics.exists() and any(r["step"] >= 20 for r in
                                           workdir_lib.read_metrics(wd.metrics))):
      assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()[-5000:]
      time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 0, out[-5000:]
  assert "Stopped by SIGTERM" in out
  # Only the checkpoint written on SIGTERM exists; it is of the step reached, >= the last log.
  (step,) = checkpoint_steps(wd)
  assert step > 20 and f"Stopped by SIGTERM at step {step};" in out
  assert step >= workdir_lib.read_metrics(wd.metrics)[-1]["step"]
  config = load_config()
  config.train.ema_decay = 0.9
  state, data_step, _ = restore_state(wd, config)
  assert int(state.step) == data_step == step


NAN_AT = 6


def _poison_step(*, metrics: bool):
  """Wraps steps.make_train_step: from step NAN_AT on, G's parameters are NaN, and with
  `metrics` also loss/d (as a diverging run makes them; the real step runs unchanged)."""
  real = steps.make_train_step

  def make(config, mesh, **kw):
    step_fn = real(config, mesh, **kw)

    def poisoned(state, batch):
      state, out = step_fn(state, batch)
      bad = state.step >= NAN_AT
      if metrics:
        out = dict(out, **{"loss/d": jnp.where(bad, jnp.nan, out["loss/d"])})
      params = jax.tree.map(lambda p: jnp.where(bad, jnp.nan, p), state.g.params)
      return state.replace(g=state.g.replace(params=params)), out
    return jax.jit(poisoned, donate_argnums=0)
  return make


@pytest.mark.parametrize("log_every,checkpoint_every,last_good", [
    (10, 4, 4),  # Between logging steps: caught before the checkpoint of step 8.
    (3, 4, 4),  # Caught on the logging step 6.
    (100, 6, None),  # On a checkpoint step, before any checkpoint: caught before saving.
])
def test_nan_stops_naming_the_step_and_the_last_good_checkpoint(
    tiny_config, tmp_path, monkeypatch, log_every, checkpoint_every, last_good):
  monkeypatch.setattr(steps, "make_train_step", _poison_step(metrics=True))
  nan_at = NAN_AT
  config = tiny_config
  config.train.num_steps, config.log_every = 20, log_every
  config.checkpoint_every, config.sample_every = checkpoint_every, 100
  wd = workdir_lib.Workdir(tmp_path / "run")
  with pytest.raises(train.NonFiniteError) as e:
    train.train_and_evaluate(config, str(wd.root))
  message = str(e.value)
  assert f"non-finite metrics at step {nan_at}: loss/d=nan" in message
  if last_good is None:
    assert "there is no checkpoint that passes its checks" in message
    assert checkpoint_steps(wd) == []
  else:
    assert (f"the last good checkpoint (verified) is step {last_good} in {wd.checkpoints}"
            in message)
    assert checkpoint_steps(wd) == [last_good]
    state, _, _ = restore_state(wd, config)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(
        checkpointing.state_to_tree(state, 0)) if np.issubdtype(x.dtype, np.floating))


def test_a_nan_only_in_the_state_is_not_checkpointed(tiny_config, tmp_path, monkeypatch):
  monkeypatch.setattr(steps, "make_train_step", _poison_step(metrics=False))
  config = tiny_config
  config.train.num_steps, config.checkpoint_every, config.log_every = NAN_AT, 100, 100
  with pytest.raises(train.NonFiniteError, match="non-finite values in the training state "
                     f"after step {NAN_AT}"):
    train.train_and_evaluate(config, str(tmp_path))
  assert checkpoint_steps(workdir_lib.Workdir(tmp_path)) == []


def test_resume_with_other_shapes_fails_naming_the_entries(tiny_config, tmp_path):
  config = tiny_config
  config.train.num_steps = 2
  train.train_and_evaluate(config, str(tmp_path))
  before = (tmp_path / "config.json").read_text()
  config.model.generator.base_features = 32
  config.train.ema_decay = 0.5
  config.train.num_steps = 4
  with pytest.raises(checkpointing.CheckpointMismatchError) as e:
    train.train_and_evaluate(config, str(tmp_path))
  message = str(e.value)
  assert f"checkpoint at step 2 in {tmp_path / 'checkpoints'}" in message
  assert "g/params/Dense_0/kernel is (8, 256) float32 there but (8, 512) float32" in message
  assert "g_ema is in this config but not in the checkpoint" in message
  assert (tmp_path / "config.json").read_text() == before  # The run's config is untouched.


# ---- configs ------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,expected", [
    ("train.loss", "wasserstein_gp", "config.train.loss='wasserstein_gp' is invalid: expected "
     "one of 'non_saturating'"),
    ("model.generator.norm", "group", "config.model.generator.norm='group' is invalid: "
     "expected one of 'batch', 'spectral', 'layer', 'none'"),
    ("model.discriminator.norm", "instance", "config.model.discriminator.norm='instance' is "
     "invalid: expected one of"),
    ("data.image_size", (0, 16), "config.data.image_size=(0, 16) is invalid: expected "
     "(height, width), both positive"),
    ("optim.d_lr", 0.0, "config.optim.d_lr=0.0 is invalid: expected a positive number"),
    ("optim.g_lr", -1e-4, "config.optim.g_lr=-0.0001 is invalid: expected a positive number"),
    ("train.batch_size", 0, "config.train.batch_size=0 is invalid: expected a positive number"),
    ("data.source", "folder:/no/such/paintings", "config.data.source='folder:/no/such/paintings' "
     "is invalid: /no/such/paintings does not exist; expected 'folder:PATH' with PATH a "
     "directory of images"),
])
def test_invalid_config_stops_before_compiling(tiny_config, tmp_path, monkeypatch, field, value,
                                               expected):
  monkeypatch.setattr(steps, "make_train_step", lambda *a, **k: pytest.fail("compiled"))
  section, name = field.rsplit(".", 1)
  target = tiny_config
  for part in section.split("."):
    target = target[part]
  target[name] = value
  with pytest.raises(config_lib.ConfigError) as e:
    train.train_and_evaluate(tiny_config, str(tmp_path / "run"))
  assert expected in str(e.value)
  assert not (tmp_path / "run").exists()


def test_image_size_the_architecture_cannot_produce():
  config = load_config(REPO / "configs" / "radford64.py")
  config.data.image_size = (2048, 2048)
  with pytest.raises(config_lib.ConfigError, match=r"config.data.image_size=\(2048, 2048\) is "
                     r"invalid: model.generator.strides \(2, 2, 2, 2\) leave a 128x128 base map"):
    assemble.validate(config)


def test_cli_reports_an_invalid_config_without_a_traceback(tmp_path):
  proc = run_main(tmp_path / "run", "--config.train.loss=bogus")
  assert proc.returncode == 1
  assert "config.train.loss='bogus' is invalid: expected one of" in proc.stderr
  assert "Traceback" not in proc.stderr
  assert not (tmp_path / "run").exists()


def test_every_config_file_is_valid_and_dcgan128_is_the_hobby_recipe():
  for path in sorted((REPO / "configs").glob("*.py")):
    assemble.validate(load_config(path))
  c = load_config(REPO / "configs" / "dcgan128.py")
  assert (c.optim.b1, c.optim.d_lr, c.optim.g_lr) == (0.5, 2e-4, 1e-4)
  assert (c.train.d_steps, c.train.g_steps, c.train.num_steps) == (1, 2, 20_000)
  assert c.data.source == "builtin:shapes" and tuple(c.data.image_size) == (128, 128)


# ---- progress formatting ------------------------------------------------------------------

def test_progress_line_and_durations():
  assert [console.format_duration(s) for s in (12, 245, 3 * 3600 + 720, 2 * 86400 + 3 * 3600)] == [
      "12s", "4m 05s", "3h 12m", "2d 03h"]
  eta = console.remaining_seconds(50, 20_000, 0.07, families.stages(load_config()))
  line = console.format_progress(50, 20_000, 714.0, 0.07, eta, {"loss/g": 0.7, "loss/d": 1.25,
                                                                 "d/real": 0.3})
  assert line == "step 50/20000 0.2% | 11m 54s | 14.3 s/step | ETA 3d 07h | D 1.25 G 0.7"
  fast = console.format_progress(19_999, 20_000, 86_000, 12.5, 0.08, {},
                                 where="level 6 (256x256), fading in " + "x" * 80)
  # Too long: the elapsed time goes, then the family's state is shortened.
  assert len(fast) == 100 and fast.startswith(
      "step 19999/20000 100.0% | 12.5 steps/s | ETA 0s | level 6 (256x256")
  assert fast.endswith("...")
  fits = console.format_progress(5, 48, 3.0, 2.0, 21.0, {"loss/d": 1.5}, where="8x8 stable, 40 img")
  assert fits == "step 5/48 10.4% | 3s | 2 steps/s | ETA 21s | D 1.5 | 8x8 stable, 40 img"


def test_eta_of_a_growing_model_weights_later_stages_by_their_cost():
  """ProGAN: the steps of a later, larger stage count by images x pixels per step."""
  stages = [families.Stage(0, 16, (4, 4, 3)), families.Stage(10, 16, (8, 8, 3)),
            families.Stage(30, 8, (16, 16, 3))]
  # At step 5 of stage 0 (1 step/s): 5 more of its steps, 20 of 4x its cost, 10 of 8x.
  assert console.remaining_seconds(5, 40, 1.0, stages) == 5 + 20 * 4 + 10 * 8
  assert console.remaining_seconds(35, 40, 2.0, stages) == 2.5
