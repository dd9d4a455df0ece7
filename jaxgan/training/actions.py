"""Periodic actions of the training loop, each on its own schedule.

The loop (`jaxgan.training.loop`) runs the compiled step and then every action whose
`Schedule` is due; at the end (num_steps, or a signal) it calls each action's `finish`.
An action sees the loop through a `Context` (the state, the step, the metrics accumulated
since the last log, the checkpoint manager, the writer). The default actions are

  RealGrid     the first steps: WORKDIR/real.png, a grid of the run's first training images
  LogMetrics   the first steps, every `log_every` steps or `log_every_secs`, and the last:
               reads the device metrics, stops on NaN/Inf, writes scalars and the progress
               line (it lives with the console, `jaxgan.training.console`)
  SampleGrid   every `sample_every` steps: the grid of fixed seeds (every class, when conditional)
  Checkpoint   every `checkpoint_every` steps and at the end; never of a non-finite state
  Report       every `report_every_secs`: rewrites WORKDIR/report.html (jaxgan.report)

and one evaluator per entry of `config.evals` (`jaxgan.training.evaluators`). Adding an
action does not mean editing the loop: `train_and_evaluate(..., actions=[...])` takes more,
and `evaluators.register_evaluator` adds a type that configs can name. The schedule follows
clu's `periodic_actions` convention (every_steps, every_secs, on_steps). `validate(config)`
checks the loop's own fields (the schedules, the grid size, the checkpoints kept).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from absl import logging

from jaxgan import checkpointing
from jaxgan import checks
from jaxgan import images as images_lib
from jaxgan import report
from jaxgan import sampling
from jaxgan import sharding


@dataclasses.dataclass
class Schedule:
  """When an action runs: every `every_steps` steps, when `every_secs` have passed since it
  last ran, on the steps of `on_steps`, or on the first `first` steps of the run."""
  every_steps: int | None = None
  every_secs: float | None = None
  on_steps: frozenset[int] = frozenset()
  first: int = 0
  _start: int | None = None
  _last_time: float = dataclasses.field(default_factory=time.perf_counter)

  def start(self, step: int) -> None:
    self._start, self._last_time = step, time.perf_counter()

  def due(self, step: int) -> bool:
    now = time.perf_counter()
    due = ((self.every_steps and step % self.every_steps == 0) or step in self.on_steps
           or (self._start is not None and step - self._start <= self.first)
           or (self.every_secs and now - self._last_time >= self.every_secs))
    if due:
      self._last_time = now
    return bool(due)


@dataclasses.dataclass
class Context:
  """What the actions read and write of the loop."""
  config: ml_collections.ConfigDict
  wd: Any  # jaxgan.workdir.Workdir
  mesh: jax.sharding.Mesh
  gan: Any  # jaxgan.families.GAN
  manager: Any  # orbax.checkpoint.CheckpointManager
  writer: Any  # clu MetricWriter
  lead: bool  # process 0 writes the files
  start: int
  state: Any = None
  step: int = 0
  data_step: int = 0  # the input pipeline's position
  acc: Any = None  # metrics summed on the device since the last log (by the loop)
  last_saved: int | None = None
  stage: Any = None  # the jaxgan.families.Stage of the current step; `gan` is its networks
  started: float = 0.0  # time.perf_counter() when the first step was dispatched
  clock: tuple[int, float] = (0, 0.0)  # (step, time) the current stage's rate counts from
  batch: Any = None  # the pipeline batch of the step just run (RealGrid reads the first ones)


class Action:
  """Base of a periodic action: `schedule`; `begin(ctx)` before the first step, `__call__(ctx)`
  after each step it is due, `finish(ctx)` at the end (num_steps or a signal)."""
  schedule: Schedule

  def begin(self, ctx: Context) -> None:
    del ctx

  def __call__(self, ctx: Context) -> None:
    raise NotImplementedError

  def finish(self, ctx: Context) -> None:
    del ctx


def validate(config: ml_collections.ConfigDict) -> None:
  """ConfigError for a bad field of the loop's own (log_every, sample_every, ...)."""
  for field in ("log_every", "sample_every", "checkpoint_every", "max_to_keep", "num_samples"):
    checks.check_positive(config, field)
  if not config.log_every_secs >= 0:
    checks.fail("log_every_secs", config.log_every_secs,
                "expected seconds >= 0 (0: log by steps only)")
  if not config.report_every_secs >= 0:
    checks.fail("report_every_secs", config.report_every_secs,
                "expected seconds >= 0 (0: write the report at the end only)")


# ---- sample grids ------------------------------------------------------------------------

class SampleGrid(Action):
  """A grid from fixed latents (seeds 0..num-1; per class when conditional), written to
  `path(step)` and to TensorBoard as `tag`, with one compiled generator per stage. A
  growing model's images are upscaled (nearest) to config.data.image_size, so every grid
  of a run has one size and the GIF's frames line up."""

  def __init__(self, ctx: Context, *, every: int, num: int, truncation: float | None = None,
               ema: bool = True, tag: str = "samples",
               path: Callable[[int], Any] | None = None):
    seeds, labels, self._nrow = sampling.grid_inputs(num, ctx.gan.num_classes)
    z = sampling.latents(seeds, ctx.gan.latent_dim, truncation)
    replicated = sharding.replicated(ctx.mesh)
    self._z = jax.device_put(z, replicated)
    self._labels = None if labels is None else jax.device_put(np.asarray(labels, np.int32),
                                                              replicated)
    self._ema, self._tag = ema, tag
    self._path = path or ctx.wd.sample_grid
    self._every, self.schedule = every, Schedule(every_steps=every)

  def write(self, ctx: Context) -> None:
    """Every process runs the generator (one SPMD program); only the lead writes."""
    state = ctx.state
    params = state.g.params if (state.g_ema is None or not self._ema) else state.g_ema
    images = sampling.forward(ctx.gan, state.g.variables(params), self._z, self._labels,
                              state.extra.get("family"))
    if not ctx.lead:
      return
    images = images_lib.upscale(sharding.host(images), tuple(ctx.config.data.image_size))
    grid = images_lib.make_grid(images, self._nrow)
    images_lib.save_png(grid, self._path(ctx.step))
    ctx.writer.write_images(ctx.step, {self._tag: grid[None]})

  def begin(self, ctx: Context) -> None:
    # The grid of the starting point (step 0 of a new run, or a resumed step on the schedule).
    if ctx.step % self._every == 0 and not self._path(ctx.step).exists():
      self.write(ctx)

  def __call__(self, ctx: Context) -> None:
    self.write(ctx)

  def finish(self, ctx: Context) -> None:
    # The final grid, when num_steps is off the schedule.
    if ctx.step == ctx.config.train.num_steps and ctx.step % self._every:
      self.write(ctx)


def _host_images(x: jax.Array) -> np.ndarray:
  """This process's rows of a batch-sharded array (all rows on one process)."""
  if x.is_fully_addressable:
    return np.asarray(x)
  return np.concatenate([np.asarray(s.data) for s in x.addressable_shards])


class RealGrid(Action):
  """The first `num` training images of the run, from `ctx.batch` of its first steps,
  written once as WORKDIR/real.png and to TensorBoard as 'real' at the starting step
  (upscaled to config.data.image_size when a growing model's first stage is smaller); only
  by the lead, and only when the workdir has no real.png yet."""

  def __init__(self, num: int):
    self._num, self._parts = num, []
    self.schedule = Schedule(every_steps=1)  # until the grid is written

  def begin(self, ctx: Context) -> None:
    if not ctx.lead or ctx.wd.real_grid.exists():
      self.schedule = Schedule()  # never due

  def __call__(self, ctx: Context) -> None:
    self._parts.append(_host_images(ctx.batch["image"]))
    if sum(len(p) for p in self._parts) < self._num:
      return
    images = images_lib.upscale(np.concatenate(self._parts)[:self._num],
                                tuple(ctx.config.data.image_size))
    grid = images_lib.make_grid(images)
    images_lib.save_png(grid, ctx.wd.real_grid)
    ctx.writer.write_images(ctx.start, {"real": grid[None]})
    self._parts, self.schedule = [], Schedule()  # written: never due again


# ---- checkpoints -------------------------------------------------------------------------

class Checkpoint(Action):
  """Saves every `every` steps and at the end, after checking for NaN/Inf."""

  def __init__(self, every: int, check: Callable[[Context], None]):
    self.schedule, self._check = Schedule(every_steps=every), check

  def save(self, ctx: Context) -> None:
    self._check(ctx)
    if checkpointing.save(ctx.manager, ctx.step, ctx.state, ctx.data_step, ctx.config):
      logging.info("Saving the checkpoint of step %d (asynchronously).", ctx.step)
    ctx.last_saved = ctx.step

  def __call__(self, ctx: Context) -> None:
    self.save(ctx)

  def finish(self, ctx: Context) -> None:
    if ctx.step != ctx.last_saved:
      self.save(ctx)


# ---- the report page ---------------------------------------------------------------------

def write_report(wd, replot: bool = True) -> bool:
  """jaxgan.report.write(wd); whether it was written. A failure is logged, never raised
  (the run goes on)."""
  try:
    report.write(wd, replot=replot)
    return True
  except Exception as e:  # pylint: disable=broad-except  (a page must not stop a run)
    logging.warning("Could not write %s: %s: %s", wd.report, type(e).__name__, e)
    return False


class Report(Action):
  """Rewrites WORKDIR/report.html every `every_secs` (0: never; the loop writes it at the
  end), from the workdir's files: metrics, grids, the memorisation check, the config."""

  def __init__(self, every_secs: float):
    self.schedule = Schedule(every_secs=every_secs or None)

  def __call__(self, ctx: Context) -> None:
    if ctx.lead:
      ctx.writer.flush()
      write_report(ctx.wd)
