"""The training loop: state, restore, one compiled step, then the periodic actions.

`train_and_evaluate(config, workdir)` builds the family's networks and the state, restores
it when the workdir has a checkpoint (see `jaxgan.checkpointing`), compiles the step once
and runs it to `config.train.num_steps`; after each step every due action of
`jaxgan.training.actions` runs (log, sample grids, checkpoint, evaluators), writing what
`jaxgan.workdir` describes.

The hot loop keeps everything on the devices: metrics are summed by a small jitted
function, and the host reads them only on logging steps (the first few steps, every
`log_every` steps, and when `log_every_secs` have passed). The host waits for step k-1
after dispatching step k (no transfer, and the device never idles): at most two steps are in
flight, so a signal is answered within two steps and the host cannot queue hundreds of steps
ahead. Sample grids and checkpoints read the state on their steps.

Non-finite values stop the run: every step folds `isfinite` of its metrics into a device
flag, which is read at logging steps and before every checkpoint (the state itself is
checked too), so a checkpoint never holds NaN or Inf. SIGTERM and SIGINT (Ctrl-C) let the
steps in flight finish, save a checkpoint of the step reached and return normally; a second
Ctrl-C aborts.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import signal
import threading
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers
from jax.experimental import multihost_utils

from jaxgan import checkpointing
from jaxgan import config as config_lib
from jaxgan import distributed
from jaxgan import errors
from jaxgan import families
from jaxgan import hostmem
from jaxgan import images as images_lib
from jaxgan import input_pipeline
from jaxgan import jsonl_writer
from jaxgan import lock as lock_lib
from jaxgan import sharding
from jaxgan import workdir as workdir_lib
from jaxgan.training import actions as actions_lib
from jaxgan.training import state as state_lib
from jaxgan.training import step as step_lib

Metrics = dict[str, jax.Array]
# Every step is logged at first, so that progress shows before the first `log_every`.
LOG_FIRST_STEPS = 5
# Console width of a progress line: 100 columns less the log prefix of jaxgan.cli.
PROGRESS_WIDTH = 89


NonFiniteError = errors.NonFiniteError


class _StopSignal:
  """Sets `.signum` on SIGTERM or SIGINT while active (main thread only); no I/O in the handler.

  After the first signal that signal's default action is back, so a second Ctrl-C (or
  SIGTERM) ends the process at once, from the kernel, even while the main thread waits in
  C code (a step, a checkpoint write): a half-written checkpoint is an uncommitted
  temporary folder that the next run removes, and the earlier ones are intact.
  """

  def __init__(self):
    self.signum = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    self.signum = signum
    signal.signal(signum, signal.SIG_DFL)

  def __enter__(self) -> _StopSignal:
    if threading.current_thread() is threading.main_thread():
      for s in (signal.SIGTERM, signal.SIGINT):
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)


_host = actions_lib.host


# ---- metrics on the device ----------------------------------------------------------------

def _empty_accumulator(metrics: Metrics) -> dict[str, Any]:
  zeros = lambda: jax.tree.map(jnp.zeros_like, metrics)  # noqa: E731  (two buffers: both donated)
  return {"sum": zeros(), "count": jnp.zeros((), jnp.int32),
          "bad_step": jnp.full((), -1, jnp.int32), "bad": zeros()}


@functools.partial(jax.jit, donate_argnums=0)
def _accumulate(acc: dict[str, Any], metrics: Metrics, step: jax.Array) -> dict[str, Any]:
  """Adds a step's metrics to the sums and records the first step with a non-finite metric."""
  finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(metrics)]))
  first_bad = (acc["bad_step"] < 0) & ~finite
  return {"sum": jax.tree.map(jnp.add, acc["sum"], metrics), "count": acc["count"] + 1,
          "bad_step": jnp.where(first_bad, step, acc["bad_step"]),
          "bad": jax.tree.map(lambda b, m: jnp.where(first_bad, m, b), acc["bad"], metrics)}


@jax.jit
def _state_is_finite(state: state_lib.GANState) -> jax.Array:
  leaves = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _raise_if_bad(acc_host: dict[str, Any] | None, step: int, manager,
                  state_finite: bool = True) -> None:
  """Raises NonFiniteError naming the first bad step and the newest checkpoint that passes
  its checks (read back and verified now: jaxgan.checkpointing.newest_verified)."""
  if acc_host is not None and int(acc_host["bad_step"]) >= 0:
    bad = {k: float(v) for k, v in acc_host["bad"].items() if not np.isfinite(v)}
    what = (f"non-finite metrics at step {int(acc_host['bad_step'])}: "
            + ", ".join(f"{k}={v}" for k, v in sorted(bad.items())))
  elif not state_finite:
    what = f"non-finite values in the training state after step {step}"
  else:
    return
  good = checkpointing.newest_verified(manager)
  last = (f"the last good checkpoint (verified) is step {good} in {manager.directory}"
          if good is not None else "there is no checkpoint that passes its checks")
  raise NonFiniteError(f"Training stopped: {what}. No checkpoint of a later step was written; "
                       f"{last}. Lower the learning rates or change the config, then resume.")


# ---- progress ----------------------------------------------------------------------------

def format_duration(seconds: float) -> str:
  """'2d 03h', '3h 12m', '4m 05s' or '12s'."""
  if not np.isfinite(seconds):
    return "?"
  s = int(round(seconds))
  d, h, m = s // 86400, s // 3600 % 24, s // 60 % 60
  if d:
    return f"{d}d {h:02d}h"
  if h:
    return f"{h}h {m:02d}m"
  return f"{m}m {s % 60:02d}s" if m else f"{s}s"


def format_rate(steps_per_s: float) -> str:
  """'2.41 steps/s' or '7.28 s/step'."""
  if not steps_per_s > 0:
    return "? steps/s"
  return f"{steps_per_s:.3g} steps/s" if steps_per_s >= 1 else f"{1 / steps_per_s:.3g} s/step"


def format_progress(step: int, num_steps: int, elapsed_s: float, steps_per_s: float,
                    eta_s: float, metrics: dict[str, float], where: str = "",
                    width: int = 100) -> str:
  """One console line of at most `width` characters: step and percentage, time elapsed,
  the rate, the time remaining, D's and G's losses, and the family's state (`where`; when
  the line is too long the elapsed time goes first, then `where` is shortened); every metric
  (images/s too) is in metrics.jsonl and TensorBoard."""
  losses = " ".join(f"{label} {metrics[key]:.3g}" for key, label in
                    (("loss/d", "D"), ("loss/g", "G")) if key in metrics)
  parts = [f"step {step}/{num_steps} {100 * step / num_steps:.1f}%", format_duration(elapsed_s),
           format_rate(steps_per_s), f"ETA {format_duration(eta_s)}", losses]
  line = " | ".join(p for p in parts if p)
  if where and len(line) + 3 + len(where) > width:  # the family's state before the elapsed time
    line = " | ".join(p for i, p in enumerate(parts) if p and i != 1)
  if where:
    room = width - len(line) - 3
    if room >= 8:
      line += " | " + (where if len(where) <= room else where[:room - 3] + "...")
  return line[:width]


def remaining_seconds(step: int, num_steps: int, steps_per_s: float,
                      stages: Sequence[families.Stage]) -> float:
  """Seconds to num_steps at `steps_per_s`, the rate of the current stage; a later stage's
  steps are weighted by its images x pixels per step relative to the current one's (a
  growing model's steps get slower), an estimate until that stage is measured."""
  if not steps_per_s > 0:
    return float("inf")
  index = families.stage_index(stages, step)
  cost = lambda s: s.batch_size * s.image_shape[0] * s.image_shape[1]  # noqa: E731
  ends = [s.start for s in stages[1:]] + [num_steps]
  weighted = 0.0
  for i in range(index, len(stages)):
    first = step if i == index else stages[i].start
    weighted += max(0, ends[i] - first) * cost(stages[i]) / cost(stages[index])
  return weighted / steps_per_s


# ---- images ------------------------------------------------------------------------------

def _host_images(x: jax.Array) -> np.ndarray:
  """This process's rows of a batch-sharded array (all rows on one process)."""
  if x.is_fully_addressable:
    return np.asarray(x)
  return np.concatenate([np.asarray(s.data) for s in x.addressable_shards])


class _RealGrid:
  """Collects the first `num` training images and writes them as WORKDIR/real.png and to
  TensorBoard as 'real' (upscaled to `size` when a growing model's first stage is smaller)."""

  def __init__(self, num: int, path, size: tuple[int, int], writer, step: int):
    self._num, self._path, self._parts, self._size = num, path, [], size
    self._writer, self._step = writer, step

  def add(self, batch) -> bool:
    """Adds a batch; returns True once the grid is written."""
    self._parts.append(_host_images(batch["image"]))
    if sum(len(p) for p in self._parts) < self._num:
      return False
    images = images_lib.upscale(np.concatenate(self._parts)[:self._num], self._size)
    grid = images_lib.make_grid(images)
    images_lib.save_png(grid, self._path)
    self._writer.write_images(self._step, {"real": grid[None]})
    return True


class LogMetrics(actions_lib.Action):
  """Reads the metrics accumulated on the device, stops on NaN/Inf, writes the scalars and
  the progress line: on the first LOG_FIRST_STEPS steps, every `log_every` steps, when
  `log_every_secs` have passed, and on the last step.

  The console's rate is the mean since the end of the current stage's first step
  (`ctx.clock`, set by the loop after compiling; the first step's one-time start-up is left
  out), so the ETA holds from the first steps; TensorBoard's perf/steps_per_sec is the rate
  since the previous log. Lines fit PROGRESS_WIDTH columns after jaxgan.cli's log prefix."""

  def __init__(self, config: ml_collections.ConfigDict, stages: Sequence[families.Stage]):
    self._config, self._stages = config, stages
    self._last = None
    self.schedule = actions_lib.Schedule(
        every_steps=config.log_every, every_secs=config.log_every_secs or None,
        on_steps=frozenset({config.train.num_steps}), first=LOG_FIRST_STEPS)

  def __call__(self, ctx: actions_lib.Context) -> None:
    config = self._config
    acc_host = _host(ctx.acc)  # Blocks until the step is done: the times below are its end.
    _raise_if_bad(acc_host, ctx.step, ctx.manager)
    now = time.perf_counter()
    clock_step, clock_time = ctx.clock
    if ctx.step == clock_step + 1:
      # The first step of a program also pays its one-time start-up: the rate counts from
      # its end (its own rate until the next log).
      ctx.clock = (ctx.step, now)
    last_step, last_time = self._last if self._last and self._last[0] >= clock_step else (
        clock_step, clock_time)
    self._last = (ctx.step, now)
    recent = (ctx.step - last_step) / max(now - last_time, 1e-9)
    since = ctx.clock if ctx.step > ctx.clock[0] else (clock_step, clock_time)
    mean = (ctx.step - since[0]) / max(now - since[1], 1e-9)
    means = {k: float(v) / int(acc_host["count"]) for k, v in acc_host["sum"].items()}
    images = ctx.stage.batch_size * config.train.d_steps
    extra = _host(ctx.state.extra.get("family", {}))
    family = {f"family/{k}": float(v) for k, v in extra.items() if np.ndim(v) == 0}
    ctx.writer.write_scalars(ctx.step, {**means, **family, "perf/steps_per_sec": recent,
                                        "perf/images_per_sec": recent * images})
    ctx.writer.flush()
    eta = remaining_seconds(ctx.step, config.train.num_steps, mean, self._stages)
    logging.info("%s", format_progress(ctx.step, config.train.num_steps, now - ctx.started,
                                       mean, eta, means, ctx.gan.describe(extra),
                                       width=PROGRESS_WIDTH))
    ctx.acc = None


def _check_finite(ctx: actions_lib.Context) -> None:
  """NonFiniteError when the metrics since the last log or the state hold NaN/Inf."""
  acc_host = None if ctx.acc is None else _host(ctx.acc)
  _raise_if_bad(acc_host, ctx.step, ctx.manager, bool(_host(_state_is_finite(ctx.state))))


def default_actions(ctx: actions_lib.Context) -> list[actions_lib.Action]:
  """Log, sample grid, checkpoint and report (in that order on a shared step), then the
  evaluators."""
  config = ctx.config
  return [LogMetrics(config, families.stages(config)),
          actions_lib.SampleGrid(ctx, every=config.sample_every, num=config.num_samples),
          actions_lib.Checkpoint(config.checkpoint_every, _check_finite),
          actions_lib.Report(config.report_every_secs),
          *actions_lib.evaluators(ctx)]


# ---- the loop ----------------------------------------------------------------------------

def _restore_or_init(config, wd, manager, state, lead: bool):
  """(state, data_step): the newest checkpoint's that passes its checks, or `state` and 0
  when there is none. A checkpoint that fails (jaxgan.checkpointing.CorruptCheckpointError)
  is reported, moved by process 0 to WORKDIR/checkpoints_corrupt/ (so that its step can be
  written again) and the next older one is tried; when every one fails, the run stops."""
  if manager.latest_step() is None:
    logging.info("No checkpoint in %s: starting from step 0.", wd.checkpoints)
    return state, 0
  failed = []
  while manager.latest_step() is not None:
    try:
      restored, data_step, step = checkpointing.restore(manager, state)
      break
    except checkpointing.CorruptCheckpointError as e:
      bad = manager.latest_step()
      failed.append(str(e))
      if lead:
        where = checkpointing.set_aside(manager, bad, wd.corrupt_checkpoints)
        logging.warning("%s. Moved it to %s; trying the next older checkpoint.", e, where)
      if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"jaxgan set aside checkpoint {bad}")
        manager.reload()
  else:
    raise checkpointing.CorruptCheckpointError(
        f"every checkpoint in {wd.checkpoints} failed its checks (moved to "
        f"{wd.corrupt_checkpoints}): {' | '.join(failed)}. Run again to start from step 0, "
        f"or restore the checkpoints from a backup")
  logging.info("Resuming from the checkpoint of step %d in %s%s.", step, wd.checkpoints,
               f" (it passed its checks; {len(failed)} newer failed)" if failed else "")
  if wd.config_json.exists():
    changes = workdir_lib.config_changes(workdir_lib.load_config(wd).to_dict(), config.to_dict())
    for change in changes:
      logging.warning("Config changed since the last run: %s", change)
  return restored, data_step


def _strong_types(state: state_lib.GANState) -> state_lib.GANState:
  """Drops weak types (TrainState counts steps from a Python 0), as a restored state has none,
  so that a fresh and a resumed run compile the same step (and hit the compilation cache)."""
  def strong(x):
    dtype = jnp.asarray(x).dtype
    return x if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) else jnp.asarray(x, dtype)
  return jax.tree.map(strong, state)


def init_state(config, gan: families.GAN, mesh) -> state_lib.GANState:
  """A fresh state, replicated; jitted (one compilation instead of one per init op)."""
  def init():
    return _strong_types(state_lib.create_state(config, gan))
  return jax.jit(init, out_shardings=sharding.replicated(mesh))()


def batch_shapes(config, gan: families.GAN, mesh, stage: families.Stage | None = None
                 ) -> dict[str, jax.ShapeDtypeStruct]:
  """The global batch the step of `stage` (default: the first) takes: images, and labels
  when the GAN is conditional."""
  stage = families.stages(config)[0] if stage is None else stage
  n, place = stage.batch_size * config.train.d_steps, sharding.batch_sharding(mesh)
  shapes = {"image": jax.ShapeDtypeStruct((n, *gan.image_shape), jnp.float32, sharding=place)}
  if gan.conditional:
    shapes["label"] = jax.ShapeDtypeStruct((n,), jnp.int32, sharding=place)
  return shapes


def _compile_step(config, gan, mesh, state, stage: families.Stage):
  what = f"the training step of stage {stage.name}" if stage.name else "the training step"
  logging.info("Compiling %s...", what)
  t = time.perf_counter()
  compiled = step_lib.make_train_step(config, mesh, gan=gan).lower(
      state, batch_shapes(config, gan, mesh, stage)).compile()
  logging.info("Compiled %s in %.1f s.", what, time.perf_counter() - t)
  hostmem.release_free()  # the compiler's temporaries (jaxgan/hostmem.py)
  return compiled


def _num_params(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


# A dataset of fewer than this many batches gets a warning at the start.
SMALL_DATA_BATCHES = 4


def small_data_warning(num_examples: int | None, batch_size: int) -> str | None:
  """The start-up warning for a dataset smaller than a batch, or than SMALL_DATA_BATCHES."""
  if not num_examples or num_examples >= SMALL_DATA_BATCHES * batch_size:
    return None
  if num_examples < batch_size:
    return (f"Data: {num_examples:,} images, fewer than one batch of {batch_size}: every batch "
            f"repeats each image about {batch_size / num_examples:.1f} times; a smaller "
            f"train.batch_size or more images is better")
  return (f"Data: only {num_examples:,} images, fewer than {SMALL_DATA_BATCHES} batches of "
          f"{batch_size}: D can memorise them quickly; DiffAugment or ADA helps (README: "
          f"'Few images')")


def startup_summary(config, state: state_lib.GANState, mesh, stages: Sequence[families.Stage],
                    num_examples: int | None, skipped: Sequence[str], wd) -> list[str]:
  """The few lines the console shows before compiling: the data (images found, skipped,
  resolution, epochs the run makes), the devices and mesh, the parameter counts, and the
  config as its changes from the family's defaults (the full config: WORKDIR/config.py)."""
  h, w = config.data.image_size
  colour = "RGB" if config.data.channels == 3 else "grayscale"
  ends = [s.start for s in stages[1:]] + [config.train.num_steps]
  images = sum(s.batch_size * config.train.d_steps * max(0, end - s.start)
               for s, end in zip(stages, ends))
  if num_examples:
    found = f"{num_examples:,} images" + (f" ({len(skipped)} files skipped)" if skipped
                                          else " (none skipped)")
    epochs = f"{images / num_examples:,.1f} epochs"
  else:
    found, epochs = "size unknown", "? epochs"
  lines = [
      f"Data: {config.data.source}: {found}, {h}x{w} {colour}; {config.train.num_steps:,} "
      f"steps, {images:,} images = {epochs}",
      f"Devices: {distributed.topology(mesh, config.train.batch_size)}",
      f"Model: {config.model.family}; G {_num_params(state.g.params):,} parameters, "
      f"D {_num_params(state.d.params):,}"]
  pairs = [f"{field}={new!r}" for field, _, new in workdir_lib.config_diff(
      config_lib.default_config(config.model.family).to_dict(), config.to_dict())]
  lines.append(f"Config: {len(pairs)} changes from the {config.model.family} defaults "
               f"(all fields: {wd.config_py}):")
  row = "  "
  for pair in pairs:
    if len(row) + len(pair) + 2 > 100 and row.strip():
      lines.append(row.rstrip(", "))
      row = "  "
    row += pair + ", "
  if row.strip():
    lines.append(row.rstrip(", "))
  return lines


def _step_batch(batch, gan: families.GAN):
  """The arrays of a pipeline batch that the step takes; labels checked when conditional."""
  if not gan.conditional:
    return {"image": batch["image"]}
  if "label" not in batch:
    raise config_lib.ConfigError(
        f"config.model.num_classes={gan.num_classes} is invalid: the data source gives no "
        f"labels (a folder needs data.labels='subfolders'; a TFDS dataset needs a 'label' "
        f"feature); use num_classes=0 for unlabelled data")
  return {"image": batch["image"], "label": batch["label"]}


@contextlib.contextmanager
def _workdir_lock(wd, lead: bool):
  """WORKDIR/lock for the run (jaxgan.lock), taken by process 0; in a multi-process run
  every process learns whether it was, so that all stop together when it was not."""
  try:
    held = lock_lib.Lock(wd.root).acquire() if lead else None
    error = None
  except lock_lib.WorkdirLocked as e:
    held, error = None, e
  except OSError as e:  # read-only, a file in the way, no space, ...
    held, error = None, errors.WorkdirError(
        f"workdir {wd.root} cannot be written ({e.strerror or e}: {e.filename or wd.root}): "
        f"give a --workdir where this user may create files")
  if jax.process_count() > 1:
    ok = multihost_utils.broadcast_one_to_all(np.int32(error is None))
    if not ok and error is None:
      error = lock_lib.WorkdirLocked(f"process 0 could not lock workdir {wd.root} (its log "
                                     f"names the run that holds it)")
  if error is not None:
    raise error
  try:
    yield
  finally:
    if held is not None:
      held.release()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       actions: Sequence[Any] = ()) -> state_lib.GANState:
  """Trains `config` in `workdir`, resuming from the workdir's latest checkpoint.

  Args:
    config: the full config (validated here, before anything is compiled).
    workdir: where config, checkpoints, metrics and images go (see `jaxgan.workdir`).
    actions: more periodic actions, each `fn(ctx) -> Action` (run after the defaults).

  Returns:
    The state at the last step reached (num_steps, or where a signal stopped the run).

  Raises:
    jaxgan.config.ConfigError: an invalid config value.
    jaxgan.checkpointing.CheckpointMismatchError: the workdir's checkpoint has other shapes.
    NonFiniteError: a NaN or Inf appeared; no checkpoint of it was written.
    jaxgan.lock.WorkdirLocked: another live run holds the workdir.
  """
  config_lib.validate(config)
  wd = workdir_lib.Workdir(workdir)
  lead = jax.process_index() == 0
  mesh = sharding.make_mesh()
  stages = families.stages(config)
  for stage in stages:
    what = f"the batch of stage {stage.name}" if stage.name else "config.train.batch_size"
    sharding.check_batch_divides(stage.batch_size, mesh, what)
  gan = families.build(config)
  if len(stages) > 1:
    logging.info("Stages: %s.", ", ".join(f"{s.name or i} from step {s.start}"
                                          for i, s in enumerate(stages)))
  with _workdir_lock(wd, lead), _StopSignal() as stop:
    state = init_state(config, gan, mesh)
    hostmem.release_init_programs()
    manager = checkpointing.create_manager(wd.checkpoints, max_to_keep=config.max_to_keep)
    try:
      state, data_step = _restore_or_init(config, wd, manager, state, lead)
      start = int(_host(state.step))
      if gan.check_extra is not None and "family" in state.extra:
        gan.check_extra(_host(state.extra["family"]), start)
      if lead:
        workdir_lib.save_config(config, wd)
        workdir_lib.truncate_metrics(wd.metrics, start)
      if start >= config.train.num_steps:
        logging.info("Step %d >= train.num_steps=%d: nothing to train; state fingerprint %s.",
                     start, config.train.num_steps, state_fingerprint(state))
        return state
      writer = (metric_writers.MultiWriter([
          metric_writers.SummaryWriter(str(wd.tensorboard)), jsonl_writer.JsonlWriter(wd.metrics)])
                if lead else metric_writers.MultiWriter([]))
      writer.write_hparams(workdir_lib.hparams(config.to_dict()))
      it = input_pipeline.create_iterator(config, sharding=sharding.batch_sharding(mesh),
                                          start_step=data_step)
      for line in startup_summary(config, state, mesh, stages, it.num_examples, it.skipped,
                                  wd):
        logging.info("%s", line)
      small = small_data_warning(it.num_examples, stages[0].batch_size)
      if small:
        logging.warning("%s", small)
      try:
        stage = stages[families.stage_index(stages, start)]
        ctx = actions_lib.Context(config, wd, mesh, gan.at(stage), manager, writer, lead, start,
                                  state=state, step=start, data_step=data_step,
                                  last_saved=manager.latest_step(), stage=stage)
        run_actions = default_actions(ctx) + [make(ctx) for make in actions]
        state, step = _loop(ctx, run_actions, it, stop, gan, stages)
      finally:
        it.close()
        writer.close()
    finally:
      manager.wait_until_finished()
      manager.close()
  if stop.signum is not None:
    logging.warning("Stopped by %s at step %d; its checkpoint is saved. Run the same command "
                    "to resume.", signal.Signals(stop.signum).name, step)
    if lead:
      actions_lib.write_report(wd)
  elif lead:
    written = workdir_lib.write_summary(wd)
    if actions_lib.write_report(wd, replot=False):
      written.insert(0, wd.report)
    logging.info("Done: %d steps.%s", step, f" Wrote {', '.join(map(str, written))}."
                 if written else "")
  return state


def _loop(ctx: actions_lib.Context, run_actions: list[actions_lib.Action],
          it: input_pipeline.DataIterator, stop: _StopSignal, gan: families.GAN,
          stages: Sequence[families.Stage]):
  """Runs steps from `ctx.start` until num_steps or a signal; returns (state, step).

  One program is compiled per stage, when its first step comes; `ctx.gan` and `ctx.stage`
  follow the stage (the sample grids show its resolution)."""
  config, wd = ctx.config, ctx.wd
  index = families.stage_index(stages, ctx.start)
  compiled = _compile_step(config, ctx.gan, ctx.mesh, ctx.state, ctx.stage)
  size = tuple(config.data.image_size)
  real = (_RealGrid(config.num_samples, wd.real_grid, size, ctx.writer, ctx.start)
          if ctx.lead and not wd.real_grid.exists() else None)
  num_steps, previous = config.train.num_steps, None
  for action in run_actions:
    action.schedule.start(ctx.start)
    action.begin(ctx)
  # Simulated CPU devices: queuing collective steps can abort with XLA's "Termination timeout
  # for all reduce" (docs/pitfalls.md); waiting for each step before the next avoided it.
  block_each_step = jax.default_backend() == "cpu" and jax.device_count() > 1
  logging.info("Training from step %d to %d; workdir %s.", ctx.start, num_steps, wd.root)
  ctx.started = time.perf_counter()
  ctx.clock = (ctx.step, ctx.started)

  while ctx.step < num_steps and stop.signum is None:
    if index + 1 < len(stages) and ctx.step >= stages[index + 1].start:
      index = families.stage_index(stages, ctx.step)
      ctx.stage, ctx.gan = stages[index], gan.at(stages[index])
      logging.info("Step %d: stage %s.", ctx.step, ctx.stage.name or index)
      compiled = _compile_step(config, ctx.gan, ctx.mesh, ctx.state, ctx.stage)
      ctx.clock = (ctx.step, time.perf_counter())  # a new stage: a new rate
    batch = next(it)
    if real is not None and real.add(batch):
      real = None
    ctx.state, metrics = compiled(ctx.state, _step_batch(batch, ctx.gan))
    ctx.step, ctx.data_step = ctx.step + 1, it.step
    ctx.acc = _accumulate(_empty_accumulator(metrics) if ctx.acc is None else ctx.acc, metrics,
                          ctx.step)
    if block_each_step:
      jax.block_until_ready(metrics)
    elif previous is not None:
      jax.block_until_ready(previous)  # Step step-1; step is already queued behind it.
    previous = metrics
    for action in run_actions:
      if action.schedule.due(ctx.step):
        action(ctx)
  if stop.signum is not None:
    logging.warning("%s at step %d: saving its checkpoint, then stopping (%s again aborts at "
                    "once).", signal.Signals(stop.signum).name, ctx.step,
                    "Ctrl-C" if stop.signum == signal.SIGINT else "the signal")
  for action in run_actions:
    action.finish(ctx)
  logging.info("Step %d; state fingerprint %s.", ctx.step, state_fingerprint(ctx.state))
  return ctx.state, ctx.step

def state_fingerprint(state: state_lib.GANState) -> str:
  """SHA-256 of this process's replica of G's and D's parameters (the processes of a
  multi-process run must agree on it)."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(_host((state.g.params, state.d.params))):
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()[:16]
